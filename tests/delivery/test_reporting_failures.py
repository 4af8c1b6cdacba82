"""Reporting when Optimove fails part of the way: what moves, what waits for the next report, and that
one run's failure leaves the others alone. Optimove is replaced by `responses` (it decides per call);
the database and Redis are real."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from django.db import connections

from apps.campaigns.models import CampaignRun
from apps.clients.models import Client
from apps.delivery.models import InteractionCursor, OptimoveReport
from apps.delivery.reporting import campaign_report, client_report
from tests.delivery.test_reporting import (
    CLICKED,
    DAY1,
    DELIVERED,
    NOW,
    OPENED,
    SENT,
    add_message,
    make_run,
    minutes,
)

BASE = "https://api5.optimove.test"
METRICS = f"{BASE}/current/integrations/UpdateCampaignMetrics"
INTERACTIONS = f"{BASE}/current/integrations/UpdateCampaignInteractions"


@dataclass
class FakeOptimove:
    """Answers each call with `status(function, body)`; keeps the bodies it answered 200."""

    status: Callable[[str, Any], int] = lambda function, body: 200
    accepted: list[tuple[str, Any]] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)

    def handler(self, function: str) -> Callable[[Any], tuple[int, dict[str, str], str]]:
        def answer(request: Any) -> tuple[int, dict[str, str], str]:
            body = json.loads(request.body)
            code = self.status(function, body)
            if code == 200:
                self.accepted.append((function, body))
                return 200, {}, ""
            self.refused.append((function, code))
            return code, {}, "error"

        return answer

    def interactions(self) -> list[tuple[str, int, int, list[str]]]:
        return [
            (b["InteractionDate"], b["EventID"], b["CampaignID"], b["CustomerIDs"])
            for f, b in self.accepted
            if f == "UpdateCampaignInteractions"
        ]


@pytest.fixture
def optimove(redis_client: Any) -> Iterator[FakeOptimove]:
    fake = FakeOptimove()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.add_callback(responses.POST, METRICS, callback=fake.handler("UpdateCampaignMetrics"))
        mocked.add_callback(responses.POST, INTERACTIONS, callback=fake.handler("UpdateCampaignInteractions"))
        yield fake


@pytest.fixture
def acme(db: None) -> Client:
    return Client.objects.create(slug="acme", name="Acme", optimove_base_url=BASE, optimove_api_key="key-1")


def three_events(run: CampaignRun) -> None:
    add_message(run, "c1", 14, delivered_at=minutes(1), opened_at=minutes(2), clicked_at=minutes(3))


def test_a_5xx_mid_run_keeps_the_accepted_calls_and_sends_the_rest_next_time(
    acme: Client, optimove: FakeOptimove
) -> None:
    run = make_run(acme)
    three_events(run)
    # Optimove goes down after accepting the first two interactions calls (Sent, Delivered).
    optimove.status = lambda f, b: (
        503 if f == "UpdateCampaignInteractions" and b["EventID"] >= OPENED else 200
    )

    failed = campaign_report(run=run, now=NOW)

    assert [(d, e, ids) for d, e, _, ids in optimove.interactions()] == [
        ("2026-03-02", SENT, ["c1"]),
        ("2026-03-02", DELIVERED, ["c1"]),
    ]
    # The Opened call was tried 1 + OPTIMOVE_MAX_RETRIES times; Clicked was not tried: Optimove is down.
    assert optimove.refused == [("UpdateCampaignInteractions", 503)] * 6
    assert failed.errors == (
        "UpdateCampaignInteractions (event 2, template 14, 2026-03-02): "
        "Optimove UpdateCampaignInteractions answered 503 after 6 attempts",
    )
    assert (failed.interaction_calls, failed.interactions, failed.pending_interactions) == (2, 2, 2)
    assert InteractionCursor.objects.get().reported == (1 << SENT) | (1 << DELIVERED)

    optimove.status = lambda f, b: 200
    recovered = campaign_report(run=run, now=NOW)

    assert recovered.ok
    assert [(d, e, ids) for d, e, _, ids in optimove.interactions()][2:] == [
        ("2026-03-02", OPENED, ["c1"]),
        ("2026-03-02", CLICKED, ["c1"]),
    ]
    assert InteractionCursor.objects.get().reported == 0b1111


def test_a_400_on_one_call_does_not_hold_back_the_others(acme: Client, optimove: FakeOptimove) -> None:
    run = make_run(acme)
    three_events(run)
    optimove.status = lambda f, b: (
        400 if f == "UpdateCampaignInteractions" and b["EventID"] == OPENED else 200
    )

    report = campaign_report(run=run, now=NOW)

    assert [e for _, e, _, _ in optimove.interactions()] == [SENT, DELIVERED, CLICKED]
    assert optimove.refused == [("UpdateCampaignInteractions", 400)]  # a 400 is not retried
    assert report.errors == (
        "UpdateCampaignInteractions (event 2, template 14, 2026-03-02): "
        "Optimove UpdateCampaignInteractions answered 400",
    )
    assert report.pending_interactions == 1
    failed = OptimoveReport.objects.get(ok=False)
    assert (failed.kind, failed.event_id, failed.template_id, failed.interaction_date, failed.items) == (
        "interactions",
        OPENED,
        14,
        DAY1,
        1,
    )


def test_one_runs_failure_does_not_stop_the_others(acme: Client, optimove: FakeOptimove) -> None:
    first = make_run(acme, campaign_id=1001, channel_id=504)
    second = make_run(acme, campaign_id=1002, channel_id=505)
    add_message(first, "a1", 14)
    add_message(second, "b1", 14)

    def broken_for_1001(function: str, body: Any) -> int:
        items = body if isinstance(body, list) else [body]
        return 500 if any(item["CampaignID"] == 1001 for item in items) else 200

    optimove.status = broken_for_1001

    reports = client_report(client=acme, now=NOW)

    assert [(r.campaign_id, r.ok) for r in reports] == [(1001, False), (1002, True)]
    assert reports[0].errors == (
        "UpdateCampaignMetrics: Optimove UpdateCampaignMetrics answered 500 after 6 attempts",
    )
    assert reports[0].pending_interactions == 1
    assert optimove.interactions() == [("2026-03-02", SENT, 1002, ["b1"])]
    assert {(f, b[0]["CampaignID"]) for f, b in optimove.accepted if f == "UpdateCampaignMetrics"} == {
        ("UpdateCampaignMetrics", 1002)
    }


def test_rejected_credentials_are_named_and_stop_the_run(acme: Client, optimove: FakeOptimove) -> None:
    run = make_run(acme)
    three_events(run)
    optimove.status = lambda f, b: 401

    report = campaign_report(run=run, now=NOW)

    assert optimove.refused == [("UpdateCampaignMetrics", 401)]
    assert report.errors == (
        "UpdateCampaignMetrics: Optimove UpdateCampaignMetrics rejected the credentials (401): "
        "check the client's Optimove credentials",
    )
    assert "key-1" not in OptimoveReport.objects.get().error


def test_a_client_without_credentials_is_shown_on_the_timeline(acme: Client, optimove: FakeOptimove) -> None:
    Client.objects.filter(pk=acme.pk).update(optimove_api_key="")
    run = make_run(Client.objects.get(pk=acme.pk))
    add_message(run, "c1", 14)

    report = campaign_report(
        run=CampaignRun.objects.select_related("client", "channel").get(pk=run.pk), now=NOW
    )

    assert optimove.accepted == optimove.refused == []
    assert report.errors == (
        "cannot call Optimove: Optimove credentials have neither an API key nor a user name and password",
    )
    assert list(OptimoveReport.objects.values_list("kind", "items", "ok")) == [("metrics", 0, False)]


def test_a_report_already_under_way_is_not_doubled(acme: Client, optimove: FakeOptimove) -> None:
    run = make_run(acme)
    add_message(run, "c1", 14)
    other = connections.create_connection("default")  # another process's session, as it were
    lock = [f"delivery-report:run:{run.pk}"]
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", lock)
        skipped = campaign_report(run=run, now=NOW)
        with other.cursor() as cursor:
            # Unlocked explicitly: a closed session's locks go only once its backend has exited, a
            # moment after the close, which made this test race on a busy machine.
            cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", lock)
    finally:
        other.close()

    assert skipped.skipped == "another report of this run is under way"
    assert optimove.accepted == optimove.refused == []
    assert campaign_report(run=run, now=NOW).interactions == 1  # the other report is over


def test_the_window_is_measured_from_now(acme: Client, optimove: FakeOptimove) -> None:
    run = make_run(acme)
    add_message(run, "c1", 14, sent_at=datetime(2026, 2, 25, 12, 0, tzinfo=UTC))  # NOW - 7 days exactly

    assert campaign_report(run=run, now=NOW).interactions == 1
    later = datetime(2026, 3, 4, 12, 0, 1, tzinfo=UTC)
    assert campaign_report(run=run, now=later).skipped == "nothing sent in the last 7 days"


def test_the_beat_reports_every_four_hours_on_the_reporting_queue(settings: Any) -> None:
    assert settings.REPORTING_INTERVAL_SECONDS == 14_400
    assert settings.CELERY_BEAT_SCHEDULE["delivery-report"] == {
        "task": "delivery.report_due",
        "schedule": 14_400,
        "options": {"queue": "reporting", "expires": 14_400},
    }
    assert settings.CELERY_TASK_ROUTES["delivery.report_due"] == {"queue": "reporting"}
    assert settings.CELERY_TASK_ROUTES["delivery.report_run"] == {"queue": "reporting"}
