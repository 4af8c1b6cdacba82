"""Gunicorn reads this file from its working directory by default (the repository root here, /app in
the image), so every way the web starts picks it up. The command line still sets binds and workers."""

from __future__ import annotations

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    """prometheus_client's multiprocess bookkeeping for a web worker that exited (apps.metrics)."""
    from apps.metrics.multiproc import multiprocess_process_dead

    multiprocess_process_dead(worker.pid)
