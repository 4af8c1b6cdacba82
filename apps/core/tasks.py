from __future__ import annotations

from celery import shared_task

from apps.core.redis import get_redis


@shared_task(name="core.ping", ignore_result=True)
def ping(key: str) -> None:
    """Proves a worker is consuming: writes `key` to Redis. Used by the worker health test."""
    get_redis().set(key, "pong", ex=300)


@shared_task(name="core.database_ping", ignore_result=True)
def database_ping(key: str) -> None:
    """Proves a worker reaches PostgreSQL: writes its database session's backend pid to `key`, so an
    operator (or a test) can also see whether sessions are reused from one task to the next."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone() or (0,)
    get_redis().set(key, str(pid), ex=300)
