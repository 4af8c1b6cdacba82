"""A client with an email and an SMS channel, shared by the subscriptions tests."""

from __future__ import annotations

import pytest

from apps.clients.models import Channel, ChannelKind, Client


@pytest.fixture
def acme(db: None) -> Client:
    return Client.objects.create(slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net")


@pytest.fixture
def email(acme: Client) -> Channel:
    return Channel.objects.create(
        client=acme,
        name="Email",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=504,
        provider="console",
        address_attribute="Email",
    )


@pytest.fixture
def sms(acme: Client) -> Channel:
    return Channel.objects.create(
        client=acme,
        name="SMS",
        kind=ChannelKind.SMS,
        optimove_channel_id=505,
        provider="console",
        address_attribute="Mobile",
    )
