"""`manage.py subscriptions_export SLUG --channel ID [--output FILE]`: a channel's consent as CSV."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Protocol

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from apps.clients.commands import command_client
from apps.clients.models import Channel
from apps.subscriptions.models import Subscription

# Rows fetched per round trip from the server-side cursor.
CHUNK_SIZE = 5_000


class _Writable(Protocol):
    def write(self, text: str, /) -> object: ...


def subscriptions_export_csv(*, channel: Channel, out: _Writable) -> int:
    """Writes `customer_id,status` (with a header row) for every customer of the channel, by customer
    id; returns the number of customers. Rows come from a server-side cursor, CHUNK_SIZE at a time, so
    memory stays flat whatever the channel's size. Inside one transaction: the cursor needs no WITH
    HOLD copy on the server, and the file is one consistent snapshot."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["customer_id", "status"])
    count = 0
    with transaction.atomic():
        rows = (
            Subscription.objects.filter(channel=channel)
            .order_by("customer_id")  # the (channel, customer_id) unique index: no sort
            .values_list("customer_id", "status")
            .iterator(chunk_size=CHUNK_SIZE)
        )
        for customer_id, status in rows:
            writer.writerow((customer_id, status))
            count += 1
    return count


class Command(BaseCommand):
    help = (
        "Writes a channel's consent as CSV (customer_id,status with a header row; status is opted_in, "
        "opted_out or unknown) for Optimove's batch process: to stdout, or to --output FILE (written "
        "whole or not at all). Streams at any size."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The client's slug.")
        parser.add_argument("--channel", type=int, required=True, help="The Optimove ChannelID.")
        parser.add_argument("--output", default=None, help="A file to write (default: stdout).")

    def handle(self, *args: Any, **options: Any) -> None:
        slug: str = options["slug"]
        channel_id: int = options["channel"]
        client = command_client(slug)
        channel = client.channels.filter(optimove_channel_id=channel_id).first()
        if channel is None:
            known = ", ".join(
                str(c)
                for c in client.channels.order_by("optimove_channel_id").values_list(
                    "optimove_channel_id", flat=True
                )
            )
            raise CommandError(
                f"Client {slug!r} has no channel with ChannelID {channel_id}. "
                f"Its channels: {known or 'none'}."
            )
        output: str | None = options["output"]
        if output is None:
            count = subscriptions_export_csv(channel=channel, out=self.stdout)
            self.stderr.write(f"Exported {count} customer(s) of channel {channel_id}.")
            return
        self._to_file(Path(output), channel, channel_id)

    def _to_file(self, path: Path, channel: Channel, channel_id: int) -> None:
        if not path.parent.is_dir():
            raise CommandError(f"--output: the folder {str(path.parent)!r} does not exist.")
        if path.is_dir():
            raise CommandError(f"--output: {str(path)!r} is a folder, not a file.")
        # Written beside the target and renamed when complete: a failed export leaves no half file.
        partial = path.with_name(f".{path.name}.partial")
        try:
            with partial.open("w", encoding="utf-8", newline="") as out:
                count = subscriptions_export_csv(channel=channel, out=out)
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise CommandError(f"--output: cannot write {str(path)!r}: {exc.strerror or exc}.") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        self.stdout.write(f"Exported {count} customer(s) of channel {channel_id} to {path}.")
