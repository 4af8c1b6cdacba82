"""A real worker keeps its PostgreSQL session from one task to the next (Celery's Django fixup would
open one per task), and replaces a session that was cut instead of failing the next task."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection

from apps.core.tasks import database_ping
from tests.conftest import wait_for

pytestmark = pytest.mark.worker


def _backend_pid(redis_client: Any) -> int:
    key = f"db-ping:{uuid.uuid4().hex}"
    database_ping.apply_async(args=[key], queue="realtime")
    wait_for(lambda: bool(redis_client.get(key)), 20, "the worker to answer the database ping")
    return int(redis_client.get(key))


def test_a_worker_reuses_its_session_and_replaces_one_that_was_cut(
    celery_worker: Any, redis_client: Any
) -> None:
    celery_worker(queues="realtime", concurrency=1)
    first = _backend_pid(redis_client)
    assert _backend_pid(redis_client) == first
    assert _backend_pid(redis_client) == first
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
    wait_for(lambda: not _alive(first), 10, "PostgreSQL to end the worker's session")
    replaced = _backend_pid(redis_client)
    assert replaced != first
    assert _backend_pid(redis_client) == replaced


def _alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row and row[0])
