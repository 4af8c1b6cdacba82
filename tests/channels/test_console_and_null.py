"""The console backend logs without addresses and with personal data redacted; null only answers."""

from __future__ import annotations

import json
import logging

import pytest

from apps.channels.backends.console import ConsoleBackend, NullBackend
from apps.channels.base import SendResult, SendStatus
from apps.core.logging import JsonFormatter, RedactingFilter
from apps.message_templates.types import RenderedMessage
from tests.channels.helpers import outbound


def test_console_logs_one_line_per_message_without_the_address(caplog: pytest.LogCaptureFixture) -> None:
    messages = [
        outbound(
            1,
            "jane.doe@mail.example",
            content=RenderedMessage(
                subject="Hi Jane",
                text="Call us on +1 555 123 4567 or write to help@shop.example",
                html="<p>x</p>",
            ),
            key="k-1",
        ),
        outbound(2, "+15559876543", content=RenderedMessage(text="short"), key="k-2"),
    ]
    backend = ConsoleBackend(options={}, secrets={}, kind="email")
    with caplog.at_level(logging.INFO, logger="apps.channels.console"):
        results = backend.send_batch(messages)

    assert results == [
        SendResult(1, SendStatus.SENT, provider_message_id="console-k-1"),
        SendResult(2, SendStatus.SENT, provider_message_id="console-k-2"),
    ]
    records = [r for r in caplog.records if r.name == "apps.channels.console"]
    assert len(records) == 2
    first = records[0]
    assert first.levelno == logging.INFO
    assert first.getMessage() == (
        "console send: message 1 (email) subject='Hi Jane' text='Call us on [phone] or write to [email]'"
    )
    assert (first.message_id, first.channel_kind) == (1, "email")  # type: ignore[attr-defined]
    assert (first.subject_length, first.text_length, first.html_length) == (7, 56, 8)  # type: ignore[attr-defined]
    assert first.meta_campaign_id == "7001"  # type: ignore[attr-defined]

    # As the project's log handler writes it: JSON, with nothing personal in any field.
    for record in records:
        RedactingFilter().filter(record)
        line = JsonFormatter().format(record)
        payload = json.loads(line)
        assert payload["level"] == "INFO"
        for secret_ish in ("jane.doe@mail.example", "+15559876543", "555 123 4567", "help@shop.example"):
            assert secret_ish not in line


def test_null_sends_nothing_and_answers_sent(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        results = NullBackend(options={}, secrets={}).send_batch(
            [outbound(5, "x", key="k5"), outbound(6, "y", key="k6")]
        )
    assert results == [
        SendResult(5, SendStatus.SENT, provider_message_id="null-k5"),
        SendResult(6, SendStatus.SENT, provider_message_id="null-k6"),
    ]
    assert [r for r in caplog.records if r.name.startswith("apps.channels")] == []
