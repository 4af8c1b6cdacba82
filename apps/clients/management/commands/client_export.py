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


class _Dumper(yaml.SafeDumper):
    """Writes text of several lines (HTML and text bodies) as `|` blocks, readable and editable as
    they are; PyYAML falls back to a quoted scalar by itself where a block could not round-trip."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


class Command(BaseCommand):
    help = (
        "Prints one client, its channels and their message templates as a client file (YAML) without secrets."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            client = selectors.client_get(slug=options["slug"])
        except Client.DoesNotExist:
            raise CommandError(f"no client with slug {options['slug']!r}") from None
        document = services.client_export(client=client)
        self.stdout.write(HEADER, ending="")
        self.stdout.write(yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True), ending="")
