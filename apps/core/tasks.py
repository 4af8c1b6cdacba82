from __future__ import annotations

from celery import shared_task

from apps.core.redis import get_redis


@shared_task(name="core.ping", ignore_result=True)
def ping(key: str) -> None:
    """Proves a worker is consuming: writes `key` to Redis. Used by the worker health test."""
    get_redis().set(key, "pong", ex=300)
