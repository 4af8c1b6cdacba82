"""The health check Django runs before the first query of each request and task (apps/core/db/base.py):
a connection in good order is reused without a `SELECT 1`; one PostgreSQL ended is replaced."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection

from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def observer() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A session of its own, to watch and end the one under test."""
    db = connection.settings_dict
    other = psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"],
        port=db["PORT"],
        autocommit=True,
    )
    try:
        yield other
    finally:
        other.close()


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def _last_query(observer: psycopg.Connection[tuple[object, ...]], pid: int) -> str | None:
    row = observer.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return None if row is None else str(row[0])


def _next_request() -> None:
    """What Django does between requests (and config.celery between tasks) for a kept connection."""
    connection.close_if_unusable_or_obsolete()
    assert connection.health_check_done is False


def test_a_connection_in_good_order_is_reused_without_a_round_trip(
    observer: psycopg.Connection[tuple[object, ...]],
) -> None:
    pid = _backend_pid()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the request before'")
    _next_request()
    connection.close_if_health_check_failed()
    assert connection.health_check_done is True
    assert connection.connection is not None
    # PostgreSQL saw nothing since the last request's query: no `SELECT 1`.
    assert _last_query(observer, pid) == "SELECT 'the request before'"
    assert _backend_pid() == pid


def test_a_connection_postgresql_ended_is_replaced_before_the_next_query(
    observer: psycopg.Connection[tuple[object, ...]],
) -> None:
    pid = _backend_pid()
    _next_request()
    observer.execute("SELECT pg_terminate_backend(%s)", [pid])
    wait_for(lambda: _last_query(observer, pid) is None, 10, "PostgreSQL to end the session")
    connection.close_if_health_check_failed()
    assert connection.connection is None
    replaced = _backend_pid()
    assert replaced != pid


def test_a_connection_inside_a_transaction_is_checked_with_a_query(
    observer: psycopg.Connection[tuple[object, ...]],
) -> None:
    # Not idle, so the socket cannot tell: Django's own check runs.
    pid = _backend_pid()
    connection.connection.execute("BEGIN")
    try:
        connection.health_check_done = False
        connection.close_if_health_check_failed()
        assert _last_query(observer, pid) == "SELECT 1"
    finally:
        connection.connection.execute("ROLLBACK")
