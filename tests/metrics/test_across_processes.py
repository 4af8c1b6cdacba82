"""The issue's done-when: after a campaign run by a separate Celery worker process, the message counts
scraped from the web's /metrics equal the database's, and what the worker recorded (its Optimove calls,
its provider sends) shows up in the web's /metrics: prometheus_client's multiprocess mode works.

Real processes: gunicorn (2 workers) serving the platform and the sandbox, a Celery worker (2 pool
children), Celery beat; the sandbox plays Optimove (with some 503s) and a local HTTP receiver plays the
webhook provider (refusing some customers). Takes about 15 s of real time."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from apps.campaigns.models import CampaignRun, Message, MessageStatus
from apps.metrics.multiproc import process_identifier
from apps.optimove.listeners import listeners_sync
from apps.sandbox.models import SandboxAccount, SandboxCall
from apps.sandbox.services import sandbox_fire
from tests.campaigns.harness import make_client, sandbox_campaign, webhook_channel, worker_env
from tests.conftest import wait_for
from tests.metrics.support import Samples, parse_samples, select, value
from tests.receivers import Received, http_receiver

pytestmark = pytest.mark.worker

CUSTOMERS = 300
STATUSES = [s.value for s in MessageStatus]
PROVIDER = {"client": "acme", "channel": "510", "kind": "webhook", "provider": "webhook"}


def refuse_some(received: Received) -> tuple[int, dict[str, Any]]:
    # A 400 is final: those messages fail, each after exactly one provider call.
    return (
        (400, {"error": "unknown"}) if received.json()["customer_id"].endswith("7") else (200, {"ok": True})
    )


def scrape(base: str) -> Samples:
    response = requests.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200, response.text[:500]
    return parse_samples(response.text)


def optimove_calls_answered(since_id: int) -> dict[tuple[str, str], float]:
    """Every Optimove API call the sandbox answered, by function and status: the truth to compare with."""
    calls = SandboxCall.objects.filter(pk__gt=since_id).values_list("function", "status")
    return {(function, str(status)): float(n) for (function, status), n in Counter(calls).items()}


def optimove_calls_scraped(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (labels["function"], labels["status"]): v
        for key, v in select(samples, "partner_optimove_requests_total").items()
        for labels in [dict(key)]
    }


def test_metrics_scraped_from_the_web_equal_the_database_after_a_campaign_run_by_a_worker(
    web_server: Any, celery_worker: Any, celery_beat: Any, settings: Any, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"  # the one directory web and worker share, empty at start
    env = worker_env(OPTIMOVE_PAGE_SIZE=100, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    base = web_server(workers=2, **env)
    settings.PUBLIC_BASE_URL = base
    account = SandboxAccount.objects.create(name="metrics")
    with http_receiver(respond=refuse_some) as hook:
        client = make_client(base_url=base, account=account)
        webhook_channel(client, url=hook.url)
        listeners_sync(client=client)  # this test process's calls: not in the shared directory
        first_call = SandboxCall.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        # From here on only the worker calls Optimove, and one call in four is answered 503 and retried.
        SandboxAccount.objects.filter(pk=account.pk).update(fault_rate=0.25, fault_statuses=[503])
        celery_worker(**env)
        celery_beat(**env)
        sandbox_campaign(account, campaign_id=1111, channel_id=510, size=CUSTOMERS, seed=11, offsets=(0,))
        [notification] = sandbox_fire(account=account, event_type_id=13, campaign_id=1111, channel_id=510)
        assert notification.status_code == 200
        wait_for(
            lambda: CampaignRun.objects.filter(state="completed").exists(), 60, "the run to complete", 0.25
        )

    in_db = {status: float(Message.objects.filter(status=status).count()) for status in STATUSES}
    assert in_db["sent"] + in_db["failed"] == CUSTOMERS
    assert in_db["sent"] > 0
    assert in_db["failed"] > 0
    samples = scrape(base)

    # Gauges read from the database at scrape time.
    scraped = {
        s: value(samples, "partner_messages", client="acme", channel="510", status=s) for s in STATUSES
    }
    assert scraped == in_db
    assert value(samples, "partner_campaign_runs", client="acme", state="completed") == 1
    assert value(samples, "partner_queue_lag_seconds") == 0

    # Counters recorded in the worker's pool processes, served by the web's processes.
    name = "partner_provider_messages_total"
    assert value(samples, name, **PROVIDER, result="sent") == in_db["sent"]
    assert value(samples, name, **PROVIDER, result="failed") == in_db["failed"]
    assert value(samples, name, **PROVIDER, result="retry") == 0
    assert (
        value(samples, "partner_provider_call_duration_seconds_count", kind="webhook", provider="webhook")
        >= 3
    )
    # Beat may have the worker report to Optimove meanwhile: wait until the last call is recorded.
    wait_for(
        lambda: optimove_calls_scraped(scrape(base)) == optimove_calls_answered(first_call),
        10,
        "the scraped Optimove calls to match the sandbox's log",
    )
    samples = scrape(base)
    calls = optimove_calls_scraped(samples)
    assert calls == optimove_calls_answered(first_call)
    run = CampaignRun.objects.get()
    # Three pages of 100 and the empty page that ends paging, at least (some pages were retried).
    assert calls[("GetCustomerSendDetailsByChannel", "200")] >= run.pages_fetched + 1 == 4

    # Every web process answers the same: they all read the same files and the same database.
    for _ in range(6):
        again = scrape(base)
        for family in (
            "partner_messages",
            "partner_provider_messages_total",
            "partner_optimove_requests_total",
        ):
            assert select(again, family) == select(samples, family)

    # Each process wrote its own files, named by host and pid, and no gauge files (nothing live to clean).
    host = re.escape(process_identifier(1).removesuffix("-1"))
    names = [p.name for p in metrics_dir.iterdir()]
    assert names
    assert [n for n in names if not re.fullmatch(rf"(counter|histogram)_{host}-\d+\.db", n)] == []
    assert len({n.split("_", 1)[1] for n in names}) >= 2  # web and worker processes
