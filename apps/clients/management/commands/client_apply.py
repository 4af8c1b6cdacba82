from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.clients import services
from apps.clients.apply_schema import ClientFileError, load_document


class Command(BaseCommand):
    help = (
        "Creates or updates one client, its channels and their message templates from a YAML or JSON "
        "file (`-` reads stdin). "
        "Applying the same file twice changes nothing; secrets may be written as env:NAME."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the client file (.yaml, .yml or .json; `-` for stdin)")
        parser.add_argument(
            "--prune",
            action="store_true",
            help=(
                "delete the client's channels that the file does not list, and the templates a channel's "
                "templates: list does not list (a channel entry without templates: keeps its templates)"
            ),
        )
        parser.add_argument("--dry-run", action="store_true", help="print what would change and save nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{name}: cannot read the file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{name}: not UTF-8 text") from None
        try:
            document = load_document(text=text, filename="" if name == "-" else name)
            result = services.client_apply(
                document=document, prune=options["prune"], dry_run=options["dry_run"]
            )
        except ClientFileError as exc:
            problems = "\n".join(f"  {error}" for error in exc.errors)
            raise CommandError(f"{name}: nothing was applied:\n{problems}") from None
        for line in result.lines():
            self.stdout.write(line)
