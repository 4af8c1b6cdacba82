"""`manage.py customer_erase`: one customer's address leaves no trace in any table of the platform,
another customer's data is untouched, and the kept opt-out still stops the next send. Real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from apps.campaigns.models import (
    CampaignCancellation,
    CampaignRun,
    CancelledCustomer,
    Message,
    MessageStatus,
    RunKind,
    RunState,
)
from apps.campaigns.services import message_batch_send
from apps.clients.models import Channel, Client
from apps.delivery.models import DeliveryEvent, DeliveryEventType
from apps.optimove.models import Notification
from apps.subscriptions.erasure import ERASED_REASON
from apps.subscriptions.models import ConsentSource, ConsentStatus, Subscription, SubscriptionChange
from apps.subscriptions.services import ConsentUpdate, subscription_opt_out, subscriptions_set

ERIN, BOB = "C-ERIN", "C-BOB"
ERIN_EMAIL, ERIN_PHONE = "erin@example.com", "+4915112345678"
BOB_EMAIL, BOB_PHONE = "bob@example.net", "+4917699887766"
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=3)


def text_columns() -> list[tuple[str, str]]:
    """Every text, varchar, json and jsonb column of every platform table (the sandbox stands in for
    Optimove and is left out)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.table_name, c.column_name
              FROM information_schema.columns c
              JOIN information_schema.tables t
                ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
               AND c.data_type IN ('text', 'character varying', 'json', 'jsonb')
               AND c.table_name NOT LIKE 'sandbox\\_%%'
             ORDER BY 1, 2
            """
        )
        return [(table, column) for table, column in cursor.fetchall()]


def where_found(needle: str) -> set[str]:
    """Every "table.column" holding `needle` anywhere in its text, in any case."""
    found: set[str] = set()
    with connection.cursor() as cursor:
        for table, column in text_columns():
            cursor.execute(
                f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE %s',  # noqa: S608 (catalogue names)
                [f"%{needle}%"],
            )
            if cursor.fetchone()[0]:
                found.add(f"{table}.{column}")
    return found


def run_for(channel: Channel, campaign_id: int, *, kind: str = RunKind.SCHEDULED) -> CampaignRun:
    return CampaignRun.objects.create(
        client=channel.client,
        channel=channel,
        campaign_id=campaign_id,
        kind=kind,
        state=RunState.SENDING,
        paging_done=True,
    )


def message(
    run: CampaignRun,
    customer_id: str,
    attributes: dict[str, str],
    *,
    status: str = MessageStatus.SENT,
    error: str = "",
    key: str = "",
) -> Message:
    history: list[dict[str, str]] = [{"status": "pending", "at": T0.isoformat()}]
    if status != MessageStatus.PENDING:
        history.append({"status": status, "at": T0.isoformat(), **({"reason": error} if error else {})})
    return Message.objects.create(
        run=run,
        customer_id=customer_id,
        template_id=7,
        idempotency_key=key or f"{run.pk}-{customer_id}",
        send_at=T0,
        due_at=T0,
        status=status,
        sent_at=T0 if status == MessageStatus.SENT else None,
        provider_message_id=f"pm-{customer_id}-{run.pk}" if status == MessageStatus.SENT else "",
        attributes=attributes,
        error=error,
        history=history,
        delivered_at=T0 if status == MessageStatus.SENT else None,
        delivery_state="delivered" if status == MessageStatus.SENT else "",
    )


def event(
    client: Client, *, msg: Message | None, raw: dict[str, Any], url: str = "", kind: str = "delivered"
) -> None:
    DeliveryEvent.objects.create(
        client=client,
        message=msg,
        provider="anymail:sendgrid",
        provider_message_id=msg.provider_message_id if msg else "unknown-id",
        event=kind,
        occurred_at=T0,
        dedupe_key=f"e{DeliveryEvent.objects.count()}",
        url=url,
        raw=raw,
    )


def trigger(client: Client, customer_id: str, email: str, phone: str, *, pascal: bool = False) -> None:
    if pascal:
        body: dict[str, Any] = {
            "EventTypeID": 11,
            "TimeStamp": "2026-10-01 09:00:00",
            "CampaignID": 3001,
            "ChannelID": 505,
            "TemplateID": 7,
            "CustomerID": customer_id,
            "PromoCode": ["P-" + customer_id],
            "Personalization": {"Mobile": phone, "FirstName": customer_id.title()},
        }
    else:
        body = {
            "eventTypeID": 11,
            "timeStamp": "2026-10-01 09:00:00",
            "campaignID": 3001,
            "channelID": 505,
            "templateID": 7,
            "customerID": customer_id,
            "promoCode": "P-" + customer_id,
            "referrer_email": email,
            "personalization": {"Email": email, "Mobile": phone, "FirstName": customer_id.title()},
        }
    Notification.objects.create(client=client, event_type_id=11, campaign_id=3001, body=body, acted=True)


def seed_customer(
    client: Client,
    email: Channel,
    sms: Channel,
    runs: dict[str, CampaignRun],
    customer_id: str,
    address: str,
    phone: str,
) -> None:
    """The customer's address and phone in every place the platform keeps personal data."""
    sent = message(runs["email"], customer_id, {"Email": address, "FirstName": "Someone"})
    failed = message(
        runs["email2"],
        customer_id,
        {"Email": address},
        status=MessageStatus.FAILED,
        # As an older path might have stored it: the provider echoing the address.
        error=f"550 5.1.1 <{address}>: mailbox unavailable",
    )
    message(
        runs["sms"], customer_id, {"Mobile": phone}, status=MessageStatus.PENDING, key=f"rt-{customer_id}-1"
    )
    message(runs["sms"], customer_id, {"Mobile": phone}, key=f"rt-{customer_id}-2")
    event(client, msg=sent, raw={"email": address, "event": "delivered", "sg_message_id": "x"})
    event(
        client,
        msg=sent,
        kind=DeliveryEventType.CLICKED,
        raw={"email": address, "event": "click"},
        url=f"https://shop.example/offers?u={address.replace('@', '%40')}",
    )
    event(client, msg=failed, raw={"email": address, "event": "bounce"}, kind=DeliveryEventType.BOUNCED)
    # Provider events we could not link to a message, carrying the address (in another case) or the phone.
    event(client, msg=None, raw={"events": [{"email": address.upper(), "event": "dropped"}]})
    event(client, msg=None, raw={"MessageSid": "SM1", "To": phone, "MessageStatus": "undelivered"})
    trigger(client, customer_id, address, phone)
    trigger(client, customer_id, address, phone, pascal=True)
    cancellation, _ = CampaignCancellation.objects.get_or_create(client=client, campaign_id=4004)
    CancelledCustomer.objects.create(
        cancellation=cancellation, customer_id=customer_id, action_id="2", promo_code=f"WELCOME-{customer_id}"
    )
    # Consent: opted in by the API, then out by a keyword reply on email; opted in on SMS. The details
    # name the evidence, one carelessly with the address.
    subscriptions_set(
        channel=email,
        updates=[ConsentUpdate(customer_id, ConsentStatus.OPTED_IN)],
        source=ConsentSource.API,
        detail="token ab12",
        at=T0,
    )
    subscription_opt_out(
        channel=email,
        customer_id=customer_id,
        source=ConsentSource.ONE_CLICK,
        detail=f"one-click from {address}",
        at=T1,
    )
    subscriptions_set(
        channel=sms,
        updates=[ConsentUpdate(customer_id, ConsentStatus.OPTED_IN)],
        source=ConsentSource.SMS_KEYWORD,
        detail=f"START from {phone}",
        at=T0,
    )


@pytest.fixture
def seeded(acme: Client, email: Channel, sms: Channel) -> dict[str, CampaignRun]:
    sms.is_realtime = True
    sms.save(update_fields=["is_realtime"])
    runs = {
        "email": run_for(email, 1001),
        "email2": run_for(email, 1002),
        "sms": run_for(sms, 3001, kind=RunKind.REALTIME),
    }
    seed_customer(acme, email, sms, runs, ERIN, ERIN_EMAIL, ERIN_PHONE)
    seed_customer(acme, email, sms, runs, BOB, BOB_EMAIL, BOB_PHONE)
    # A notification of another kind that carries Erin's address in a nested object.
    Notification.objects.create(
        client=acme,
        event_type_id=2,
        campaign_id=1001,
        body={"EventTypeID": 2, "CampaignID": 1001, "Contact": {"mail": ERIN_EMAIL}},
    )
    return runs


def bob_snapshot() -> Any:
    return (
        list(Message.objects.filter(customer_id=BOB).order_by("pk").values()),
        list(
            DeliveryEvent.objects.exclude(message__customer_id=ERIN)
            .filter(raw__icontains="bob")
            .order_by("pk")
            .values()
        )
        + list(DeliveryEvent.objects.filter(raw__icontains=BOB_PHONE).order_by("pk").values()),
        list(Notification.objects.filter(body__icontains=BOB).order_by("pk").values()),
        list(CancelledCustomer.objects.filter(customer_id=BOB).values()),
        list(Subscription.objects.filter(customer_id=BOB).order_by("pk").values()),
        list(SubscriptionChange.objects.filter(subscription__customer_id=BOB).order_by("pk").values()),
    )


def erase(*args: str) -> str:
    out = StringIO()
    call_command("customer_erase", *args, stdout=out)
    return out.getvalue()


def test_erase_leaves_no_trace_of_the_address_and_keeps_only_the_proof_of_the_opt_out(
    seeded: dict[str, CampaignRun], acme: Client, email: Channel, sms: Channel, redis_client: Any
) -> None:
    # The search finds the seeded data everywhere it was put, so finding nothing afterwards means something.
    expected = {
        "campaigns_message.attributes",
        "campaigns_message.error",
        "campaigns_message.history",
        "delivery_deliveryevent.raw",
        "optimove_notification.body",
        "subscriptions_subscriptionchange.detail",
    }
    assert where_found(ERIN_EMAIL) == expected
    assert where_found("erin%40example.com") == {"delivery_deliveryevent.url"}  # URL-encoded in a link
    assert where_found(ERIN_PHONE.lstrip("+")) == {
        "campaigns_message.attributes",
        "delivery_deliveryevent.raw",
        "optimove_notification.body",
        "subscriptions_subscriptionchange.detail",
    }
    bob_before = bob_snapshot()
    assert len(bob_before[1]) == 5

    output = erase("acme", ERIN)

    assert where_found(ERIN_EMAIL) == set()
    assert where_found(ERIN_PHONE.lstrip("+")) == set()
    assert where_found("erin%40example.com") == set()
    assert bob_snapshot() == bob_before
    assert where_found(BOB_EMAIL) == expected
    assert output == (
        "Erased this customer's personal data for client acme:\n"
        "  - messages: attributes, errors and history cleared on 4 messages (1 unsent, now cancelled)\n"
        "  - provider events: payload and link cleared on 5 events\n"
        "  - Optimove notifications: cut down to their ids on 3 notifications\n"
        "  - cancelled campaigns: 1 promo code removed\n"
        "  - consent: 1 subscription (not opted out) deleted\n"
        "  - consent: 2 change rows deleted\n"
        "  - consent: detail blanked on 1 opt-out row\n"
        "Kept as proof: 1 opt-out (status, source and time only).\n"
    )
    assert ERIN_EMAIL not in output
    assert ERIN_PHONE not in output

    # Ids, states, times and delivery columns stay; the unsent message is cancelled with the reason.
    erin = list(
        Message.objects.filter(customer_id=ERIN)
        .order_by("pk")
        .values_list("run__campaign_id", "status", "attributes", "error", "delivery_state")
    )
    assert erin == [
        (1001, MessageStatus.SENT, {}, "", "delivered"),
        (1002, MessageStatus.FAILED, {}, "550 5.1.1 <[redacted]>: mailbox unavailable", ""),
        (3001, MessageStatus.CANCELLED, {}, ERASED_REASON, ""),
        (3001, MessageStatus.SENT, {}, "", "delivered"),
    ]
    assert (
        Message.objects.get(customer_id=ERIN, status=MessageStatus.CANCELLED).history[-1]["reason"]
        == ERASED_REASON
    )
    assert list(
        Notification.objects.filter(event_type_id=11, body__icontains=ERIN)
        .order_by("pk")
        .values_list("body", flat=True)
    ) == [
        {
            "eventTypeID": 11,
            "timeStamp": "2026-10-01 09:00:00",
            "campaignID": 3001,
            "channelID": 505,
            "templateID": 7,
            "customerID": ERIN,
        },
        {
            "EventTypeID": 11,
            "TimeStamp": "2026-10-01 09:00:00",
            "CampaignID": 3001,
            "ChannelID": 505,
            "TemplateID": 7,
            "CustomerID": ERIN,
        },
    ]
    assert list(
        CancelledCustomer.objects.filter(customer_id=ERIN).values_list("action_id", "promo_code")
    ) == [("2", "")]

    # Consent keeps the opt-out and its own change row (status, source, time), nothing else.
    assert list(
        Subscription.objects.filter(customer_id=ERIN).values_list(
            "channel_id", "status", "source", "changed_at"
        )
    ) == [(email.pk, ConsentStatus.OPTED_OUT, ConsentSource.ONE_CLICK, T1)]
    assert list(
        SubscriptionChange.objects.filter(subscription__customer_id=ERIN).values_list(
            "status", "source", "detail", "created_at"
        )
    ) == [(ConsentStatus.OPTED_OUT, ConsentSource.ONE_CLICK, "", T1)]

    # The kept opt-out still stops the next send on that channel.
    next_run = run_for(email, 1003)
    queued = message(next_run, ERIN, {"Email": "erin.new@example.com"}, status=MessageStatus.QUEUED)
    outcome = message_batch_send(message_ids=[queued.pk])
    assert (outcome.claimed, outcome.sent, outcome.skipped) == (1, 0, 1)
    assert outcome.reasons == {queued.pk: "opted out of this channel"}
    queued.refresh_from_db()
    assert (queued.status, queued.error) == (MessageStatus.SKIPPED, "opted out of this channel")


def test_erasing_again_finds_nothing_but_the_kept_opt_out(seeded: dict[str, CampaignRun]) -> None:
    erase("acme", ERIN)
    assert erase("acme", ERIN) == (
        "Nothing of this customer's personal data was found for client acme.\n"
        "Kept as proof: 1 opt-out (status, source and time only).\n"
    )


def test_a_customer_with_nothing_stored_is_told_so(seeded: dict[str, CampaignRun]) -> None:
    bob_before = bob_snapshot()
    assert (
        erase("acme", "C-NOBODY") == "Nothing of this customer's personal data was found for client acme.\n"
    )
    assert bob_snapshot() == bob_before


def test_erase_stays_within_the_client(seeded: dict[str, CampaignRun], acme: Client) -> None:
    Client.objects.create(slug="globex", name="Globex", optimove_base_url="https://api5.optimove.net")
    before = where_found(ERIN_EMAIL)
    assert erase("globex", ERIN) == "Nothing of this customer's personal data was found for client globex.\n"
    assert where_found(ERIN_EMAIL) == before
    assert Message.objects.filter(customer_id=ERIN).exclude(attributes={}).count() == 4
    assert SubscriptionChange.objects.filter(subscription__customer_id=ERIN).count() == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", ERIN), "No client with slug 'nope'. Known slugs: acme."),
        (
            ("acme", " C-ERIN"),
            "Cannot erase: the customer id must be a non-empty string without spaces around it.",
        ),
        (("acme", "x" * 129), "Cannot erase: the customer id is at most 128 characters."),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    seeded: dict[str, CampaignRun], args: tuple[str, str], message: str
) -> None:
    before = (
        list(Message.objects.order_by("pk").values()),
        list(SubscriptionChange.objects.order_by("pk").values()),
    )
    with pytest.raises(CommandError) as raised:
        erase(*args)
    assert str(raised.value) == message
    after = (
        list(Message.objects.order_by("pk").values()),
        list(SubscriptionChange.objects.order_by("pk").values()),
    )
    assert after == before
