"""Keeping Python's full garbage collections short in long-running processes.

A web or worker process imports Django, Celery and the provider libraries at start-up: over a hundred
thousand objects that live as long as the process. Python's full collection (generation 2) walks
every one of them each time, with the GIL held: in a web process under load that took 76 to 92 ms, about
once a minute, and every listener call in flight on that process waited for it (docs/BENCHMARKS.md).
Freezing what exists once start-up is over moves those objects out of the collector's sight for good, so
a full collection walks only what the process made since; nothing frozen was ever garbage to collect.
In a process that forks (Celery's pool), the children inherit the frozen objects, and their collections
never write to the pages they share with the parent.
"""

from __future__ import annotations

import gc


def startup_objects_freeze() -> None:
    """Collects what start-up left unreachable, then freezes everything still alive."""
    gc.collect()
    gc.freeze()
