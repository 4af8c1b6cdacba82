"""Channels many tests set up the same way."""

from __future__ import annotations

from typing import Any

from apps.clients.models import Channel, ChannelKind, Client


def console_email_channel(client: Client, **overrides: Any) -> Channel:
    """The tests' usual scheduled email channel: ChannelID 504, the console provider, the address in
    the `Email` attribute; `overrides` changes any field."""
    fields: dict[str, Any] = {
        "name": "Email",
        "kind": ChannelKind.EMAIL,
        "optimove_channel_id": 504,
        "provider": "console",
        "address_attribute": "Email",
    }
    return Channel.objects.create(client=client, **(fields | overrides))
