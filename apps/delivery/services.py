"""Recording provider events: once each, on their message, moving it only forward."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.campaigns.models import Message
from apps.clients.models import Channel, Client
from apps.delivery.models import DeliveryEvent, DeliveryEventType
from apps.subscriptions.unsubscribe import provider_event_opt_out

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


def _find_message(
    *, client: Client, provider_message_id: str, message_id: int | None, by_provider_id: bool = True
) -> Message | None:
    messages = Message.objects.filter(run__client=client).select_related("run")
    if message_id is not None:
        return messages.filter(pk=message_id).first()
    if not provider_message_id or not by_provider_id:
        return None
    return messages.filter(provider_message_id=provider_message_id).order_by("-pk").first()


def delivery_event_record(
    *,
    client: Client,
    event: ProviderEvent,
    channel: Channel | None = None,
    message_id: int | None = None,
    by_provider_id: bool = True,
) -> DeliveryEvent | None:
    """Stores the event once and moves its message forward. Returns None for a repeat of an event already
    stored. `message_id` is our own id when the provider echoes it back (anymail metadata, our webhook
    receipts); otherwise the provider's message id finds the message, unless `by_provider_id` is false
    (the caller already looked the message up its own way and found none). An event whose message
    cannot be found is kept without one, for the admin."""
    message = _find_message(
        client=client,
        provider_message_id=event.provider_message_id,
        message_id=message_id,
        by_provider_id=by_provider_id,
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
                # An unsubscribe or complaint opts the customer out of the message's channel, in the same
                # transaction as the event: a provider's retry finds both stored, or neither.
                provider_event_opt_out(message=message, event=event, delivery_event_id=stored.pk)
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


# Provider callbacks and self-tracking (apps.delivery.views) ------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    stored: int
    duplicates: int


def delivery_events_record(
    *,
    client: Client,
    channel: Channel | None,
    events: Sequence[tuple[ProviderEvent, int | None]],
    by_provider_id: bool = True,
) -> RecordOutcome:
    """Stores one callback's events (each with our message id when known) all or none: a failure part
    way leaves nothing behind, so the provider's retry of the whole callback starts clean."""
    stored = duplicates = 0
    with transaction.atomic():
        for event, message_id in events:
            if delivery_event_record(
                client=client,
                event=event,
                channel=channel,
                message_id=message_id,
                by_provider_id=by_provider_id,
            ):
                stored += 1
            else:
                duplicates += 1
    return RecordOutcome(stored=stored, duplicates=duplicates)


def webhook_receipts_record(*, channel: Channel, receipts: Sequence[ProviderEvent]) -> RecordOutcome:
    """Receipts from a webhook channel's receiver, each naming its message by the Idempotency-Key we
    sent (its `provider_message_id`): looked up within the channel only."""
    keys = {receipt.provider_message_id for receipt in receipts}
    # A key is unique per run; should two runs of the channel share one, the latest message is meant.
    found = dict(
        Message.objects.filter(run__channel=channel, idempotency_key__in=keys)
        .order_by("pk")
        .values_list("idempotency_key", "pk")
    )
    return delivery_events_record(
        client=channel.client,
        channel=channel,
        events=[(receipt, found.get(receipt.provider_message_id)) for receipt in receipts],
        # Keys follow a public formula: a receiver must not reach another channel's messages by
        # naming their keys, so a key not found in this channel matches nothing.
        by_provider_id=False,
    )


TRACKING_PROVIDER = "tracking"


def tracked_event_record(*, message_id: int, event: DeliveryEventType, url: str = "") -> DeliveryEvent | None:
    """An open (pixel) or a click (redirect) of a self-tracked email. Stored once per message for opens
    and once per message and link for clicks: the first one is what counts, and a mail client or link
    scanner fetching again and again adds no rows. None when the message is gone or it is a repeat."""
    message = Message.objects.select_related("run__client", "run__channel").filter(pk=message_id).first()
    if message is None:
        return None
    if event == DeliveryEventType.CLICKED:
        event_id = f"click:{message_id}:{hashlib.sha256(url.encode()).hexdigest()[:32]}"
    else:
        event_id = f"{event}:{message_id}"
    return delivery_event_record(
        client=message.run.client,
        channel=message.run.channel,
        message_id=message.pk,
        event=ProviderEvent(
            provider=TRACKING_PROVIDER,
            provider_message_id=message.provider_message_id,
            event=event,
            occurred_at=timezone.now(),
            provider_event_id=event_id,
            url=url,
        ),
    )
