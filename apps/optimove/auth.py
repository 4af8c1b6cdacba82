"""The legacy Optimove login token, shared by every process through Redis.

Optimove allows one token per user at a time: a second login while a token is still valid earns a 429.
So every process reads the same token from Redis, only one process logs in at a time (under a Redis
lock), and a token is thrown away only by a process that saw it rejected (403), and only if it is still
the stored one, so a fresh token another process just fetched is never deleted by a late 403.

The Redis keys are derived from `Credentials.rate_limit_key` (a hash), never from a secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import redis

from apps.optimove.errors import OptimoveRetryableError

# Optimove's token lives 20 minutes after the last call. Ours outlives it on purpose: dropping a token
# Optimove still honours would make the next login a 429, while using one it has expired costs only a
# 403, which `SharedLoginToken.replace` heals with one login.
TOKEN_TTL_SECONDS = 25 * 60

_COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

_COMPARE_AND_EXPIRE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class SharedLoginToken:
    """Hands out the stored token, or logs in (once across all processes) when there is none."""

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        key: str,
        login: Callable[[], str],
        lock_timeout: float,
        wait_timeout: float,
        ttl_seconds: float = TOKEN_TTL_SECONDS,
    ) -> None:
        self.redis = redis_client
        self.token_key = f"optimove:token:{key}"
        self.lock_key = f"optimove:login-lock:{key}"
        self._login = login
        self.lock_timeout = lock_timeout
        self.wait_timeout = wait_timeout
        self.ttl_ms = int(ttl_seconds * 1000)
        self._delete_if = redis_client.register_script(_COMPARE_AND_DELETE)
        self._expire_if = redis_client.register_script(_COMPARE_AND_EXPIRE)

    def current(self) -> str | None:
        raw: Any = self.redis.get(self.token_key)
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def get(self) -> str:
        """The shared token; logs in first when no process holds one."""
        token = self.current()
        if token is not None:
            return token
        return self._login_once()

    def replace(self, *, rejected: str) -> str:
        """Called after a 403 with `rejected`: drops it if still stored and returns a working token.

        Several processes may see the same 403 at once; the first to take the lock logs in and the rest
        find the fresh token when the lock is theirs.
        """
        self._delete_if(keys=[self.token_key], args=[rejected])
        return self._login_once()

    def touch(self, token: str) -> None:
        """Slides the TTL after a successful call, as Optimove slides the token's life."""
        self._expire_if(keys=[self.token_key], args=[token, self.ttl_ms])

    def _login_once(self) -> str:
        lock = self.redis.lock(self.lock_key, timeout=self.lock_timeout, blocking_timeout=self.wait_timeout)
        if not lock.acquire():
            raise OptimoveRetryableError(
                f"Optimove login: waited {self.wait_timeout:.0f}s for another process to log in",
                function="login",
            )
        try:
            token = self.current()
            if token is not None:  # another process logged in while we waited
                return token
            token = self._login()
            self.redis.set(self.token_key, token, px=self.ttl_ms)
            return token
        finally:
            # The lock may have expired during a very slow login; another process may hold it now.
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()
