"""PostgreSQL session (advisory) locks for work that spans HTTP calls."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


@contextmanager
def session_lock(name: str, *, wait: bool = False) -> Iterator[bool]:
    """Holds the lock called `name`; yields whether it was obtained (always, with `wait`). A session
    lock is held across HTTP calls without an open transaction, and PostgreSQL releases it if the
    process dies. It needs a session of its own: not behind PgBouncer in transaction-pooling mode."""
    function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(hashtextextended(%s, 0))", [name])
        row = cursor.fetchone()
    locked = wait or bool(row and row[0])
    try:
        yield locked
    finally:
        if locked:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [name])
            except DatabaseError:  # the connection is gone, and the lock with it
                logger.warning("could not release the session lock %s", name)
