"""The per-channel rate limit is shared through Redis: two OS processes together stay within it,
paced per second. These tests need real time (about 1 s each at 20 permits per second)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from apps.channels.ratelimit import ChannelRateLimiter, RateLimitWaitTimeout, rate_limiter_for
from apps.clients.models import Channel, Client
from tests.conftest import ROOT, subprocess_env

WORKER = """
import json, sys, time
import django
django.setup()
from apps.channels.ratelimit import ChannelRateLimiter
from apps.core.redis import get_redis

key, per_second, chunks = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
redis = get_redis()
limiter = ChannelRateLimiter(redis, key, per_second)
redis.incr(key + ":ready")
while not redis.exists(key + ":go"):
    time.sleep(0.005)
grants = [[limiter.acquire(n), n] for n in chunks]
print(json.dumps(grants))
"""


def max_in_any_window(grants: list[tuple[float, int]], window: float = 1.0) -> int:
    """The most permits granted inside any half-open window [t, t + window) that starts at a grant."""
    ordered = sorted(grants)
    return max(sum(n for t, n in ordered if start <= t < start + window) for start, _ in ordered)


def test_two_processes_share_the_limit_and_pace_per_second(redis_client: Any) -> None:
    key, per_second = "channels:rate:test-shared", 20
    # 40 permits in all: one process takes them one by one, the other in uneven chunks.
    plans = [[1] * 20, [3, 1, 4, 2, 5, 1, 4]]
    assert sum(map(sum, plans)) == 40
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, key, str(per_second), json.dumps(plan)],
            env=subprocess_env(),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for plan in plans
    ]
    try:
        deadline = time.monotonic() + 30
        while int(redis_client.get(f"{key}:ready") or 0) < 2:
            assert time.monotonic() < deadline, "the worker processes did not start"
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers]
            time.sleep(0.02)
        redis_client.set(f"{key}:go", 1)
        outputs = [w.communicate(timeout=30) for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert [w.returncode for w in workers] == [0, 0], outputs
    grants = [(float(t), int(n)) for out, _ in outputs for t, n in json.loads(out)]

    assert sum(n for _, n in grants) == 40
    assert max_in_any_window(grants) <= per_second
    span = max(t for t, _ in grants) - min(t for t, _ in grants)
    assert span >= 40 / per_second - 1  # 1.0 s: the second 20 cannot start before the first 20 age out
    assert span < 3.0  # and the limiter does not hold them back much longer than that


def test_more_permits_than_a_second_allows_are_granted_in_pieces(redis_client: Any) -> None:
    limiter = ChannelRateLimiter(redis_client, "channels:rate:test-pieces", 20)
    started = time.monotonic()
    granted_at = limiter.acquire(30)  # 20 now, 10 one second later
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.6
    assert granted_at > 0
    assert limiter.max_batch == 20


def test_try_acquire_says_how_long_to_wait(redis_client: Any) -> None:
    limiter = ChannelRateLimiter(redis_client, "channels:rate:test-wait", 5)
    assert limiter.try_acquire(3)[0] is True
    assert limiter.try_acquire(2)[0] is True
    admitted, wait = limiter.try_acquire(1)
    assert admitted is False
    assert 0.9 < wait <= 1.0
    with pytest.raises(ValueError, match=r"can grant 1 to 5 permits at once, asked for 6"):
        limiter.try_acquire(6)


def test_acquire_gives_up_after_its_timeout(redis_client: Any) -> None:
    limiter = ChannelRateLimiter(redis_client, "channels:rate:test-timeout", 2)
    limiter.acquire(2)
    started = time.monotonic()
    with pytest.raises(RateLimitWaitTimeout, match=r"no send permits came free within 0\.2s"):
        limiter.acquire(1, timeout=0.2)
    assert time.monotonic() - started < 0.5


def test_limits_are_per_key(redis_client: Any) -> None:
    a = ChannelRateLimiter(redis_client, "channels:rate:test-a", 3)
    b = ChannelRateLimiter(redis_client, "channels:rate:test-b", 3)
    a.acquire(3)
    assert b.try_acquire(3)[0] is True
    assert a.try_acquire(1)[0] is False


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_limits_are_refused(redis_client: Any, bad: Any) -> None:
    with pytest.raises(ValueError, match=r"per_second must be a whole number of at least 1"):
        ChannelRateLimiter(redis_client, "k", bad)


def test_rate_limiter_for_a_channel(db: None, redis_client: Any) -> None:
    client = Client.objects.create(slug="shop", name="Shop", optimove_base_url="https://api5.optimove.net")
    unlimited = Channel.objects.create(
        client=client, name="Mail", kind="email", optimove_channel_id=1, provider="null"
    )
    limited = Channel.objects.create(
        client=client, name="SMS", kind="sms", optimove_channel_id=2, provider="null", rate_limit_per_second=7
    )
    assert rate_limiter_for(unlimited) is None
    limiter = rate_limiter_for(limited)
    assert limiter is not None
    assert (limiter.key, limiter.per_second) == (f"channels:rate:{limited.pk}", 7)
    limiter.acquire(7)
    assert limiter.try_acquire(1)[0] is False
