"""`manage.py optimove_sync_subscriptions SLUG [--channel ID] [--full]`: push consent to Optimove now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.clients.commands import command_client
from apps.clients.models import Channel, ConsentSync
from apps.subscriptions.sync import ChannelSyncResult, subscriptions_sync


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def describe(channel: Channel, result: ChannelSyncResult) -> str:
    """One line per channel: counts only, never customer ids."""
    head = f"channel {channel.optimove_channel_id} ({channel.name}, {channel.consent_sync})"
    if result.skipped:
        return f"{head}: skipped: {result.skipped}."
    line = f"{head}: pushed {_plural(result.pushed, 'customer')} in {_plural(result.calls, 'call')}" + (
        f"; {_plural(result.refused, 'customer')} in {_plural(result.refused_calls, 'call')} refused "
        "(see their sync error)"
        if result.refused_calls
        else ""
    )
    if result.stopped:
        return f"{line}; STOPPED: {result.stopped}. What was not accepted is pushed by the next sync."
    return f"{line}."


class Command(BaseCommand):
    help = (
        "Pushes the consent states Optimove has not accepted yet (every state with --full) for each "
        "synced, active channel of the client, by the channel's method (SetCustomerChannelPreference or "
        "its consent attribute). Also sends again the states whose last push was refused. Exits non-zero "
        "when a channel's push stopped or was refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The client's slug.")
        parser.add_argument("--channel", type=int, default=None, help="Only this Optimove ChannelID.")
        parser.add_argument(
            "--full", action="store_true", help="Push every customer's state, accepted before or not."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug: str = options["slug"]
        channel_id: int | None = options["channel"]
        client = command_client(slug)
        channels = client.channels.select_related("client").order_by("optimove_channel_id")
        if channel_id is not None:
            channel = channels.filter(optimove_channel_id=channel_id).first()
            if channel is None:
                known = ", ".join(str(c) for c in channels.values_list("optimove_channel_id", flat=True))
                raise CommandError(
                    f"Client {slug!r} has no channel with ChannelID {channel_id}. "
                    f"Its channels: {known or 'none'}."
                )
            if channel.consent_sync == ConsentSync.OFF:
                raise CommandError(
                    f"Channel {channel_id} of {slug!r} has consent sync off: its consent goes to Optimove "
                    "through the batch process "
                    f"(manage.py subscriptions_export {slug} --channel {channel_id})."
                )
            selected = [channel]
        else:
            selected = list(channels)
        if not selected:
            self.stdout.write(f"Client {slug!r} has no channel.")
            return

        failed = 0
        for channel in selected:
            result = subscriptions_sync(channel=channel, full=options["full"], include_failed=True, wait=True)
            self.stdout.write(describe(channel, result))
            if result.stopped or result.refused_calls:
                failed += 1
        if failed:
            raise CommandError(f"{_plural(failed, 'channel')} of {slug!r} did not sync completely.")
