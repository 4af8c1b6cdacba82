"""Clients, channels of every kind, and a way to store a template as it is (no validation)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.clients.models import Channel, Client
from apps.message_templates.models import MessageTemplate
from apps.message_templates.rendering import template_cache_clear

KINDS = ("email", "sms", "push", "webhook", "console")


@pytest.fixture(autouse=True)
def _fresh_compiled_cache() -> None:
    # Each test counts its own cache hits and misses.
    template_cache_clear()


def make_client(slug: str) -> Client:
    return Client.objects.create(slug=slug, name=slug.title(), optimove_base_url="https://api5.optimove.net")


def make_channels(client: Client) -> dict[str, Channel]:
    return {
        kind: Channel.objects.create(
            client=client,
            name=f"{client.slug} {kind}",
            kind=kind,
            optimove_channel_id=500 + index,
            provider=kind,
        )
        for index, kind in enumerate(KINDS)
    }


@pytest.fixture
def acme(db: None) -> Client:
    return make_client("acme")


@pytest.fixture
def channels(acme: Client) -> dict[str, Channel]:
    return make_channels(acme)


def stored_template(channel: Channel, template_id: int = 1, **fields: Any) -> MessageTemplate:
    """Saved straight to the table, skipping validation, as an old or hand-edited row could be."""
    return MessageTemplate.objects.create(
        client=channel.client,
        channel=channel,
        template_id=template_id,
        name=fields.pop("name", f"Template {template_id}"),
        **fields,
    )
