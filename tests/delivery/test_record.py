"""Recording provider events on their messages: once each, only forward, nothing dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunState
from apps.clients.models import Channel, ChannelKind, Client
from apps.delivery.models import DeliveryEvent, DeliveryEventType
from apps.delivery.services import ProviderEvent, delivery_event_record

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def message(db: None) -> Message:
    client = Client.objects.create(slug="acme", name="Acme", optimove_base_url="https://x.test")
    channel = Channel.objects.create(
        client=client, name="Email", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="console"
    )
    run = CampaignRun.objects.create(client=client, channel=channel, campaign_id=1, state=RunState.SENDING)
    return Message.objects.create(
        run=run,
        customer_id="c1",
        template_id=14,
        idempotency_key="k1",
        send_at=T0,
        due_at=T0,
        status=MessageStatus.SENT,
        sent_at=T0,
        provider_message_id="esp-1",
    )


def event(kind: DeliveryEventType, minutes: int, *, pid: str = "esp-1", event_id: str = "") -> ProviderEvent:
    return ProviderEvent(
        provider="anymail:postmark",
        provider_message_id=pid,
        event=kind,
        occurred_at=T0 + timedelta(minutes=minutes),
        provider_event_id=event_id,
    )


def test_states_move_only_forward_and_keep_the_first_times(message: Message) -> None:
    client = message.run.client
    delivery_event_record(client=client, event=event(DeliveryEventType.OPENED, 5))
    delivery_event_record(client=client, event=event(DeliveryEventType.DELIVERED, 1))  # late, earlier time
    delivery_event_record(client=client, event=event(DeliveryEventType.UNSUBSCRIBED, 9))
    message.refresh_from_db()
    assert message.delivery_state == "opened"
    assert (message.delivered_at, message.opened_at, message.clicked_at) == (
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=5),
        None,
    )
    assert message.unsubscribed_at == T0 + timedelta(minutes=9)
    delivery_event_record(client=client, event=event(DeliveryEventType.CLICKED, 7))
    message.refresh_from_db()
    assert (message.delivery_state, message.clicked_at) == ("clicked", T0 + timedelta(minutes=7))


def test_a_repeated_callback_is_stored_once(message: Message) -> None:
    client = message.run.client
    first = delivery_event_record(client=client, event=event(DeliveryEventType.DELIVERED, 1, event_id="e1"))
    again = delivery_event_record(client=client, event=event(DeliveryEventType.DELIVERED, 2, event_id="e1"))
    same_no_id = [
        delivery_event_record(client=client, event=event(DeliveryEventType.OPENED, 3)) for _ in range(2)
    ]
    assert first is not None
    assert again is None
    assert same_no_id[0] is not None
    assert same_no_id[1] is None
    assert DeliveryEvent.objects.count() == 2


def test_an_event_for_an_unknown_message_is_kept(message: Message) -> None:
    stored = delivery_event_record(
        client=message.run.client, event=event(DeliveryEventType.BOUNCED, 1, pid="nope")
    )
    assert stored is not None
    assert (stored.message, stored.channel, stored.provider_message_id) == (None, None, "nope")
    message.refresh_from_db()
    assert (message.delivery_state, message.bounced_at) == ("", None)


def test_our_own_message_id_finds_the_message_and_other_clients_cannot_reach_it(message: Message) -> None:
    other = Client.objects.create(slug="beta", name="Beta", optimove_base_url="https://x.test")
    stray = delivery_event_record(
        client=other, event=event(DeliveryEventType.DELIVERED, 1, pid="esp-1"), message_id=message.pk
    )
    assert stray is not None
    assert stray.message is None
    mine = delivery_event_record(
        client=message.run.client, event=event(DeliveryEventType.DELIVERED, 1, pid=""), message_id=message.pk
    )
    assert mine is not None
    assert mine.message == message
    assert mine.channel == message.run.channel
