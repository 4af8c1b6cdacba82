"""The shared sliding-window limiter, against the real Redis; the last test runs it across OS processes."""

from __future__ import annotations

import bisect
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from random import Random
from typing import Any

import pytest

from apps.optimove.ratelimit import RateLimitWaitTimeout, SlidingWindowLimiter
from tests.conftest import ROOT, subprocess_env


def test_admits_up_to_the_limit_then_says_how_long_to_wait(redis_client: Any) -> None:
    limiter = SlidingWindowLimiter(redis_client, "rl:a", 3, 2.0, in_flight_ttl=0, margin=0)

    tokens = [limiter.try_acquire()[0] for _ in range(3)]
    refused, wait = limiter.try_acquire()

    assert all(tokens)
    assert len(set(tokens)) == 3
    assert refused is None
    assert 1.8 < wait <= 2.0
    assert redis_client.zcard("rl:a") == 3
    # another key has its own budget
    assert SlidingWindowLimiter(redis_client, "rl:b", 3, 2.0).try_acquire()[0] is not None


def test_a_slot_frees_one_window_after_it_was_taken(redis_client: Any) -> None:
    limiter = SlidingWindowLimiter(redis_client, "rl:c", 2, 0.3, in_flight_ttl=0, margin=0)
    limiter.acquire()
    limiter.acquire()
    started = time.monotonic()

    limiter.acquire()

    assert 0.25 < time.monotonic() - started < 0.6


def test_an_unanswered_request_keeps_its_slot_until_a_window_after_its_release(redis_client: Any) -> None:
    limiter = SlidingWindowLimiter(redis_client, "rl:d", 1, 0.3, in_flight_ttl=30, margin=0.05)
    token = limiter.acquire()

    time.sleep(0.4)  # longer than the window, but the request is still in flight
    assert limiter.try_acquire()[0] is None

    limiter.release(token)  # the answer arrived now; the server may have received it just before
    refused, wait = limiter.try_acquire()
    assert refused is None
    assert 0.3 < wait <= 0.35
    time.sleep(wait + 0.01)
    assert limiter.try_acquire()[0] is not None


def test_acquire_gives_up_after_its_timeout(redis_client: Any) -> None:
    limiter = SlidingWindowLimiter(redis_client, "rl:e", 1, 10.0, in_flight_ttl=0)
    limiter.acquire()
    started = time.monotonic()

    with pytest.raises(RateLimitWaitTimeout, match=r"no rate-limit slot came free within 0.2s"):
        limiter.acquire(timeout=0.2)

    assert 0.19 < time.monotonic() - started < 0.5


def test_the_slot_context_manager_releases_even_on_failure(redis_client: Any) -> None:
    limiter = SlidingWindowLimiter(redis_client, "rl:f", 5, 10.0, in_flight_ttl=60, margin=0)
    with pytest.raises(RuntimeError), limiter.slot() as token:
        raise RuntimeError("provider down")

    score = redis_client.zscore("rl:f", token)
    seconds, micros = redis_client.time()
    assert abs(score - (seconds + micros / 1e6)) < 1  # re-scored to the completion, not now + 60 s


@pytest.mark.parametrize(
    ("limit", "window", "message"),
    [(0, 1.0, "at least 1 request"), (5, 0, "window must be positive")],
)
def test_bad_settings_are_refused(redis_client: Any, limit: int, window: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlidingWindowLimiter(redis_client, "rl:g", limit, window)


# Across processes -----------------------------------------------------------------------------------

CALLS_PER_PROCESS = 65
LIMIT = 50
WINDOW = 10.0

WORKER_SCRIPT = textwrap.dedent(
    """
    import sys

    import django

    django.setup()
    from apps.optimove.client import OptimoveClient
    from apps.optimove.types import Credentials

    api = OptimoveClient(Credentials(base_url=sys.argv[1], api_key="k"), rate_limit=(50, 10.0))
    for _ in range(int(sys.argv[2])):
        api.get_registered_event_listeners()
    print("done")
    """
)


@pytest.fixture
def recording_server() -> Iterator[tuple[str, list[float]]]:
    """A loopback HTTP server that notes when each request "reaches" it.

    Each request is held 0-150 ms before its arrival is noted (as if slow on the way in) and 0-50 ms
    after (as if slow to process): a limiter that counted from admission, not in flight until the
    answer, would let 51 arrivals into one window.
    """
    arrivals: list[float] = []
    lock = threading.Lock()
    rng = Random(5)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                inbound, processing = rng.uniform(0, 0.15), rng.uniform(0, 0.05)
            time.sleep(inbound)
            with lock:
                arrivals.append(time.monotonic())
            time.sleep(processing)
            payload = b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", arrivals
    server.shutdown()
    server.server_close()


def test_two_processes_together_stay_within_50_requests_in_any_10_seconds(
    redis_client: Any, recording_server: tuple[str, list[float]]
) -> None:
    """Real time: about 20 s, since 130 calls at 50 per 10 s need three windows."""
    base_url, arrivals = recording_server
    env = subprocess_env(DJANGO_SETTINGS_MODULE="config.settings.test", LOG_LEVEL="WARNING")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, base_url, str(CALLS_PER_PROCESS)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=90) for worker in workers]

    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-2000:]
        assert out.strip() == "done"
    times = sorted(arrivals)
    assert len(times) == 2 * CALLS_PER_PROCESS
    busiest = max(bisect.bisect_left(times, start + WINDOW) - index for index, start in enumerate(times))
    assert busiest <= LIMIT
    # the limiter is not merely slow: the first window is used to the full
    assert bisect.bisect_left(times, times[0] + WINDOW) == LIMIT
