"""The retention purge: what goes after each client's period, what stays, and that run totals and what
apps.delivery.reporting computes are the same before and after. Real PostgreSQL; nothing mocked."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.campaigns.models import (
    CampaignCancellation,
    CampaignRun,
    CancelledCustomer,
    Message,
    MessageStatus,
    RunKind,
    RunState,
)
from apps.campaigns.services import run_progress
from apps.clients.models import Channel, ChannelKind, Client
from apps.delivery.models import DeliveryEvent, DeliveryEventType, InteractionCursor
from apps.delivery.reporting import run_metric_totals, run_pending_interactions
from apps.optimove.models import Notification
from apps.optimove.types import MetricID
from apps.subscriptions import retention
from apps.subscriptions.retention import PURGE_LOCK, PurgeResult, personal_data_purge
from apps.subscriptions.tasks_personal import purge_personal_data

NOW = timezone.now()
ADA = {"Email": "ada@example.com", "FirstName": "Adalind", "Mobile": "+447700900123"}


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture
def globex(db: None) -> Client:
    return Client.objects.create(
        slug="globex",
        name="Globex",
        optimove_base_url="https://api5.optimove.net",
        personal_data_retention_days=60,
    )


def make_run(channel: Channel, *, campaign_id: int = 1, kind: str = RunKind.SCHEDULED) -> CampaignRun:
    return CampaignRun.objects.create(
        client=channel.client,
        channel=channel,
        campaign_id=campaign_id,
        kind=kind,
        state=RunState.SENDING,
        paging_done=True,
        fetched_count=0,
    )


def add_message(
    run: CampaignRun,
    customer_id: str,
    *,
    send_at: datetime,
    status: str = MessageStatus.SENT,
    attributes: dict[str, Any] | None = None,
    error: str = "",
    template_id: int = 7,
    **columns: Any,
) -> Message:
    history: list[dict[str, str]] = [{"status": "pending", "at": send_at.isoformat()}]
    if status != MessageStatus.PENDING:
        entry = {"status": status, "at": send_at.isoformat()}
        if error:
            entry["reason"] = error
        history.append(entry)
    message = Message.objects.create(
        run=run,
        customer_id=customer_id,
        template_id=template_id,
        idempotency_key=f"{customer_id}-{Message.objects.count()}",
        send_at=send_at,
        due_at=send_at,
        status=status,
        sent_at=send_at if status == MessageStatus.SENT else None,
        attributes=dict(ADA) if attributes is None else attributes,
        error=error,
        history=history,
        **columns,
    )
    CampaignRun.objects.filter(pk=run.pk).update(fetched_count=Message.objects.filter(run=run).count())
    return message


def add_event(
    client: Client, *, received: datetime, message: Message | None = None, **fields: Any
) -> DeliveryEvent:
    event = DeliveryEvent.objects.create(
        client=client,
        message=message,
        provider="anymail:sendgrid",
        event=fields.pop("event", DeliveryEventType.DELIVERED),
        occurred_at=received,
        dedupe_key=f"k{DeliveryEvent.objects.count()}",
        **fields,
    )
    DeliveryEvent.objects.filter(pk=event.pk).update(received_at=received)  # auto_now_add on create
    return event


def add_notification(client: Client, *, created: datetime, body: dict[str, Any]) -> Notification:
    notification = Notification.objects.create(
        client=client, event_type_id=body.get("eventTypeID", body.get("EventTypeID")), body=body
    )
    Notification.objects.filter(pk=notification.pk).update(created_at=created)
    return notification


def trigger_body(customer_id: str) -> dict[str, Any]:
    return {
        "eventTypeID": 11,
        "timeStamp": "2026-03-02 10:15:42",
        "campaignID": 2001,
        "channelID": 505,
        "templateID": 7,
        "customerID": customer_id,
        "promoCode": "ADA-ONLY-77",
        "event_device_type": "mobile",
        "personalization": {"FirstName": "Adalind", "Email": "ada@example.com"},
    }


def personal_columns(pk: int) -> tuple[Any, ...]:
    return tuple(
        Message.objects.filter(pk=pk)
        .values_list("attributes", "error", "history", "personal_data_purged_at")
        .get()
    )


def test_old_finished_messages_lose_personal_data_and_newer_or_unfinished_keep_it(
    acme: Client, email: Channel, globex: Client
) -> None:
    run = make_run(email)
    old_sent = add_message(run, "c1", send_at=days_ago(40))
    # A reason written by a path that forgot to redact: addresses and the first name go, the rest stays.
    old_failed = add_message(
        run,
        "c2",
        send_at=days_ago(31),
        status=MessageStatus.FAILED,
        error="550 mailbox ada@example.com full; greeting Adalind, call +447700900123, cc boss@example.org",
    )
    old_skipped = add_message(
        run, "c3", send_at=days_ago(35), status=MessageStatus.SKIPPED, error="opted out of this channel"
    )
    old_pending = add_message(run, "c4", send_at=days_ago(40), status=MessageStatus.PENDING)
    old_sending = add_message(run, "c5", send_at=days_ago(40), status=MessageStatus.SENDING)
    recent = add_message(run, "c6", send_at=days_ago(29))
    globex_channel = Channel.objects.create(
        client=globex, name="Email", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="console"
    )
    globex_run = make_run(globex_channel)
    globex_old = add_message(globex_run, "g1", send_at=days_ago(61))
    globex_within = add_message(globex_run, "g2", send_at=days_ago(40))
    untouched = {m.pk: personal_columns(m.pk) for m in (old_pending, old_sending, recent, globex_within)}

    result = personal_data_purge(now=NOW)

    assert result == PurgeResult(messages=4, clients=2)
    for message in (old_sent, old_skipped, globex_old):
        message.refresh_from_db()
        assert message.attributes == {}
        assert message.personal_data_purged_at is not None
        assert message.history[0] == {"status": "pending", "at": message.send_at.isoformat()}
    old_skipped.refresh_from_db()
    assert old_skipped.error == "opted out of this channel"
    assert old_skipped.history[1]["reason"] == "opted out of this channel"
    old_failed.refresh_from_db()
    # The message's own values are replaced; anything else that looks like an address is redacted too.
    scrubbed = "550 mailbox [redacted] full; greeting [redacted], call [redacted], cc [email]"
    assert (old_failed.attributes, old_failed.error) == ({}, scrubbed)
    assert old_failed.history == [
        {"status": "pending", "at": old_failed.send_at.isoformat()},
        {"status": "failed", "at": old_failed.send_at.isoformat(), "reason": scrubbed},
    ]
    # Ids, states and times stay.
    assert list(
        Message.objects.filter(pk=old_failed.pk).values_list("customer_id", "template_id", "status")
    ) == [("c2", 7, MessageStatus.FAILED)]
    for pk, columns in untouched.items():
        assert personal_columns(pk) == columns
        assert columns[0] == ADA


def test_old_provider_payloads_trigger_personalization_and_promo_codes_are_purged(
    acme: Client, email: Channel, globex: Client
) -> None:
    message = add_message(make_run(email), "c1", send_at=days_ago(45))
    old_click = add_event(
        acme,
        received=days_ago(31),
        message=message,
        event=DeliveryEventType.CLICKED,
        url="https://user:pw@shop.example:8443/offers/spring?email=ada%40example.com#top",
        raw={"email": "ada@example.com", "event": "click"},
    )
    old_unmatched = add_event(acme, received=days_ago(40), raw={"To": "+447700900123"})
    recent_event = add_event(
        acme, received=days_ago(2), raw={"email": "ada@example.com"}, url="https://x.example/?a=1"
    )
    globex_event = add_event(globex, received=days_ago(40), raw={"email": "ada@example.com"})
    old_trigger = add_notification(acme, created=days_ago(31), body=trigger_body("c1"))
    old_scheduled = add_notification(
        acme, created=days_ago(90), body={"EventTypeID": 13, "CampaignID": 5, "ChannelID": 504}
    )
    recent_trigger = add_notification(acme, created=days_ago(1), body=trigger_body("c1"))
    globex_trigger = add_notification(globex, created=days_ago(40), body=trigger_body("g1"))
    old_cancel = CampaignCancellation.objects.create(client=acme, campaign_id=9)
    CampaignCancellation.objects.filter(pk=old_cancel.pk).update(created_at=days_ago(40))
    new_cancel = CampaignCancellation.objects.create(client=acme, campaign_id=10)
    old_promo = CancelledCustomer.objects.create(
        cancellation=old_cancel, customer_id="c1", action_id="3", promo_code="ADA-1"
    )
    new_promo = CancelledCustomer.objects.create(
        cancellation=new_cancel, customer_id="c1", action_id="3", promo_code="ADA-2"
    )

    result = personal_data_purge(now=NOW)

    assert result == PurgeResult(messages=1, delivery_events=2, notifications=1, promo_codes=1, clients=2)
    old_click.refresh_from_db()
    assert (old_click.raw, old_click.url, old_click.event, old_click.message_id) == (
        {},
        "https://shop.example:8443/offers/spring",
        DeliveryEventType.CLICKED,
        message.pk,
    )
    old_unmatched.refresh_from_db()
    assert (old_unmatched.raw, old_unmatched.personal_data_purged_at is not None) == ({}, True)
    for kept in (recent_event, globex_event):
        raw = kept.raw
        kept.refresh_from_db()
        assert (kept.raw, kept.personal_data_purged_at) == (raw, None)
    old_trigger.refresh_from_db()
    assert old_trigger.body == {
        "eventTypeID": 11,
        "timeStamp": "2026-03-02 10:15:42",
        "campaignID": 2001,
        "channelID": 505,
        "templateID": 7,
        "customerID": "c1",
    }
    for kept_notification in (old_scheduled, recent_trigger, globex_trigger):
        body = kept_notification.body
        kept_notification.refresh_from_db()
        assert (kept_notification.body, kept_notification.personal_data_purged_at) == (body, None)
    assert list(
        CancelledCustomer.objects.order_by("pk").values_list("pk", "customer_id", "action_id", "promo_code")
    ) == [
        (old_promo.pk, "c1", "3", ""),
        (new_promo.pk, "c1", "3", "ADA-2"),
    ]


def test_run_totals_and_reporting_are_identical_before_and_after(acme: Client, email: Channel) -> None:
    run = make_run(email, campaign_id=77)
    at = days_ago(40)
    for n in range(6):
        add_message(
            run,
            f"s{n}",
            send_at=at + timedelta(minutes=n),
            template_id=7 + n % 2,
            delivered_at=at + timedelta(hours=1) if n < 5 else None,
            opened_at=at + timedelta(hours=2) if n < 3 else None,
            clicked_at=at + timedelta(hours=3) if n == 0 else None,
            bounced_at=at + timedelta(hours=1) if n == 5 else None,
            delivery_state="opened" if n < 3 else "delivered",
        )
    add_message(
        run, "f1", send_at=at, status=MessageStatus.FAILED, error="gave up after 5 attempts: 421 busy"
    )
    add_message(run, "k1", send_at=at, status=MessageStatus.SKIPPED, error="opted out of this channel")
    add_message(run, "x1", send_at=at, status=MessageStatus.CANCELLED)
    # Some interactions were accepted by Optimove already: those bits must survive the purge.
    first = Message.objects.get(run=run, customer_id="s0")
    InteractionCursor.objects.create(message=first, reported=0b111)
    realtime = make_run(
        Channel.objects.create(
            client=acme,
            name="SMS",
            kind=ChannelKind.SMS,
            optimove_channel_id=505,
            provider="console",
            is_realtime=True,
        ),
        campaign_id=78,
        kind=RunKind.REALTIME,
    )
    add_message(realtime, "r1", send_at=at, delivered_at=at)
    add_message(realtime, "r1", send_at=at + timedelta(hours=5))

    kept_columns = [
        f.attname
        for f in Message._meta.concrete_fields
        if f.attname not in ("attributes", "error", "history", "personal_data_purged_at")
    ]

    def observed() -> Any:
        return [
            (
                r.fetched_count,
                run_progress(run=r),
                run_metric_totals(run=r),
                run_pending_interactions(run=r),
                list(Message.objects.filter(run=r).order_by("pk").values_list(*kept_columns)),
            )
            for r in (CampaignRun.objects.get(pk=run.pk), CampaignRun.objects.get(pk=realtime.pk))
        ] + [list(InteractionCursor.objects.values_list("message_id", "reported"))]

    before = observed()
    assert (
        before[0][2][0].values[MetricID.SENT] == 3
    )  # template 7: three sent (s0, s2, s4): the totals are not empty
    result = personal_data_purge(now=NOW)

    assert result.messages == 11
    assert not Message.objects.exclude(attributes={}).exists()
    assert observed() == before


def test_a_second_purge_changes_nothing(acme: Client, email: Channel) -> None:
    run = make_run(email)
    add_message(run, "c1", send_at=days_ago(40), status=MessageStatus.FAILED, error="bad ada@example.com")
    add_message(run, "c2", send_at=days_ago(3))
    add_event(acme, received=days_ago(40), raw={"email": "ada@example.com"}, url="https://a.example/p?x=1")
    add_notification(acme, created=days_ago(40), body=trigger_body("c1"))
    CancelledCustomer.objects.create(
        cancellation=CampaignCancellation.objects.create(client=acme, campaign_id=9),
        customer_id="c1",
        promo_code="P",
    )
    CampaignCancellation.objects.update(created_at=days_ago(40))

    def snapshot() -> Any:
        return (
            list(Message.objects.order_by("pk").values()),
            list(DeliveryEvent.objects.order_by("pk").values()),
            list(Notification.objects.order_by("pk").values()),
            list(CancelledCustomer.objects.order_by("pk").values()),
        )

    first = personal_data_purge(now=NOW)
    assert first == PurgeResult(messages=1, delivery_events=1, notifications=1, promo_codes=1, clients=1)
    after_first = snapshot()

    assert personal_data_purge(now=NOW) == PurgeResult(clients=1)
    assert snapshot() == after_first


def test_batches_commit_one_by_one_so_a_crash_half_way_loses_nothing(
    acme: Client, email: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(email)
    messages = [add_message(run, f"c{n}", send_at=days_ago(40) + timedelta(seconds=n)) for n in range(5)]
    real_scrub = retention.scrub_history
    calls = {"n": 0}

    def crash_in_the_second_batch(history: object, secrets: Any) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker killed")
        return real_scrub(history, secrets)

    monkeypatch.setattr(retention, "scrub_history", crash_in_the_second_batch)
    with pytest.raises(RuntimeError, match="worker killed"):
        personal_data_purge(now=NOW, batch_size=2)
    purged = set(Message.objects.filter(personal_data_purged_at__isnull=False).values_list("pk", flat=True))
    assert purged == {messages[0].pk, messages[1].pk}  # the first batch, oldest first, was committed

    monkeypatch.setattr(retention, "scrub_history", real_scrub)
    with CaptureQueriesContext(connection) as queries:
        result = personal_data_purge(now=NOW, batch_size=2)
    assert result == PurgeResult(messages=3, clients=1)
    assert not Message.objects.filter(personal_data_purged_at__isnull=True).exists()
    updates = [
        q["sql"] for q in queries.captured_queries if q["sql"].lstrip().startswith("UPDATE campaigns_message")
    ]
    assert len(updates) == 2  # three rows left, two per batch


def test_a_spent_time_budget_stops_and_the_next_run_continues(acme: Client, email: Channel) -> None:
    message = add_message(make_run(email), "c1", send_at=days_ago(40))
    assert personal_data_purge(now=NOW, time_budget_seconds=0) == PurgeResult(clients=1, complete=False)
    message.refresh_from_db()
    assert message.attributes == ADA
    assert personal_data_purge(now=NOW) == PurgeResult(messages=1, clients=1)


def test_only_one_purge_runs_at_a_time(acme: Client, email: Channel) -> None:
    message = add_message(make_run(email), "c1", send_at=days_ago(40))
    db = connection.settings_dict
    other = psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"],
        port=db["PORT"],
        autocommit=True,
    )
    try:
        other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [PURGE_LOCK])
        assert personal_data_purge(now=NOW) == PurgeResult(complete=False, locked_out=True)
        message.refresh_from_db()
        assert message.attributes == ADA
        other.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [PURGE_LOCK])
    finally:
        other.close()
    assert personal_data_purge(now=NOW).messages == 1


def test_the_beat_task_purges_on_the_reporting_queue(settings: Any, acme: Client, email: Channel) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["subscriptions-purge-personal-data"]
    assert entry == {
        "task": "subscriptions.purge_personal_data",
        "schedule": settings.PERSONAL_DATA_PURGE_INTERVAL_SECONDS,
        "options": {"queue": "reporting", "expires": settings.PERSONAL_DATA_PURGE_INTERVAL_SECONDS},
    }
    assert settings.CELERY_TASK_ROUTES["subscriptions.purge_personal_data"] == {"queue": "reporting"}
    message = add_message(make_run(email), "c1", send_at=timezone.now() - timedelta(days=31))
    purge_personal_data.apply()
    message.refresh_from_db()
    assert message.attributes == {}
