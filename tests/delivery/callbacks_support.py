"""Shared pieces of the provider-callback tests: recorded bodies, sent messages, and a snapshot of
everything a callback could change."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunState
from apps.clients.models import Channel, Client
from apps.delivery.models import DeliveryEvent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers"
SENT_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

MESSAGE_COLUMNS = (
    "delivery_state",
    "delivered_at",
    "opened_at",
    "clicked_at",
    "bounced_at",
    "complained_at",
    "unsubscribed_at",
    "status",
)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def make_client(slug: str) -> Client:
    return Client.objects.create(slug=slug, name=slug.title(), optimove_base_url="https://api5.optimove.net")


def sent_message(
    channel: Channel, *, customer: str, provider_id: str = "", key: str | None = None, campaign_id: int = 1
) -> Message:
    run, _ = CampaignRun.objects.get_or_create(
        client=channel.client,
        channel=channel,
        campaign_id=campaign_id,
        defaults={"state": RunState.SENDING, "paging_done": True},
    )
    return Message.objects.create(
        run=run,
        customer_id=customer,
        template_id=14,
        idempotency_key=key or f"key-{channel.optimove_channel_id}-{customer}",
        send_at=SENT_AT,
        due_at=SENT_AT,
        status=MessageStatus.SENT,
        sent_at=SENT_AT,
        provider_message_id=provider_id,
    )


def state(message: Message) -> dict[str, Any]:
    message.refresh_from_db()
    return {column: getattr(message, column) for column in MESSAGE_COLUMNS}


def snapshot() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every stored event and every message's delivery columns: what a forged call must not change."""
    events = list(DeliveryEvent.objects.order_by("pk").values_list())
    messages = list(Message.objects.order_by("pk").values_list("pk", *MESSAGE_COLUMNS))
    return events, messages
