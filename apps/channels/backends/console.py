"""Backends that send nothing: `console` logs each message (for development), `null` only answers SENT
(for benchmarks and tests of everything around the send)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from apps.channels.base import ChannelBackend, OutboundMessage, SendResult, sent
from apps.channels.registry import register_backend
from apps.core.logging import redact

logger = logging.getLogger("apps.channels.console")

ALL_KINDS = frozenset({"email", "sms", "push", "webhook", "console"})
PREVIEW_LENGTH = 200


@register_backend
class ConsoleBackend(ChannelBackend):
    name = "console"
    kinds = ALL_KINDS

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        for message in messages:
            content = message.content
            # The address is left out entirely; the content is redacted here as well as by the log
            # handler, because a test or a third-party handler may see the record before our filter.
            logger.info(
                "console send: message %s (%s) subject=%r text=%r",
                message.message_id,
                self.kind or "unknown kind",
                redact(content.subject[:PREVIEW_LENGTH]),
                redact(content.text[:PREVIEW_LENGTH]),
                extra={
                    "message_id": message.message_id,
                    "channel_kind": self.kind,
                    "subject_length": len(content.subject),
                    "text_length": len(content.text),
                    "html_length": len(content.html),
                    "data_keys": ",".join(sorted(content.data)),
                    "has_deep_link": bool(content.deep_link),
                    "has_payload": content.payload is not None,
                    **{f"meta_{key}": str(value) for key, value in message.metadata.items()},
                },
            )
        return [sent(message, f"console-{message.idempotency_key}") for message in messages]


@register_backend
class NullBackend(ChannelBackend):
    name = "null"
    kinds = ALL_KINDS

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        return [sent(message, f"null-{message.idempotency_key}") for message in messages]
