"""prometheus_client's multiprocess mode, set up the same way in every process of the platform.

Counters recorded in Celery pool children and gunicorn workers must reach the one `/metrics` the web
serves. With `PROMETHEUS_MULTIPROC_DIR` set, each process writes its values to its own memory-mapped
files in that directory and the web's `/metrics` merges them all. Unset (plain development), each
process keeps its values in memory and the web exposes only its own.

This module imports neither Django nor the platform, so gunicorn's master (`gunicorn.conf.py`) can use it.
"""

from __future__ import annotations

import os
import re
import socket
from functools import cache
from pathlib import Path

from prometheus_client import multiprocess, values

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"

_configured_for: str | None = None


def multiprocess_dir() -> str | None:
    """The shared directory, or None when multiprocess mode is off."""
    return os.environ.get(ENV_VAR) or None


@cache  # prometheus_client asks for the identifier at every change of every value
def _host() -> str:
    # '_' separates the parts of prometheus_client's file names ("counter_<id>.db"): keep it out.
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def process_identifier(pid: int | None = None) -> str:
    """The name this process's files carry: host and pid. The pid alone is not enough once web and
    worker containers share the directory (docker-compose's volume): each container numbers its
    processes from 1, so a gunicorn worker and a Celery child would write the same file."""
    return f"{_host()}-{os.getpid() if pid is None else pid}"


def multiprocess_configure() -> bool:
    """Makes the metrics created from now on write to the shared directory under this host's names;
    creates the directory if missing. Idempotent; call before the first metric value is created
    (the metrics app's `ready()` does). Returns whether multiprocess mode is on."""
    global _configured_for
    path = multiprocess_dir()
    if path is None:
        if ENV_VAR in os.environ:
            # Set but empty means off; prometheus_client itself would still go multiprocess on it.
            values.ValueClass = values.MutexValue
        return False
    if _configured_for != path:
        Path(path).mkdir(parents=True, exist_ok=True)
        # prometheus_client picked its value class at import from the same variable, naming files by
        # the bare pid. MultiProcessValue takes another naming function provided that processes running
        # at the same time get distinct names, which host-pid guarantees.
        values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)
        _configured_for = path
    return True


def multiprocess_process_dead(pid: int) -> None:
    """Bookkeeping when a process exits (gunicorn's `child_exit`, Celery's `worker_process_shutdown`):
    drops its live-gauge files. Its counters and histograms stay, so totals never go backwards."""
    path = multiprocess_dir()
    if path is not None and Path(path).is_dir():
        multiprocess.mark_process_dead(process_identifier(pid), path)


def multiprocess_dir_reset(path: str | Path) -> None:
    """Creates the directory, or empties it of metric files. Only while no process of the platform runs:
    `make run` calls it before starting them, so values of an earlier run are not summed in."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
