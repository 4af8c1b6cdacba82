"""What `/metrics` reads from the database and the broker at scrape time.

These are gauges of the truth, not counters kept by processes, so they are right whichever process
serves the scrape and however many workers did the work.

Counting messages stays cheap as the table grows (it is never pruned): a completed run's counts cannot
change while it stays completed, so they are counted once and kept in this process, keyed by the run's
`completed_at` (a run that goes back to sending, e.g. after "retry failed messages", and completes again
gets a new key). Only the other runs are counted at each scrape, by one GROUP BY answered from the
index on (run, status) without touching the table. Kept counts are recounted after
METRICS_COMPLETED_RUN_CACHE_SECONDS (spread out), which also heals a message deleted by hand in the admin.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import redis
from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from apps.campaigns.models import ACTIVE_RUN_STATES, CampaignRun, Message, MessageStatus, RunState

# Celery's default queue: a task sent without a route lands here, where no worker of ours listens.
CELERY_DEFAULT_QUEUE = "celery"
# kombu's Redis transport keeps a queue's messages of priority 3, 6 and 9 in lists of their own.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (3, 6, 9)


@dataclass(frozen=True, slots=True)
class RunInfo:
    client: str
    channel: int
    state: str


@dataclass(frozen=True, slots=True)
class DatabaseSnapshot:
    # (client slug, Optimove channel id) -> status -> messages; every status present, zeros included.
    messages: Mapping[tuple[str, int], Mapping[str, int]]
    # (client slug, run state) -> runs
    runs: Mapping[tuple[str, str], int]
    # Seconds since the oldest message the dispatcher should have released fell due; 0 when none.
    queue_lag_seconds: float


@dataclass
class _Kept:
    completed_at: datetime
    expires: float  # time.monotonic()
    counts: dict[str, int]


class _CompletedRunCounts:
    """Per-process memory of completed runs' message counts; see the module's docstring."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kept: dict[int, _Kept] = {}

    def clear(self) -> None:
        with self.lock:
            self.kept.clear()


_completed = _CompletedRunCounts()


def message_counts_forget() -> None:
    """Drops the kept counts of completed runs (tests; nothing else needs it)."""
    _completed.clear()


def database_snapshot(*, now: datetime | None = None) -> DatabaseSnapshot:
    now = now or timezone.now()
    runs: dict[int, RunInfo] = {}
    completed_at: dict[int, datetime] = {}
    for pk, state, done_at, slug, channel_id in CampaignRun.objects.values_list(
        "pk", "state", "completed_at", "client__slug", "channel__optimove_channel_id"
    ).order_by():
        runs[pk] = RunInfo(client=slug, channel=channel_id, state=state)
        if state == RunState.COMPLETED and done_at is not None:
            completed_at[pk] = done_at
    per_run = _message_counts_by_run(runs, completed_at)
    messages: dict[tuple[str, int], dict[str, int]] = {}
    run_states: dict[tuple[str, str], int] = defaultdict(int)
    for pk, info in runs.items():
        run_states[(info.client, info.state)] += 1
        counts = per_run.get(pk)
        if not counts:
            continue
        channel = messages.setdefault((info.client, info.channel), dict.fromkeys(MessageStatus.values, 0))
        for status, n in counts.items():
            channel[status] = channel.get(status, 0) + n
    return DatabaseSnapshot(
        messages=messages, runs=dict(run_states), queue_lag_seconds=_queue_lag_seconds(now)
    )


def _message_counts_by_run(
    runs: Mapping[int, RunInfo], completed_at: Mapping[int, datetime]
) -> dict[int, dict[str, int]]:
    with _completed.lock:
        clock = time.monotonic()
        kept = {
            pk: entry.counts
            for pk, entry in _completed.kept.items()
            if completed_at.get(pk) == entry.completed_at and entry.expires > clock
        }
        to_count = [pk for pk in runs if pk not in kept]
        counted: dict[int, dict[str, int]] = {pk: {} for pk in to_count}
        if to_count:
            rows = Message.objects.values_list("run_id", "status").annotate(n=Count("*")).order_by()
            if len(to_count) < len(runs):
                rows = rows.filter(run_id__in=to_count)
            for run_id, status, n in rows:
                if run_id in counted:  # a run created since the list above waits for the next scrape
                    counted[run_id][status] = n
        ttl = settings.METRICS_COMPLETED_RUN_CACHE_SECONDS
        _completed.kept = {
            pk: _Kept(
                completed_at=completed_at[pk],
                # Spread over half the period, so the recounts do not all fall on one scrape.
                expires=clock + ttl * random.uniform(0.5, 1.0),
                counts=counted[pk],
            )
            for pk in to_count
            if pk in completed_at
        } | {pk: entry for pk, entry in _completed.kept.items() if pk in kept}
        return kept | counted


def _queue_lag_seconds(now: datetime) -> float:
    """How late the dispatcher is: the oldest due pending message of a run it serves (active, not
    held). One index probe per active run (on the pending-messages index), whatever the table's size."""
    oldest_due = (
        Message.objects.filter(run=OuterRef("pk"), status=MessageStatus.PENDING)
        .order_by("due_at")
        .values("due_at")[:1]
    )
    oldest = (
        CampaignRun.objects.filter(state__in=ACTIVE_RUN_STATES)
        .filter(Q(hold_until__isnull=True) | Q(hold_until__lte=now))
        .annotate(oldest_due=Subquery(oldest_due))
        .values_list("oldest_due", flat=True)
    )
    due = [at for at in oldest if at is not None and at <= now]
    return (now - min(due)).total_seconds() if due else 0.0


def queue_names() -> list[str]:
    """The Celery queues of the platform, plus Celery's default one (a misrouted task would wait there)."""
    names = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    for extra in (settings.CELERY_TASK_DEFAULT_QUEUE, CELERY_DEFAULT_QUEUE):
        if extra not in names:
            names.append(extra)
    return names


@lru_cache(maxsize=2)
def _broker(url: str) -> redis.Redis:
    # A scrape must answer quickly even when the broker does not.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def queue_lengths(names: Iterable[str]) -> dict[str, int]:
    """Tasks waiting in each queue (the broker's lists; tasks a worker already reserved are not counted)."""
    names = list(names)
    pipe = _broker(settings.CELERY_BROKER_URL).pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
        for step in _PRIORITY_STEPS:
            pipe.llen(f"{name}{_PRIORITY_SEPARATOR}{step}")
    lengths = iter(pipe.execute())
    per_queue = 1 + len(_PRIORITY_STEPS)
    return {name: sum(int(next(lengths)) for _ in range(per_queue)) for name in names}
