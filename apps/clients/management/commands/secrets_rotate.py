from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.clients import services


class Command(BaseCommand):
    help = (
        "Re-encrypts every stored secret (every EncryptedTextField / EncryptedJSONField of every "
        "installed app) with the newest key in FIELD_ENCRYPTION_KEYS. Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        reports = services.secrets_rotate(batch_size=options["batch_size"])
        for report in reports:
            self.stdout.write(str(report))
        unreadable = sum(len(report.unreadable) for report in reports)
        if unreadable:
            raise CommandError(
                f"{unreadable} stored value(s) could not be decrypted with any configured key; "
                "they were left as they are (see the lines above)"
            )
        self.stdout.write(
            f"done: {sum(r.rotated for r in reports)} value(s) re-encrypted with the newest key"
        )
