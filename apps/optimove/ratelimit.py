"""A sliding-window rate limiter shared by every process and machine through Redis.

Optimove counts requests as its servers receive them (50 per 10 s per API key). We cannot know that
moment, only that it lies between admitting a request and getting its answer back. So an admitted
request keeps its slot while it is in flight (scored at "now + in-flight TTL", in case the process dies
mid-call), and once its answer arrives (or it failed) it is re-scored to that completion time, so it
keeps counting for a full window after the latest moment the server can have received it.

Every timestamp comes from Redis `TIME`, one clock for every machine. Both steps are Lua scripts, so
the check and the write are atomic however many workers compete.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from apps.core.errors import RetryableError

# Removes the entries that no longer count, then admits the request when there is room. Returns "0"
# when admitted, otherwise the seconds until the oldest entry leaves the window (as a string: Lua
# numbers would be truncated to integers on the way back to Python).
_ACQUIRE_LUA = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local in_flight = tonumber(ARGV[3])
local member = ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
    redis.call('ZADD', key, now + in_flight, member)
    redis.call('PEXPIRE', key, math.ceil((window + in_flight) * 1000) + 1000)
    return '0'
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""

# Re-scores a finished request to its completion time (plus a margin for the clocks of the machines
# involved). A plain ZADD, not XX: a call that outlived its in-flight TTL was still received somewhere in
# its span, so it must count again rather than be forgotten.
_RELEASE_LUA = """
local key = KEYS[1]
local window = tonumber(ARGV[1])
local margin = tonumber(ARGV[2])
local member = ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', key, now + margin, member)
redis.call('PEXPIRE', key, math.ceil((window + margin) * 1000) + 1000)
return 1
"""


class RateLimitWaitTimeout(RetryableError):
    """No slot came free within the caller's patience; try again later."""


class SlidingWindowLimiter:
    """At most `limit` requests in any `window` seconds for one `key`, across all processes.

    Use `acquire()` before a request and `release(token)` once its answer arrived or it failed (or the
    `slot()` context manager, which does both). With `in_flight_ttl=0` a request counts from the moment
    it is admitted and `release` is optional: right for limits counted on our side of the wire.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        key: str,
        limit: int,
        window: float,
        *,
        in_flight_ttl: float = 60.0,
        margin: float = 0.05,
        max_poll_interval: float = 1.0,
    ) -> None:
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1 request, got {limit}")
        if window <= 0:
            raise ValueError(f"rate limit window must be positive, got {window}")
        if in_flight_ttl < 0:
            raise ValueError(f"in-flight TTL cannot be negative, got {in_flight_ttl}")
        self.redis = redis_client
        self.key = key
        self.limit = limit
        self.window = float(window)
        self.in_flight_ttl = float(in_flight_ttl)
        self.margin = float(margin)
        self.max_poll_interval = max_poll_interval
        self._acquire_script = redis_client.register_script(_ACQUIRE_LUA)
        self._release_script = redis_client.register_script(_RELEASE_LUA)

    def try_acquire(self) -> tuple[str | None, float]:
        """One attempt: (token, 0.0) when admitted, else (None, seconds to wait before trying again)."""
        token = uuid.uuid4().hex
        result: Any = self._acquire_script(
            keys=[self.key], args=[self.limit, self.window, self.in_flight_ttl + self.margin, token]
        )
        wait = float(result.decode() if isinstance(result, bytes) else result)
        if wait <= 0:
            return token, 0.0
        return None, wait

    def acquire(self, *, timeout: float | None = None) -> str:
        """Blocks until admitted and returns the token to `release`. Raises RateLimitWaitTimeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            token, wait = self.try_acquire()
            if token is not None:
                return token
            # The oldest entry may still be in flight and finish early, so poll at least every
            # max_poll_interval; the jitter keeps waiting processes from retrying in lockstep.
            pause = min(wait, self.max_poll_interval) + random.uniform(0, 0.02)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RateLimitWaitTimeout(f"no rate-limit slot came free within {timeout:.1f}s")
                pause = min(pause, remaining)
            time.sleep(pause)

    def release(self, token: str) -> None:
        """Marks the request finished now: it keeps its slot for one more window from this moment."""
        self._release_script(keys=[self.key], args=[self.window, self.margin, token])

    @contextmanager
    def slot(self, *, timeout: float | None = None) -> Iterator[str]:
        token = self.acquire(timeout=timeout)
        try:
            yield token
        finally:
            self.release(token)
