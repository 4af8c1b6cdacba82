"""The process-wide I/O pools the send backends share."""

from __future__ import annotations

import threading
import time

from apps.core.threads import io_map


def test_results_keep_their_order_and_at_most_width_run_at_once() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01 * (n % 3))
        with lock:
            running -= 1
        return n * n

    assert io_map(work, list(range(30)), width=4) == [n * n for n in range(30)]
    assert most == 4


def test_threads_are_reused_from_one_batch_to_the_next() -> None:
    names: set[str] = set()

    def who(_: int) -> None:
        time.sleep(0.005)
        names.add(threading.current_thread().name)

    for _ in range(5):
        io_map(who, list(range(6)), width=3)
    assert len(names) == 3  # the same three threads served every batch


def test_one_wide_runs_inline() -> None:
    assert (
        io_map(lambda _: threading.current_thread().name, [1, 2], width=1)
        == [threading.current_thread().name] * 2
    )
