"""Signing of outgoing webhooks, for our sender and for receivers that verify it.

The signature covers the timestamp and the exact body bytes, so neither can be changed or replayed
later than `tolerance` seconds without the receiver noticing.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def webhook_signature(secret: str | bytes, timestamp: int | str, body: str | bytes) -> str:
    """`v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`, the value of `X-Partner-Signature`."""
    signed = _as_bytes(str(timestamp)) + b"." + _as_bytes(body)
    digest = hmac.new(_as_bytes(secret), signed, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def webhook_verify(
    secret: str | bytes,
    timestamp: int | str,
    body: str | bytes,
    signature: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> bool:
    """True when `signature` is ours for this timestamp and body and the timestamp is within `tolerance`
    seconds of now (either side, for clock skew). The comparison takes constant time."""
    try:
        sent_at = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        return False
    expected = webhook_signature(secret, sent_at, body)
    # A receiver may get several comma-separated signatures during a secret rotation.
    candidates = [part.strip() for part in signature.split(",")] if signature else []
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    return matched
