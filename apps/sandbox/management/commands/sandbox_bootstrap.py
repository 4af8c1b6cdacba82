from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.sandbox.services import SandboxInputError, sandbox_bootstrap


class Command(BaseCommand):
    help = (
        "Ensures the sandbox account 'local', the demo client pointing at the sandbox, its channels "
        "and a demo campaign (idempotent; used by `make run`)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--public-base-url",
            default=None,
            help="Where the platform (and so the sandbox) is reachable; default PUBLIC_BASE_URL.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SANDBOX_ENABLED:
            raise CommandError("The sandbox is off (SANDBOX_ENABLED is false); nothing to bootstrap")
        try:
            lines = sandbox_bootstrap(public_base_url=options["public_base_url"] or settings.PUBLIC_BASE_URL)
        except SandboxInputError as exc:
            raise CommandError(str(exc)) from None
        for line in lines:
            self.stdout.write(line)
        if all(line.startswith("Kept") for line in lines):
            self.stdout.write(self.style.SUCCESS("Sandbox: everything was already in place."))
        else:
            self.stdout.write(
                self.style.SUCCESS("Sandbox: ready (the demo client's key is the 'local' account's).")
            )
