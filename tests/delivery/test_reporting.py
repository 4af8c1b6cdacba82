"""Reporting to Optimove, against the sandbox served by a real gunicorn: the exact UpdateCampaignMetrics
totals and UpdateCampaignInteractions bodies it receives, reports repeated, an outage, the seven-day
window. The reporting service runs in-process for speed; Optimove's side is the sandbox's records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunKind, RunState
from apps.clients.models import Channel, ChannelKind, Client
from apps.delivery import tasks
from apps.delivery.models import DeliveryEventType, InteractionCursor, OptimoveReport
from apps.delivery.reporting import campaign_report, client_report
from apps.delivery.services import ProviderEvent, delivery_event_record
from apps.sandbox.models import SandboxAccount, SandboxCall, SandboxInteraction, SandboxMetric
from tests.campaigns.harness import make_client
from tests.messages import messages_add

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DAY1, DAY2, DAY3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
SENT, DELIVERED, OPENED, CLICKED, UNSUBSCRIBED, BOUNCED = 0, 1, 2, 3, 4, 9


# Helpers shared with the other test_reporting* modules -------------------------------------------------


def make_run(
    client: Client, *, campaign_id: int = 1001, channel_id: int = 504, kind: str = RunKind.SCHEDULED
) -> CampaignRun:
    channel = Channel.objects.create(
        client=client,
        name=f"Channel {channel_id}",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=channel_id,
        provider="console",
        is_realtime=kind == RunKind.REALTIME,
    )
    return CampaignRun.objects.create(
        client=client,
        channel=channel,
        campaign_id=campaign_id,
        kind=kind,
        state=RunState.SENDING,
        paging_done=True,
    )


def add_message(
    run: CampaignRun,
    customer_id: str,
    template_id: int,
    *,
    sent_at: datetime | None = T0,
    status: str = MessageStatus.SENT,
    **columns: datetime,
) -> Message:
    at = sent_at or T0
    return Message.objects.create(
        run=run,
        customer_id=customer_id,
        template_id=template_id,
        idempotency_key=f"{run.pk}-{customer_id}-{Message.objects.count()}",
        send_at=at,
        due_at=at,
        status=status,
        sent_at=sent_at if status == MessageStatus.SENT else None,
        **columns,
    )


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def known_messages(run: CampaignRun) -> None:
    """Template 14: c1 clicked, c2 opened the next day, c3 bounced. Template 15: c4 delivered and
    unsubscribed the next day; c5 failed and c6 is pending (neither counts)."""
    add_message(run, "c1", 14, delivered_at=minutes(1), opened_at=minutes(5), clicked_at=minutes(6))
    add_message(run, "c2", 14, delivered_at=minutes(2), opened_at=datetime(2026, 3, 3, 8, tzinfo=UTC))
    add_message(run, "c3", 14, bounced_at=minutes(1))
    add_message(run, "c4", 15, delivered_at=minutes(1), unsubscribed_at=datetime(2026, 3, 3, 9, tzinfo=UTC))
    add_message(run, "c5", 15, status=MessageStatus.FAILED)
    add_message(run, "c6", 15, status=MessageStatus.PENDING)


KNOWN_TOTALS = {
    # (ChannelID, CampaignID, TemplateID, MetricID): MetricValue
    (504, 1001, 14, SENT): 3,
    (504, 1001, 14, DELIVERED): 2,
    (504, 1001, 14, OPENED): 2,
    (504, 1001, 14, CLICKED): 1,
    (504, 1001, 14, UNSUBSCRIBED): 0,
    (504, 1001, 14, BOUNCED): 1,
    (504, 1001, 15, SENT): 1,
    (504, 1001, 15, DELIVERED): 1,
    (504, 1001, 15, OPENED): 0,
    (504, 1001, 15, CLICKED): 0,
    (504, 1001, 15, UNSUBSCRIBED): 1,
    (504, 1001, 15, BOUNCED): 0,
}
# (InteractionDate, EventID, TemplateID, CustomerIDs), in the order they are sent.
KNOWN_INTERACTIONS = [
    (DAY1, SENT, 14, ["c1", "c2", "c3"]),
    (DAY1, SENT, 15, ["c4"]),
    (DAY1, DELIVERED, 14, ["c1", "c2"]),
    (DAY1, DELIVERED, 15, ["c4"]),
    (DAY1, OPENED, 14, ["c1"]),
    (DAY1, CLICKED, 14, ["c1"]),
    (DAY1, BOUNCED, 14, ["c3"]),
    (DAY2, OPENED, 14, ["c2"]),
    (DAY2, UNSUBSCRIBED, 15, ["c4"]),
]


def sandbox_totals(account: SandboxAccount) -> dict[tuple[int, int, int, int], int]:
    return {
        (m.channel_id, m.campaign_id, m.template_id, m.metric_id): m.metric_value
        for m in SandboxMetric.objects.filter(account=account)
    }


def sandbox_interactions(account: SandboxAccount, *, campaign_id: int = 1001) -> list[tuple[Any, ...]]:
    """What each UpdateCampaignInteractions call carried, in the order received."""
    rows = SandboxInteraction.objects.filter(account=account).order_by("id")
    heads = {(r.campaign_id, r.recipient_group_id, r.app_id) for r in rows}
    assert heads <= {(campaign_id, 1, "")}, heads
    return [(r.interaction_date, r.event_id, r.template_id, r.customer_ids) for r in rows]


def calls(account: SandboxAccount, function: str) -> list[int]:
    """The statuses the sandbox answered to `function`, in order."""
    return list(
        SandboxCall.objects.filter(account=account, function=function)
        .order_by("id")
        .values_list("status", flat=True)
    )


# Fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture
def sandbox(web_server: Callable[..., str], redis_client: Any) -> tuple[Client, SandboxAccount]:
    account = SandboxAccount.objects.create(name="acme")
    client = make_client(base_url=web_server(workers=1), account=account)
    return client, account


# Tests ------------------------------------------------------------------------------------------------


def test_a_report_sends_the_exact_totals_and_interactions(sandbox: tuple[Client, SandboxAccount]) -> None:
    client, account = sandbox
    run = make_run(client)
    known_messages(run)

    report = campaign_report(run=run, now=NOW)

    assert sandbox_totals(account) == KNOWN_TOTALS
    assert calls(account, "UpdateCampaignMetrics") == [200]  # 12 items: one call
    assert sandbox_interactions(account) == KNOWN_INTERACTIONS
    assert {r.channel_id for r in SandboxInteraction.objects.all()} == {504}
    assert (report.ok, report.metric_calls, report.metric_items) == (True, 1, 12)
    assert (report.interaction_calls, report.interactions, report.pending_interactions) == (9, 12, 0)
    timeline = list(
        OptimoveReport.objects.filter(run=run)
        .order_by("id")
        .values_list("kind", "items", "event_id", "template_id", "interaction_date", "ok", "error")
    )
    assert timeline == [("metrics", 12, None, None, None, True, "")] + [
        ("interactions", len(ids), e, t, d, True, "") for d, e, t, ids in KNOWN_INTERACTIONS
    ]


def test_later_reports_repeat_the_totals_and_send_only_new_interactions(
    sandbox: tuple[Client, SandboxAccount],
) -> None:
    client, account = sandbox
    run = make_run(client)
    known_messages(run)
    campaign_report(run=run, now=NOW)
    SandboxMetric.objects.update(metric_value=-1)  # so the second report's totals are seen to arrive

    second = campaign_report(run=run, now=NOW)

    assert sandbox_totals(account) == KNOWN_TOTALS
    assert calls(account, "UpdateCampaignMetrics") == [200, 200]
    assert len(calls(account, "UpdateCampaignInteractions")) == len(KNOWN_INTERACTIONS)
    assert (second.ok, second.interaction_calls, second.interactions) == (True, 0, 0)

    # New events through the provider path: c2 clicks on day 3 (its delivery and open were reported
    # already), c1 clicks again later (its first click was reported: nothing new), and c7 is sent.
    c1, c2 = (Message.objects.get(run=run, customer_id=c) for c in ("c1", "c2"))
    for message, kind, at in [
        (c2, DeliveryEventType.CLICKED, datetime(2026, 3, 4, 9, tzinfo=UTC)),
        (c1, DeliveryEventType.CLICKED, minutes(30)),
    ]:
        event = ProviderEvent(provider="console", provider_message_id="", event=kind, occurred_at=at)
        delivery_event_record(client=client, event=event, message_id=message.pk)
    add_message(run, "c7", 15, sent_at=datetime(2026, 3, 4, 11, tzinfo=UTC))
    before = SandboxInteraction.objects.count()

    third = campaign_report(run=run, now=NOW)

    new = sandbox_interactions(account)[before:]
    assert new == [(DAY3, SENT, 15, ["c7"]), (DAY3, CLICKED, 14, ["c2"])]
    assert (third.interaction_calls, third.interactions) == (2, 2)
    totals = sandbox_totals(account)
    assert (totals[(504, 1001, 14, CLICKED)], totals[(504, 1001, 15, SENT)]) == (2, 2)
    assert totals[(504, 1001, 14, OPENED)] == 2
    every_id_sent = [(d, e, t, c) for d, e, t, ids in sandbox_interactions(account) for c in ids]
    assert len(every_id_sent) == len(set(every_id_sent)) == 14


def test_an_outage_then_recovery_sends_each_interaction_once(sandbox: tuple[Client, SandboxAccount]) -> None:
    client, account = sandbox
    run = make_run(client)
    add_message(run, "c1", 14, delivered_at=minutes(1))
    campaign_report(run=run, now=NOW)
    add_message(run, "c2", 14, delivered_at=minutes(3), opened_at=minutes(4))
    delivered_c1 = InteractionCursor.objects.get(message__customer_id="c1").reported
    SandboxAccount.objects.filter(pk=account.pk).update(fault_rate=1.0, fault_statuses=[503])

    failed = campaign_report(run=run, now=NOW)

    # The client retried its 503s (1 + OPTIMOVE_MAX_RETRIES calls), then the run's report stopped:
    # Optimove is down, so no interactions call was tried and no cursor moved.
    assert calls(account, "UpdateCampaignMetrics") == [200] + [503] * 6
    assert calls(account, "UpdateCampaignInteractions") == [200, 200]
    assert not failed.ok
    assert failed.errors == (
        "UpdateCampaignMetrics: Optimove UpdateCampaignMetrics answered 503 after 6 attempts",
    )
    assert failed.pending_interactions == 3
    assert not InteractionCursor.objects.filter(message__customer_id="c2").exists()
    assert InteractionCursor.objects.get(message__customer_id="c1").reported == delivered_c1
    last = OptimoveReport.objects.filter(run=run).latest("id")
    assert (last.kind, last.ok, last.error) == (
        "metrics",
        False,
        "Optimove UpdateCampaignMetrics answered 503 after 6 attempts",
    )

    SandboxAccount.objects.filter(pk=account.pk).update(fault_rate=0.0)
    recovered = campaign_report(run=run, now=NOW)

    assert recovered.ok
    assert sandbox_interactions(account) == [
        (DAY1, SENT, 14, ["c1"]),
        (DAY1, DELIVERED, 14, ["c1"]),
        (DAY1, SENT, 14, ["c2"]),
        (DAY1, DELIVERED, 14, ["c2"]),
        (DAY1, OPENED, 14, ["c2"]),
    ]
    assert sandbox_totals(account)[(504, 1001, 14, OPENED)] == 1


def test_only_runs_with_a_send_in_the_last_seven_days_are_reported(
    sandbox: tuple[Client, SandboxAccount], settings: Any
) -> None:
    from config.celery import app

    client, account = sandbox
    now = timezone.now()
    old = make_run(client, campaign_id=1001, channel_id=504)
    add_message(old, "s1", 14, sent_at=now - timedelta(days=8), delivered_at=now - timedelta(days=1))
    realtime = make_run(client, campaign_id=2001, channel_id=505, kind=RunKind.REALTIME)
    add_message(realtime, "r1", 7, sent_at=now - timedelta(days=30))
    add_message(realtime, "r2", 7, sent_at=now - timedelta(days=1))
    assert settings.REPORTING_WINDOW_DAYS == 7

    # The beat's task, with its per-run tasks run in-process as a worker would.
    app.conf.task_always_eager = True
    try:
        enqueued = tasks.report_due()
    finally:
        app.conf.task_always_eager = False

    assert enqueued == 1
    assert set(OptimoveReport.objects.values_list("run", flat=True)) == {realtime.pk}
    assert sandbox_totals(account) == {
        (505, 2001, 7, SENT): 2,
        **{(505, 2001, 7, m): 0 for m in (DELIVERED, OPENED, CLICKED, UNSUBSCRIBED, BOUNCED)},
    }
    assert sandbox_interactions(account, campaign_id=2001) == [
        ((now - timedelta(days=30)).date(), SENT, 7, ["r1"]),
        ((now - timedelta(days=1)).date(), SENT, 7, ["r2"]),
    ]
    # Asked for directly, the old run is still left alone.
    assert campaign_report(run=old).skipped == "nothing sent in the last 7 days"
    assert client_report(client=client, campaign_id=1001) == []
    assert not OptimoveReport.objects.filter(run=old).exists()


def test_ten_thousand_and_one_customers_make_two_calls(sandbox: tuple[Client, SandboxAccount]) -> None:
    client, account = sandbox
    run = make_run(client)
    messages_add(run, 10_001, status=MessageStatus.SENT, template_id=14, at=T0, prefix="cust", sent_at=T0)

    report = campaign_report(run=run, now=NOW)

    received = sandbox_interactions(account)
    assert [(d, e, t, len(ids)) for d, e, t, ids in received] == [
        (DAY1, SENT, 14, 10_000),
        (DAY1, SENT, 14, 1),
    ]
    assert received[0][3] + received[1][3] == [f"cust{i}" for i in range(10_001)]
    assert sandbox_totals(account)[(504, 1001, 14, SENT)] == 10_001
    assert (report.interaction_calls, report.interactions) == (2, 10_001)
    assert InteractionCursor.objects.filter(message__run=run, reported=1 << SENT).count() == 10_001
