from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.clients.commands import command_client
from apps.message_templates.sync import templates_reconcile
from apps.optimove.errors import OptimoveError


class Command(BaseCommand):
    help = (
        "Makes Optimove's template list of each active channel of the client match its active templates "
        "(GetChannelTemplates, then AddChannelTemplates / DeleteChannelTemplates), and settles the outbox "
        "rows those lists had open."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        client = command_client(options["slug"])
        dry_run = options["dry_run"]
        try:
            results = templates_reconcile(client=client, dry_run=dry_run)
        except OptimoveError as exc:
            raise CommandError(f"{client.slug}: cannot talk to Optimove: {exc}") from None
        counts = {"added": 0, "renamed": 0, "deleted": 0}
        failed = []
        for result in results:
            for change in result.changes:
                self.stdout.write(change.describe(dry_run=dry_run))
                counts[change.action] += 1
            if result.error:
                failed.append(result.optimove_channel_id)
                self.stdout.write(f"channel {result.optimove_channel_id}: failed: {result.error}")
        changed = ", ".join(f"{count} {action}" for action, count in counts.items())
        self.stdout.write(
            f"{client.slug}: {changed} on {len(results)} active channel(s)"
            + (" (dry run: nothing was changed)" if dry_run else "")
        )
        if failed:
            raise CommandError(
                f"{client.slug}: channel(s) {', '.join(map(str, failed))} could not be reconciled; run again"
            )
