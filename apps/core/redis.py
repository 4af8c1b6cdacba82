"""One Redis connection pool per process for rate limits, shared tokens and locks."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)


def get_redis() -> redis.Redis:
    return _client_for(settings.REDIS_URL)
