"""Idempotency keys: stable for the same logical message, so a re-send after a crash carries the same key."""

from __future__ import annotations

import hashlib


def scheduled_message_key(*, client_id: int, channel_id: int, campaign_id: int, customer_id: str) -> str:
    material = f"scheduled|{client_id}|{channel_id}|{campaign_id}|{customer_id}"
    return hashlib.sha256(material.encode()).hexdigest()[:40]
