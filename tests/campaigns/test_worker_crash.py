"""A worker killed with SIGKILL mid-run loses nothing: the sweeper puts its work back in motion, and a
message sent again carries the same idempotency key as the first time."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest

from apps.campaigns.models import CampaignRun, Message
from apps.optimove.listeners import listeners_sync
from apps.sandbox.models import SandboxAccount
from apps.sandbox.services import sandbox_fire
from tests.campaigns.harness import make_client, sandbox_campaign, webhook_channel, worker_env
from tests.conftest import wait_for
from tests.receivers import Received, http_receiver

pytestmark = pytest.mark.worker

CUSTOMERS = 2000


def slow_ok(_: Received) -> tuple[int, dict[str, Any]]:
    time.sleep(0.005)  # a receiver with some latency, so the run is still going when the worker dies
    return 200, {"ok": True}


def test_a_worker_killed_mid_run_loses_nothing_and_repeats_carry_the_same_key(
    web_server: Any, celery_worker: Any, celery_beat: Any, settings: Any
) -> None:
    env = worker_env(
        MESSAGE_SENDING_TIMEOUT_SECONDS=5,
        MESSAGE_QUEUED_TIMEOUT_SECONDS=5,
        PAGING_STALL_SECONDS=5,
        SWEEP_INTERVAL_SECONDS=1,
    )
    base = web_server(**env)
    settings.PUBLIC_BASE_URL = base
    account = SandboxAccount.objects.create(name="crash")
    with http_receiver(respond=slow_ok) as hook:
        client = make_client(base_url=base, account=account)
        channel = webhook_channel(client, url=hook.url)
        channel.provider_options = {**channel.provider_options, "concurrency": 1}
        channel.save()
        listeners_sync(client=client)
        doomed = celery_worker(**env)
        celery_beat(**env)
        sandbox_campaign(account, campaign_id=1111, channel_id=510, size=CUSTOMERS, seed=5, offsets=(0,))
        sandbox_fire(account=account, event_type_id=13, campaign_id=1111, channel_id=510)
        wait_for(lambda: hook.count() >= 300, 60, "the run to be under way")
        doomed.kill()  # SIGKILL to the worker and its pool processes, mid-batch
        killed_at = time.monotonic()
        assert hook.count() < CUSTOMERS, "the run finished before the worker was killed"
        celery_worker(**env)
        wait_for(lambda: CampaignRun.objects.filter(state="completed").exists(), 60, "the run to complete")
        completed_after = time.monotonic() - killed_at
        wait_for(lambda: len({r.json()["customer_id"] for r in hook.received}) >= CUSTOMERS, 10, "deliveries")

    assert completed_after <= 60
    assert Message.objects.count() == CUSTOMERS
    assert Message.objects.exclude(status="sent").count() == 0
    keys_by_customer: dict[str, set[str]] = defaultdict(set)
    for received in hook.received:
        body = received.json()
        assert received.headers["idempotency-key"] == body["id"]
        keys_by_customer[body["customer_id"]].add(body["id"])
    assert len(keys_by_customer) == CUSTOMERS  # no customer missing
    assert all(len(keys) == 1 for keys in keys_by_customer.values())  # every repeat has the first key
    repeats = len(hook.received) - CUSTOMERS
    print(
        f"killed a worker mid-run: {repeats} repeat deliveries, run completed {completed_after:.1f} s later"
    )
    stored = dict(Message.objects.values_list("customer_id", "idempotency_key"))
    assert {customer: keys.pop() for customer, keys in keys_by_customer.items()} == stored
