"""Idempotency keys: stable for the same logical message, so a re-send after a crash carries the same key."""

from __future__ import annotations

import hashlib


def scheduled_message_key(*, client_id: int, channel_id: int, campaign_id: int, customer_id: str) -> str:
    material = f"scheduled|{client_id}|{channel_id}|{campaign_id}|{customer_id}"
    return hashlib.sha256(material.encode()).hexdigest()[:40]


def realtime_message_key(
    *, client_id: int, channel_id: int, campaign_id: int, customer_id: str, template_id: int, timestamp: str
) -> str:
    """From the trigger's content: Optimove repeating a notification gives the same key (sent once), the
    same customer triggering again later has a new TimeStamp and so a new key (sent again)."""
    material = f"realtime|{client_id}|{channel_id}|{campaign_id}|{customer_id}|{template_id}|{timestamp}"
    return hashlib.sha256(material.encode()).hexdigest()[:40]
