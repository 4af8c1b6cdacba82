"""A client with an email and an SMS channel, shared by the subscriptions tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunState
from apps.campaigns.services import message_batch_send
from apps.clients.models import Channel, ChannelKind, Client
from apps.message_templates.models import MessageTemplate
from apps.subscriptions.models import Subscription, SubscriptionChange
from tests.tenants import console_email_channel


@pytest.fixture
def acme(db: None) -> Client:
    return Client.objects.create(slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net")


@pytest.fixture
def email(acme: Client) -> Channel:
    return console_email_channel(acme)


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


# --- the next send of a channel to a customer (shared by the admin, CSV and API tests) ---

NextSend = Callable[[Channel, str], tuple[str, str]]
_campaign_ids = itertools.count(70_001)


@pytest.fixture
def next_send(redis_client: Any) -> NextSend:
    """`next_send(channel, customer_id)` sends the channel's next message to the customer the way a
    send task does (a queued message handed to `message_batch_send`, which checks consent at that
    moment) over the channel's console provider, and returns the message's (status, error)."""

    def send(channel: Channel, customer_id: str) -> tuple[str, str]:
        MessageTemplate.objects.get_or_create(
            channel=channel,
            template_id=1,
            defaults={
                "client": channel.client,
                "name": "News",
                "subject": "News for {{ FirstName }}",
                "text_body": "Hello {{ FirstName }}",
                "html_body": "<p>Hello {{ FirstName }}</p>",
            },
        )
        run = CampaignRun.objects.create(
            client=channel.client,
            channel=channel,
            campaign_id=next(_campaign_ids),
            state=RunState.SENDING,
            paging_done=True,
        )
        now = timezone.now()
        message = Message.objects.create(
            run=run,
            customer_id=customer_id,
            template_id=1,
            idempotency_key=f"{run.campaign_id}-{customer_id}",
            send_at=now,
            due_at=now,
            queued_at=now,
            status=MessageStatus.QUEUED,
            attributes={"FirstName": "Ada", "Email": "ada@example.test", "Mobile": "+15005550006"},
        )
        message_batch_send(message_ids=[message.pk], sleep=lambda _: None)
        message.refresh_from_db()
        return message.status, message.error

    return send


def consent_snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every stored consent row and history row, as stored: equal before and after means nothing changed."""
    return {
        "subscriptions": list(
            Subscription.objects.order_by("pk").values_list(
                "pk", "channel_id", "customer_id", "status", "source", "changed_at", "sync_version"
            )
        ),
        "changes": list(
            SubscriptionChange.objects.order_by("pk").values_list(
                "pk", "subscription_id", "status", "source", "detail", "created_at"
            )
        ),
    }
