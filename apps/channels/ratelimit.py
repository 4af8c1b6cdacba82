"""Per-channel send rate, shared by every worker process and machine through Redis.

A sliding one-second window: a grant of n permits is admitted only when the permits granted in the
last second plus n stay within the limit, so no one-second window, wherever it starts, holds more than
`per_second` permits. The window is a sorted set of grants ("count:token" scored by grant time); the
check and the write run in one Lua script on Redis's clock (`TIME`), so competing workers on machines
with different clocks neither overshoot nor starve.

This paces per second rather than per minute (a per-minute bucket lets a whole minute's sends out at
once and the provider throttles the burst). Celery's own `rate_limit` is per worker, so it cannot do this.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import TYPE_CHECKING, Any

import redis

from apps.core.errors import RetryableError

if TYPE_CHECKING:
    from apps.clients.models import Channel

WINDOW_SECONDS = 1.0

# Returns {1, "<grant time>"} when admitted, or {0, "<seconds until enough permits leave the window>"}.
# Numbers travel back as strings: Redis would truncate Lua numbers to integers.
_ACQUIRE_LUA = """
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local member = ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do
    used = used + tonumber(string.match(entries[i], '^(%d+):'))
end
if used + n <= limit then
    redis.call('ZADD', key, now, n .. ':' .. member)
    redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
    return {1, tostring(now)}
end
local need = used + n - limit
local freed = 0
for i = 1, #entries, 2 do
    freed = freed + tonumber(string.match(entries[i], '^(%d+):'))
    if freed >= need then
        return {0, tostring(tonumber(entries[i + 1]) + window - now)}
    end
end
return {0, tostring(window)}
"""


class RateLimitWaitTimeout(RetryableError):
    """No permits came free within the caller's patience; try again later."""


class ChannelRateLimiter:
    """At most `per_second` permits in any one-second window for `key`, across all processes."""

    def __init__(
        self,
        redis_client: redis.Redis,
        key: str,
        per_second: int,
        *,
        max_poll_interval: float = 0.25,
    ) -> None:
        if isinstance(per_second, bool) or not isinstance(per_second, int) or per_second < 1:
            raise ValueError(f"per_second must be a whole number of at least 1, got {per_second!r}")
        if not key:
            raise ValueError("a rate limiter needs a key")
        self.redis = redis_client
        self.key = key
        self.per_second = per_second
        self.max_poll_interval = max_poll_interval
        self._script = redis_client.register_script(_ACQUIRE_LUA)

    @property
    def max_batch(self) -> int:
        """The most permits one `acquire` can grant at once; send at most this many per call so the
        provider never sees more than `per_second` in a second."""
        return self.per_second

    def try_acquire(self, n: int = 1) -> tuple[bool, float]:
        """One attempt: (True, grant time in Redis unix seconds) or (False, seconds to wait)."""
        if n < 1 or n > self.per_second:
            raise ValueError(f"can grant 1 to {self.per_second} permits at once, asked for {n}")
        result: Any = self._script(
            keys=[self.key], args=[self.per_second, WINDOW_SECONDS, n, uuid.uuid4().hex]
        )
        admitted, value = (
            int(result[0]),
            float(result[1].decode() if isinstance(result[1], bytes) else result[1]),
        )
        return admitted == 1, value

    def acquire(self, n: int = 1, *, timeout: float | None = None) -> float:
        """Blocks until `n` permits are granted; returns the Redis time of the (last) grant.

        More than `per_second` permits are granted in pieces of at most `per_second`, one second apart
        (the caller then holds them all; see `max_batch`). Raises RateLimitWaitTimeout after `timeout`.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"permits must be a whole number of at least 1, got {n!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        granted_at = 0.0
        remaining = n
        while remaining:
            piece = min(remaining, self.per_second)
            granted_at = self._acquire_piece(piece, deadline, timeout)
            remaining -= piece
        return granted_at

    def _acquire_piece(self, n: int, deadline: float | None, timeout: float | None) -> float:
        while True:
            admitted, value = self.try_acquire(n)
            if admitted:
                return value
            # Sleep until the permits should be free (capped, so a crowd of waiters re-checks often);
            # the jitter keeps waiting processes from retrying in lockstep.
            pause = min(value, self.max_poll_interval) + random.uniform(0, 0.005)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RateLimitWaitTimeout(f"no send permits came free within {timeout:.1f}s")
                pause = min(pause, left)
            time.sleep(pause)


def rate_limiter_key(channel_pk: int) -> str:
    return f"channels:rate:{channel_pk}"


def rate_limiter_for(channel: Channel) -> ChannelRateLimiter | None:
    """The channel's shared limiter, or None when the channel is unlimited."""
    if not channel.rate_limit_per_second:
        return None
    from apps.core.redis import get_redis

    return ChannelRateLimiter(get_redis(), rate_limiter_key(channel.pk), int(channel.rate_limit_per_second))
