from __future__ import annotations

from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.clients import selectors, services
from apps.clients.models import Client

HEADER = """\
# Exported by `manage.py client_export` without secrets (Optimove API key and password, provider
# secrets, listener token). Applying this file keeps the stored ones; to change one, add it, e.g.
#   optimove: {api_key: env:ACME_OPTIMOVE_API_KEY}   or   provider_secrets: {password: env:SMTP_PASSWORD}
"""


class Command(BaseCommand):
    help = "Prints one client and its channels as a client file (YAML) without secrets."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            client = selectors.client_get(slug=options["slug"])
        except Client.DoesNotExist:
            raise CommandError(f"no client with slug {options['slug']!r}") from None
        document = services.client_export(client=client)
        self.stdout.write(HEADER, ending="")
        self.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), ending="")
