"""The log pipeline as settings.LOGGING builds it: the root logger's JSON handler with its context and
redaction filters. Lines are read from that very handler (its stream swapped for a buffer)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client as HttpClient

from apps.core.logging import JsonFormatter, RedactingFilter

logger = logging.getLogger("tests.logging")


@contextmanager
def capture_json_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Yields a function returning the JSON lines the project's console handler wrote so far."""
    root = logging.getLogger()
    [handler] = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:

        def lines() -> list[dict[str, Any]]:
            # Every physical line must be one JSON object: a multi-line message must not split.
            return [json.loads(line) for line in buffer.getvalue().splitlines()]

        yield lines
    finally:
        handler.setStream(previous)


def test_settings_wire_the_json_formatter_and_both_filters_on_the_root_handler() -> None:
    [handler] = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert [type(f).__name__ for f in handler.filters] == ["ContextFilter", "RedactingFilter"]
    assert settings.LOGGING["root"]["handlers"] == ["console"]


@pytest.mark.parametrize(
    ("message", "args", "logged"),
    [
        (
            "listener call %s",
            ("https://p.example.com/optimove/listener/acme/504/?token=tok-SECRET-1",),
            "listener call https://p.example.com/optimove/listener/acme/504/?token=[redacted]",
        ),
        ("sending header X-API-KEY: %s", ("key-SECRET-3",), "sending header X-API-KEY: [redacted]"),
        ('headers {"X-API-KEY": "%s"}', ("key-SECRET-7",), 'headers {"X-API-KEY": "[redacted]"}'),
        ("login password=%s&user=bob", ("pw-SECRET-4",), "login password=[redacted]&user=bob"),
        ("Authorization-Token: %s", ("tok-SECRET-8",), "Authorization-Token: [redacted]"),
        ("sent to %s", ("jane.doe@example.com",), "sent to [email]"),
        ("sms to %s failed", ("+44 7700 900123",), "sms to [phone] failed"),
        ("sms to %s failed", ("447700900123",), "sms to [phone] failed"),
        ("call %s back", ("555-123-4567",), "call [phone] back"),
        ("line one\nline two with %s", ("a@b.example",), "line one\nline two with [email]"),
    ],
)
def test_secrets_and_personal_data_are_redacted(message: str, args: tuple[str, ...], logged: str) -> None:
    with capture_json_log() as lines:
        logger.warning(message, *args)

    [line] = lines()
    assert line["message"] == logged
    assert set(line) == {"ts", "level", "logger", "message"}
    assert (line["level"], line["logger"]) == ("WARNING", "tests.logging")
    ts = datetime.fromisoformat(line["ts"])
    assert ts.utcoffset() == timedelta(0)


def test_extra_fields_and_tracebacks_are_redacted_too() -> None:
    with capture_json_log() as lines:
        try:
            raise ValueError("login refused for password=pw-SECRET-5 of ops@example.com")
        except ValueError:
            logger.exception(
                "call failed", extra={"url": "/optimove/listener/acme/504/?token=tok-SECRET-6", "attempt": 2}
            )

    [line] = lines()
    assert line["message"] == "call failed"
    assert line["url"] == "/optimove/listener/acme/504/?token=[redacted]"
    assert line["attempt"] == 2
    assert line["exc"].endswith("ValueError: login refused for password=[redacted] of [email]")
    raw = json.dumps(line)
    for secret in ("pw-SECRET-5", "tok-SECRET-6", "ops@example.com"):
        assert secret not in raw


def test_a_request_logs_one_line_with_its_request_id(client: HttpClient, db: None) -> None:
    with capture_json_log() as lines:
        response = client.get("/healthz?token=tok-SECRET-9", HTTP_X_REQUEST_ID="req-test-0001")
        generated = client.get("/healthz")

    assert response["X-Request-ID"] == "req-test-0001"
    request_lines = [line for line in lines() if line["logger"] == "apps.requests"]
    assert [(line["message"], line["request_id"]) for line in request_lines] == [
        ("GET /healthz 200", "req-test-0001"),
        ("GET /healthz 200", generated["X-Request-ID"]),
    ]
    assert len(generated["X-Request-ID"]) == 32
    assert all(isinstance(line["duration_ms"], float) for line in request_lines)
    assert "tok-SECRET-9" not in json.dumps(lines())


def test_a_line_logged_outside_a_request_has_no_request_id() -> None:
    with capture_json_log() as lines:
        logger.info("background work")

    [line] = lines()
    assert "request_id" not in line


def test_the_redacting_filter_rewrites_the_record_for_every_later_handler() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", ("X-API-KEY: k-SECRET",), None)

    assert RedactingFilter().filter(record) is True

    assert (record.msg, record.args) == ("key X-API-KEY: [redacted]", None)


def test_timestamps_are_not_taken_for_phone_numbers() -> None:
    with capture_json_log() as lines:
        logger.info("campaign scheduled for %s", "2024-05-01 09:00:00")

    assert lines()[0]["message"] == "campaign scheduled for 2024-05-01 09:00:00"
