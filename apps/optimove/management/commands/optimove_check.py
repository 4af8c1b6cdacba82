"""`manage.py optimove_check SLUG`: can we reach this client's Optimove with its credentials?"""

from __future__ import annotations

from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.clients.commands import command_client
from apps.optimove.client import optimove_client_for
from apps.optimove.errors import (
    OptimoveAuthError,
    OptimoveError,
    OptimoveRateLimited,
    OptimoveRetryableError,
)


class Command(BaseCommand):
    help = (
        "Calls GetRegisteredEventListeners with a client's stored credentials and says plainly whether "
        "Optimove answered. Exits non-zero on failure."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The client's slug.")
        parser.add_argument(
            "--retries",
            type=int,
            default=0,
            help="Retries of timeouts, 429 and 5xx before giving up (default 0: a check answers fast).",
        )
        parser.add_argument("--timeout", type=float, default=None, help="Seconds per request.")

    def handle(self, *args: Any, **options: Any) -> None:
        slug: str = options["slug"]
        client = command_client(slug)
        if options["retries"] < 0:
            raise CommandError("--retries cannot be negative.")
        base = client.optimove_base_url
        try:
            api = optimove_client_for(client, timeout=options["timeout"], max_retries=options["retries"])
            listeners = api.get_registered_event_listeners()
        except OptimoveError as exc:
            self.stdout.write(f"FAILED: {self._describe(base, exc)}")
            raise SystemExit(1) from None
        count = len(listeners)
        noun = "listener" if count == 1 else "listeners"
        inactive = " (the client is marked inactive)" if not client.is_active else ""
        self.stdout.write(
            f"OK: {base} answered; auth by {api.auth_mode}; {count} {noun} registered.{inactive}"
        )

    @staticmethod
    def _describe(base: str, exc: OptimoveError) -> str:
        if isinstance(exc, OptimoveAuthError):
            if exc.status is None:
                return "the client has no Optimove API key, nor a user name and password."
            return f"{base} rejected the credentials ({exc.status})."
        if isinstance(exc, OptimoveRateLimited) and exc.status == 429:
            return f"{base} is rate limiting these credentials (429); try again in a minute."
        if isinstance(exc, OptimoveRetryableError) and exc.status is None:
            cause = exc.__cause__
            if isinstance(cause, requests.exceptions.Timeout):
                return f"could not reach {base} (timeout)"
            if isinstance(cause, requests.exceptions.ConnectionError):
                return f"could not reach {base} (connection error)"
            return f"could not reach {base} ({exc})"
        if exc.status is not None:
            return f"{base} answered {exc.status} to {exc.function or 'the call'}."
        return f"{base}: {exc}"
