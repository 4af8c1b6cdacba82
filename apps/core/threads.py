"""Threads kept for the life of a process, for the I/O a send batch overlaps (SMTP sessions, webhook
requests). Starting a fresh pool's threads for every batch cost about 4 ms a thread on a busy machine,
a few per cent of a batch's time."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_kept: dict[tuple[int, Hashable], Any] = {}
_lock = threading.Lock()


def process_kept(key: Hashable, make: Callable[[], T]) -> T:
    """The object `make()` built for `key` in this process, built once (thread-safe) and kept for the
    life of the process. A forked worker child builds its own: threads and sockets do not survive a
    fork."""
    full = (os.getpid(), key)
    kept = _kept.get(full)
    if kept is None:
        with _lock:
            kept = _kept.get(full)
            if kept is None:
                kept = _kept[full] = make()
    return kept


def io_map(fn: Callable[[T], R], items: Sequence[T], *, width: int) -> list[R]:
    """`fn` over `items`, at most `width` at once, the results in order. Each process keeps one pool per
    width (`process_kept`). Not for calls nested
    inside `fn`, which would wait for the pool they occupy."""
    width = min(width, len(items))
    if width <= 1:
        return [fn(item) for item in items]
    return list(_pool(width).map(fn, items))


def _pool(width: int) -> ThreadPoolExecutor:
    return process_kept(
        ("io-pool", width), lambda: ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"io{width}")
    )
