"""Workers of bulk work (sends, audience pages, reporting) run at a lower CPU priority, so that a
campaign keeping the cores busy does not slow the listener and the real-time sends beside it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.worker

BULK_NICENESS = 10  # config.settings.base.BULK_WORKER_NICENESS


def _processes(main_pid: int) -> list[int]:
    """The worker's main process and its pool children."""
    children = Path(f"/proc/{main_pid}/task/{main_pid}/children").read_text().split()
    assert children, "the worker has no pool children"
    return [main_pid, *map(int, children)]


def _niceness(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


def _autogroup_niceness(pid: int) -> int | None:
    """The niceness of the scheduler group of the process's session, where the kernel has them."""
    path = Path(f"/proc/{pid}/autogroup")
    if not path.exists():
        return None
    return int(path.read_text().split()[-1])  # "/autogroup-123 nice 10"


def test_a_sends_and_audience_worker_and_its_pool_run_at_the_bulk_niceness(celery_worker: Any) -> None:
    ours = _niceness(0)
    worker = celery_worker(queues="sends,audience", concurrency=2)
    pids = _processes(worker.process.pid)
    assert [_niceness(pid) for pid in pids] == [max(BULK_NICENESS, ours)] * len(pids)
    # The test starts the worker in a session of its own, as a service manager would: the session's
    # group is lowered too, or the niceness would not count against the web's and PostgreSQL's groups.
    if _autogroup_niceness(worker.process.pid) is not None:
        assert _autogroup_niceness(worker.process.pid) == BULK_NICENESS


def test_a_worker_taking_realtime_keeps_its_priority(celery_worker: Any) -> None:
    ours = _niceness(0)
    worker = celery_worker(queues="realtime,sends", concurrency=1)
    assert {_niceness(pid) for pid in _processes(worker.process.pid)} == {ours}
    if _autogroup_niceness(worker.process.pid) is not None:
        assert _autogroup_niceness(worker.process.pid) == 0


def test_a_zero_niceness_leaves_a_bulk_worker_alone(celery_worker: Any) -> None:
    ours = _niceness(0)
    worker = celery_worker(queues="reporting", concurrency=1, BULK_WORKER_NICENESS="0")
    assert {_niceness(pid) for pid in _processes(worker.process.pid)} == {ours}
