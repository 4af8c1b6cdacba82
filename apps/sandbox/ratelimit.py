"""A sliding-window limit per sandbox account, shared by every web worker through Redis.

A sorted set holds the arrival times of the accepted calls in the window; a call over the limit is
refused and not recorded, so a client that backs off gets through as soon as old calls age out.
The script runs atomically in Redis and reads Redis's own clock, so workers on several machines agree.
"""

from __future__ import annotations

from django.conf import settings

from apps.core.redis import get_redis

_SLIDING_WINDOW = """
local now = redis.call('TIME')
local now_us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local window_us = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_us - window_us)
if redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now_us, now_us .. '-' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window_us / 1000) + 1000)
return 1
"""


def _key(account_id: int) -> str:
    return f"sandbox:ratelimit:{account_id}"


def rate_limit_try_acquire(*, account_id: int, nonce: str) -> bool:
    """True when the call fits in the account's window (and is counted); False when it is over."""
    window_us = int(settings.SANDBOX_RATE_LIMIT_WINDOW_SECONDS * 1_000_000)
    allowed = get_redis().eval(
        _SLIDING_WINDOW, 1, _key(account_id), window_us, settings.SANDBOX_RATE_LIMIT_REQUESTS, nonce
    )
    return bool(allowed)
