from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.clients import crypto


class Command(BaseCommand):
    help = (
        "Prints a new Fernet key. Put it FIRST in FIELD_ENCRYPTION_KEYS (keep the old keys after it), "
        "deploy, then run `manage.py secrets_rotate`; drop an old key only after that."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # Only the key on stdout, so it can be captured by a script.
        self.stdout.write(crypto.generate_key())
