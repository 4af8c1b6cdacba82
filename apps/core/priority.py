"""CPU priority for workers of bulk work. A scheduled campaign's sends and audience pages can keep
every core busy for minutes; a real-time trigger must still reach its provider within a second on the
same machine. A worker that does not consume the `realtime` queue therefore runs at a lower priority
(BULK_WORKER_NICENESS): it takes whatever CPU the listener, the realtime worker and PostgreSQL leave,
which is all of it while no trigger arrives. On a machine of its own it loses nothing."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

logger = logging.getLogger(__name__)

# Queues whose tasks someone waits for: a worker consuming any of them keeps its priority.
LATENCY_QUEUES = frozenset({"realtime"})
AUTOGROUP = Path("/proc/self/autogroup")


def worker_priority_lower(*, queues: Iterable[str], niceness: int) -> int:
    """Lowers this process's priority to `niceness` (never raises it) when it consumes none of the
    LATENCY_QUEUES; the pool children it forks afterwards inherit it. Returns the niceness now in force.

    Linux weighs each session as one group ("autogroup", on by default on desktop and many server
    kernels): a niceness only counts against processes of the same session. A worker that leads its own
    session (a service or a container's command often does) gives its session's group the niceness
    too, or the lower priority would change nothing against the web and PostgreSQL."""
    queues = set(queues)
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness <= current or not queues or queues & LATENCY_QUEUES:
        return current
    os.setpriority(os.PRIO_PROCESS, 0, niceness)
    if os.getsid(0) == os.getpid() and AUTOGROUP.exists():
        # Raising a group's niceness needs no privilege; the kernel may refuse a change made too soon
        # after another one, or be built without autogroups: the process niceness above still holds.
        with contextlib.suppress(OSError):
            AUTOGROUP.write_text(str(niceness))
    logger.info("bulk worker: CPU niceness %s for queues %s", niceness, ",".join(sorted(queues)))
    return niceness
