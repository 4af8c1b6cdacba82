"""Django's PostgreSQL backend, with its connection check answered from the socket when it can be.

With CONN_HEALTH_CHECKS, Django sends `SELECT 1` before the first query of every request and every
Celery task (config.celery) that reuses a connection, and again after a query failed. For Optimove's
listener that was one of its two round trips to PostgreSQL per trigger, and under load each round trip
waits for a busy database to be scheduled (docs/BENCHMARKS.md). A connection that PostgreSQL ended (a
restart, `pg_terminate_backend`, an idle timeout, the server's process killed) has something to read
on its socket: the server's closing error, or the end of the stream. An idle connection in good order
has nothing. So the check looks at the socket without waiting, and sends `SELECT 1` only when
something is there, or when the connection is not idle. A connection whose server vanished without a
word (a cut network) looks quiet; its first query fails, as the `SELECT 1` would have after TCP's
timeout, and Django drops it at the end of that request. Go's MySQL driver checks its pooled
connections the same way (`connCheck`).
"""

from __future__ import annotations

import select

import psycopg
from django.db.backends.postgresql import base as postgresql
from psycopg import pq


class DatabaseWrapper(postgresql.DatabaseWrapper):
    def is_usable(self) -> bool:
        """Django asks before a request's or task's first query (the health check) and after an error.
        A quiet socket answers; anything else gets Django's `SELECT 1`."""
        return self._socket_quiet() or bool(super().is_usable())

    def _socket_quiet(self) -> bool:
        """True when the idle connection has nothing waiting to be read: PostgreSQL has not ended it."""
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return False
        try:
            poller = select.poll()
            poller.register(connection.pgconn.socket, select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        except (OSError, ValueError, psycopg.Error):
            return False
