"""The broker transport (apps.core.broker) against a real Redis that goes away and comes back: a worker
holding an unacknowledged task when Redis restarts must reconnect, not exit.

Celery's consumer, on losing the broker, clears the connection (`collect`, which drops the transport's
link to it) and then closes it; a channel still holding a task then tries to hand it back. These tests
take that channel through the same steps with the Celery app's own connection settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from kombu.common import ignore_errors

from apps.core.broker import Transport
from config.celery import app
from tools.devservers import RedisServer, free_port


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, since the test stops it."""
    server = RedisServer(tmp_path / "redis", free_port(), persist=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _holding_an_unacknowledged_task(url: str) -> tuple[Connection, Any, list[Any]]:
    """A connection made as the worker makes it, with one task delivered and not yet acknowledged (the
    platform's tasks are acknowledged late, so a running task is in this state)."""
    connection = app.connection_for_read(url)
    queue = Queue("broker-test", Exchange("broker-test"), "broker-test")
    with connection.Producer() as producer:
        producer.publish({"task": 1}, exchange=queue.exchange, routing_key="broker-test", declare=[queue])
    received: list[Any] = []
    consumer = connection.Consumer([queue], callbacks=[lambda body, message: received.append(body)])
    consumer.consume()
    connection.drain_events(timeout=5)
    assert received == [{"task": 1}]
    return connection, consumer.channel, received


def test_the_worker_connects_through_the_mended_transport() -> None:
    assert isinstance(app.connection_for_read("redis://127.0.0.1:1/0").transport, Transport)


def test_closing_a_channel_that_holds_a_task_after_redis_went_away_is_a_connection_error(
    private_redis: RedisServer,
) -> None:
    connection, channel, _ = _holding_an_unacknowledged_task(private_redis.url)
    private_redis.stop()
    connection.transport.client = None  # what the consumer's `collect()` leaves behind

    # kombu 5.7's own transport raises AttributeError here, which ends the worker ("Unrecoverable
    # error"); the consumer only ignores connection errors.
    ignore_errors(connection, channel.close)

    assert channel.closed


def test_after_redis_comes_back_the_app_reconnects_and_receives_again(private_redis: RedisServer) -> None:
    connection, channel, _ = _holding_an_unacknowledged_task(private_redis.url)
    private_redis.stop()
    connection.transport.client = None
    ignore_errors(connection, channel.close)
    ignore_errors(connection, connection.close)

    private_redis.start()  # no persistence: the task that was held is gone with the old Redis
    again, _, received = _holding_an_unacknowledged_task(private_redis.url)
    assert received == [{"task": 1}]
    again.release()


def test_only_a_redis_broker_gets_the_mended_transport() -> None:
    from config.settings.base import broker_transport

    assert broker_transport("redis://127.0.0.1:6379/0") == "apps.core.broker:Transport"
    assert broker_transport("amqp://guest@127.0.0.1//") is None  # kombu picks its own from the URL
