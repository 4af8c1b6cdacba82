"""The helpers every backend uses to word reasons and read Retry-After."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

from django.utils import timezone

from apps.channels.base import MAX_REASON_LENGTH, parse_retry_after, safe_reason


def test_safe_reason_removes_the_address_and_personal_data_and_secret_values() -> None:
    reason = safe_reason(
        "Invalid 'To': device-token-ABC123 (owner jane@mail.example, +44 20 7946 0958)\n api_key=sk_live_9",
        "device-token-ABC123",
    )
    assert reason == "Invalid 'To': [address] (owner [email], [phone]) api_key=[redacted]"


def test_safe_reason_is_bounded() -> None:
    reason = safe_reason("x" * 1000)
    assert len(reason) == MAX_REASON_LENGTH
    assert reason.endswith("…")


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    in_a_minute = parse_retry_after(format_datetime(timezone.now() + timedelta(seconds=60), usegmt=True))
    assert in_a_minute is not None
    assert 58 <= in_a_minute <= 60
    assert parse_retry_after(format_datetime(timezone.now() - timedelta(hours=1), usegmt=True)) == 0.0
