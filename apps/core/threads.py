"""Threads kept for the life of a process, for the I/O a send batch overlaps (SMTP sessions, webhook
requests). Starting a fresh pool's threads for every batch cost about 4 ms a thread on a busy machine,
a few per cent of a batch's time."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}
_lock = threading.Lock()


def io_map(fn: Callable[[T], R], items: Sequence[T], *, width: int) -> list[R]:
    """`fn` over `items`, at most `width` at once, the results in order. Each process keeps one pool per
    width (a forked worker child makes its own: threads do not survive a fork). Not for calls nested
    inside `fn`, which would wait for the pool they occupy."""
    width = min(width, len(items))
    if width <= 1:
        return [fn(item) for item in items]
    return list(_pool(width).map(fn, items))


def _pool(width: int) -> ThreadPoolExecutor:
    key = (os.getpid(), width)
    pool = _pools.get(key)
    if pool is None:
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"io{width}")
    return pool
