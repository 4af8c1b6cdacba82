"""The Celery broker transport: kombu's Redis transport with one fault mended.

When Redis goes away, Celery's consumer clears the broken connection (`Connection.collect`, which drops
the transport's link to its connection) and then closes it. A channel that still holds unacknowledged
tasks tries, while closing, to hand them back to Redis; with its connection pool already gone it builds
a new one from a connection that is no longer there, and kombu 5.7 raises `AttributeError` instead of
a connection error. The consumer does not expect that, so the whole worker exits ("Unrecoverable
error") rather than reconnecting. Here that case is the connection error it is: the close goes on, the
worker reconnects once Redis is back, and the tasks it held are handled like any lost with Redis (the
sweeper re-sends their messages). Used only for `redis://` brokers (config.settings.base)."""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis import exceptions as redis_exceptions


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis_exceptions.ConnectionError("the broker connection was closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]  # not in the stubs


class Transport(kombu_redis.Transport):
    Channel = Channel
