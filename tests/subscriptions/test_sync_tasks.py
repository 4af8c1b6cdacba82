"""The periodic consent sync: the beat entry and routes, `subscriptions.sync_due` queueing one task per
channel with states to push (and only those), and a real worker on the `reporting` queue pushing them
to the sandbox (slow: it starts a worker, a few seconds)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.clients.models import Channel, Client
from apps.subscriptions import tasks
from apps.subscriptions.models import ConsentSyncCall, ConsentSyncRejection
from apps.subscriptions.sync import CHANNEL_TASK, DUE_TASK, SYNC_QUEUE, sync_history_prune
from tests.conftest import wait_for
from tests.subscriptions.sync_support import (
    MODES,
    OUT,
    Consent,
    accepted,
    consent,
    sandbox_server,
    set_states,
)

__all__ = ["consent", "sandbox_server"]


def queued(redis_client: Any) -> list[tuple[str, dict[str, Any], str | None]]:
    """(task name, keyword arguments, expires) of each task waiting in the reporting queue."""
    found = []
    for raw in redis_client.lrange(SYNC_QUEUE, 0, -1):
        message = json.loads(raw)
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append((message["headers"]["task"], kwargs, message["headers"]["expires"]))
    return found


def test_the_beat_runs_the_due_task_every_minute_on_the_reporting_queue() -> None:
    assert settings.CELERY_BEAT_SCHEDULE["subscriptions-sync"] == {
        "task": DUE_TASK,
        "schedule": 60.0,
        "options": {"queue": "reporting", "expires": 120.0},
    }
    assert settings.CELERY_TASK_ROUTES[DUE_TASK] == {"queue": "reporting"}
    assert settings.CELERY_TASK_ROUTES[CHANNEL_TASK] == {"queue": "reporting"}


def test_the_due_task_queues_one_task_per_channel_with_states_to_push(
    consent: Consent, redis_client: Any
) -> None:
    other = Client.objects.create(
        slug="other", name="Other", optimove_base_url=consent.base_url, is_active=False
    )
    other_email = Channel.objects.create(client=other, name="Email", kind="email", optimove_channel_id=504)
    off = Channel.objects.create(
        client=consent.client, name="Batch", kind="email", optimove_channel_id=507, consent_sync="off"
    )
    for channel in (consent.email, consent.sms, other_email, off):
        set_states(channel, {"c1": OUT})
    # The push channel has no state at all.

    tasks.sync_due()

    waiting = queued(redis_client)
    assert sorted(
        ((name, kwargs) for name, kwargs, _ in waiting), key=lambda item: item[1]["channel_id"]
    ) == sorted(
        [(CHANNEL_TASK, {"channel_id": consent.email.pk}), (CHANNEL_TASK, {"channel_id": consent.sms.pk})],
        key=lambda item: item[1]["channel_id"],
    )
    # A task still waiting when the next beat comes is dropped: that beat queued a fresh one.
    for _name, _kwargs, expires in waiting:
        assert expires is not None
        left = (datetime.fromisoformat(expires) - timezone.now()).total_seconds()
        assert 55 < left <= 60


def test_the_channel_task_pushes_and_a_missing_channel_is_a_no_op(consent: Consent) -> None:
    set_states(consent.email, {"c1": OUT, "c2": OUT})

    tasks.sync_channel(channel_id=consent.email.pk)
    tasks.sync_channel(channel_id=999_999)

    assert consent.preference_calls() == [(MODES[OUT], "", ["c1", "c2"])]
    assert accepted(consent.email) == {"c1", "c2"}


def test_a_worker_pushes_what_the_beat_finds(consent: Consent, celery_worker: Any) -> None:
    celery_worker(queues="reporting", concurrency=1, PUBLIC_BASE_URL=consent.base_url)
    set_states(consent.email, {"c1": OUT, "c2": OUT})
    set_states(consent.sms, {"s1": OUT})

    tasks.sync_due.apply_async()  # as beat sends it

    wait_for(
        lambda: accepted(consent.email) == {"c1", "c2"} and accepted(consent.sms) == {"s1"}, 30, "the push"
    )
    assert consent.preference_calls() == [(MODES[OUT], "", ["c1", "c2"])]
    assert len(consent.attribute_calls()) == 1
    wait_for(
        lambda: ConsentSyncCall.objects.filter(method="attribute", callback_success=True).exists(), 10, "cb"
    )


def test_old_call_records_and_rejections_are_pruned(consent: Consent, settings: Any) -> None:
    now = timezone.now()
    old = now - timedelta(days=settings.SUBSCRIPTIONS_SYNC_HISTORY_DAYS, seconds=1)
    recent = now - timedelta(days=settings.SUBSCRIPTIONS_SYNC_HISTORY_DAYS - 1)
    calls = [
        ConsentSyncCall.objects.create(
            client=consent.client, channel=consent.sms, method="attribute", customers=1, sent_at=at
        )
        for at in (old, recent)
    ]
    for call, at in zip(calls, (old, recent), strict=True):
        ConsentSyncRejection.objects.create(
            client=consent.client,
            channel=consent.sms,
            call=call,
            customer_id="s1",
            reason="x",
            received_at=at,
        )

    assert sync_history_prune(now=now) == (1, 1)
    assert list(ConsentSyncCall.objects.values_list("pk", flat=True)) == [calls[1].pk]
    assert list(ConsentSyncRejection.objects.values_list("received_at", flat=True)) == [recent]
