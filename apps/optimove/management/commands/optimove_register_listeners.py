from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.clients.commands import command_client
from apps.optimove.errors import OptimoveError
from apps.optimove.listeners import listeners_sync


class Command(BaseCommand):
    help = "Registers the client's listeners with Optimove and removes registrations that no longer match."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        client = command_client(options["slug"])
        try:
            changes = listeners_sync(client=client, dry_run=options["dry_run"])
        except OptimoveError as exc:
            raise CommandError(f"Optimove refused or could not be reached: {exc}") from exc
        changed = [c for c in changes if c.action != "keep"]
        prefix = "would " if options["dry_run"] else ""
        for change in changes:
            line = (
                f"{prefix}{change.describe()}"
                if change.action != "keep"
                else f"unchanged: {change.describe()[5:]}"
            )
            self.stdout.write(line)
        self.stdout.write(f"{len(changed)} change(s) for {client.slug}.")
