"""What every `manage.py` command that takes a client's slug shares."""

from __future__ import annotations

from django.core.management.base import CommandError

from apps.clients.models import Client


def command_client(slug: str) -> Client:
    """The client with this slug; a CommandError listing the known slugs (a typo is the usual cause)."""
    client = Client.objects.filter(slug=slug).first()
    if client is None:
        known = ", ".join(Client.objects.order_by("slug").values_list("slug", flat=True)[:20])
        raise CommandError(f"No client with slug {slug!r}. Known slugs: {known or 'none'}.")
    return client
