"""Builders and small local servers shared by the channel backend tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from apps.channels.base import OutboundMessage, SendResult, SendStatus
from apps.message_templates.types import RenderedMessage

METADATA = {"campaign_id": "7001", "channel_id": "505", "template_id": "12"}


def outbound(
    message_id: int,
    to: str,
    *,
    content: RenderedMessage | None = None,
    key: str | None = None,
    customer_id: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        idempotency_key=key or f"run9-cust{message_id}-tpl12",
        to=to,
        content=content or RenderedMessage(subject=f"Hello {message_id}", text=f"Text {message_id}"),
        customer_id=customer_id or f"cust{message_id}",
        metadata=dict(METADATA if metadata is None else metadata),
    )


def statuses(results: list[SendResult]) -> list[tuple[int, SendStatus]]:
    return [(r.message_id, r.status) for r in results]


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections (through the listen backlog) and never says a word: every
    read from it times out."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    """Thread-safe list for servers running in other threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        with self._lock:
            self.items.append(item)
