"""Recording provider events: once each, on their message, moving it only forward."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction

from apps.campaigns.models import Message
from apps.clients.models import Channel, Client
from apps.delivery.models import DeliveryEvent, DeliveryEventType

# The message's delivery_state is the furthest of these reached; complaints and unsubscribes are
# recorded in their own columns and do not change it.
STATE_RANK: dict[str, int] = {
    "": 0,
    DeliveryEventType.UNDELIVERED: 1,
    DeliveryEventType.BOUNCED: 1,
    DeliveryEventType.DELIVERED: 2,
    DeliveryEventType.OPENED: 3,
    DeliveryEventType.CLICKED: 4,
}
# Which first-time columns an event sets. An open proves delivery, a click proves both.
IMPLIED_COLUMNS: dict[str, tuple[str, ...]] = {
    DeliveryEventType.DELIVERED: ("delivered_at",),
    DeliveryEventType.OPENED: ("delivered_at", "opened_at"),
    DeliveryEventType.CLICKED: ("delivered_at", "opened_at", "clicked_at"),
    DeliveryEventType.BOUNCED: ("bounced_at",),
    DeliveryEventType.UNDELIVERED: ("bounced_at",),
    DeliveryEventType.COMPLAINED: ("complained_at",),
    DeliveryEventType.UNSUBSCRIBED: ("unsubscribed_at",),
}


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One event as a provider reported it, already mapped to our vocabulary."""

    provider: str
    provider_message_id: str
    event: DeliveryEventType
    occurred_at: datetime
    provider_event_id: str = ""
    url: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def dedupe_key(self) -> str:
        material = (
            f"{self.provider}|event|{self.provider_event_id}"
            if self.provider_event_id
            else f"{self.provider}|{self.provider_message_id}|{self.event}|{self.occurred_at.isoformat()}"
        )
        return hashlib.sha256(material.encode()).hexdigest()


def _find_message(*, client: Client, provider_message_id: str, message_id: int | None) -> Message | None:
    messages = Message.objects.filter(run__client=client).select_related("run")
    if message_id is not None:
        return messages.filter(pk=message_id).first()
    if not provider_message_id:
        return None
    return messages.filter(provider_message_id=provider_message_id).order_by("-pk").first()


def delivery_event_record(
    *, client: Client, event: ProviderEvent, channel: Channel | None = None, message_id: int | None = None
) -> DeliveryEvent | None:
    """Stores the event once and moves its message forward. Returns None for a repeat of an event already
    stored. `message_id` is our own id when the provider echoes it back (anymail metadata, our webhook
    receipts); otherwise the provider's message id finds the message. An event whose message cannot be
    found is kept without one, for the admin."""
    message = _find_message(
        client=client, provider_message_id=event.provider_message_id, message_id=message_id
    )
    try:
        with transaction.atomic():
            stored = DeliveryEvent.objects.create(
                client=client,
                channel=channel or (message.run.channel if message else None),
                message=message,
                provider=event.provider,
                provider_message_id=event.provider_message_id[:255],
                event=event.event,
                occurred_at=event.occurred_at,
                dedupe_key=event.dedupe_key(),
                url=event.url,
                raw=event.raw,
            )
            if message is not None:
                _move_forward(message_id=message.pk, event=event.event, at=event.occurred_at)
    except IntegrityError:
        return None  # the provider retried a callback we already have
    return stored


def _move_forward(*, message_id: int, event: str, at: datetime) -> None:
    columns = IMPLIED_COLUMNS[event]
    # The earliest time wins, whatever order the provider's callbacks arrive in.
    sets = ", ".join(f"{c} = LEAST(COALESCE({c}, %s), %s)" for c in columns)
    rank = STATE_RANK.get(event)
    params: list[Any] = [at] * (2 * len(columns))
    state_sql = ""
    if rank is not None:
        # Rank of the current state computed in SQL, so two events racing still end at the furthest.
        state_sql = """, delivery_state = CASE WHEN (CASE delivery_state
                WHEN 'clicked' THEN 4 WHEN 'opened' THEN 3 WHEN 'delivered' THEN 2
                WHEN 'bounced' THEN 1 WHEN 'undelivered' THEN 1 ELSE 0 END) < %s THEN %s
                ELSE delivery_state END"""
        params += [rank, event]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE campaigns_message SET {sets}{state_sql} WHERE id = %s",  # noqa: S608 (columns are ours)
            [*params, message_id],
        )
