"""Shared pieces of the clients tests: a client file, its secrets, and a raw snapshot of the rows."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.db import connection

API_KEY = "opt-live-3f9a7c1e5b2d4f6a"
SMTP_PASSWORD = "smtp-pw-Quartz-Lantern-77"
SENDGRID_TOKEN = "SG.literal-token-8c1d2e"
TWILIO_TOKEN = "twilio-auth-5e6f7a8b9c"

ACME: dict[str, Any] = {
    "slug": "acme",
    "name": "Acme Retail",
    "active": True,
    "optimove": {"base_url": "https://api5.optimove.net", "api_key": "env:ACME_OPTIMOVE_API_KEY"},
    "channels": [
        {
            "channel_id": 504,
            "name": "Email",
            "kind": "email",
            "provider": "smtp",
            "provider_options": {"host": "smtp.example.com", "port": 587, "from_email": "news@acme.test"},
            "provider_secrets": {"password": "env:ACME_SMTP_PASSWORD", "api_token": SENDGRID_TOKEN},
            "address_attribute": "Email",
            "rate_limit_per_second": 50,
            "realtime": False,
            "scheduled_event_type": 13,
            "active": True,
        },
        {
            "channel_id": 505,
            "name": "SMS",
            "kind": "sms",
            "provider": "twilio",
            "provider_options": {"from_number": "+15005550006"},
            "provider_secrets": {"auth_token": TWILIO_TOKEN},
            "address_attribute": "Mobile",
            "rate_limit_per_second": None,
            "realtime": True,
            "scheduled_event_type": 1,
            "active": True,
        },
    ],
}

ALL_SECRETS = (API_KEY, SMTP_PASSWORD, SENDGRID_TOKEN, TWILIO_TOKEN)


def acme_document() -> dict[str, Any]:
    return copy.deepcopy(ACME)


@pytest.fixture
def acme_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_OPTIMOVE_API_KEY", API_KEY)
    monkeypatch.setenv("ACME_SMTP_PASSWORD", SMTP_PASSWORD)


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of the clients tables as stored (secrets as their encrypted tokens)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    with connection.cursor() as cursor:
        for table in ("clients_client", "clients_channel", "clients_client_admins"):
            cursor.execute(f"SELECT * FROM {table} ORDER BY id")  # noqa: S608 - fixed table names
            columns = [column.name for column in cursor.description]
            rows[table] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return rows


def changed_columns(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {column for column, value in before.items() if after[column] != value}


def client_form_data(client: Any, **overrides: Any) -> dict[str, Any]:
    """What the admin's client change form posts, with its channel inline; None drops a key."""
    channels = list(client.channels.order_by("pk"))
    data: dict[str, Any] = {
        "name": client.name,
        "is_active": "on" if client.is_active else None,
        "personal_data_retention_days": str(client.personal_data_retention_days),
        "optimove_base_url": client.optimove_base_url,
        "optimove_username": client.optimove_username,
        "new_optimove_api_key": "",
        "new_optimove_password": "",
        "admins": [user.pk for user in client.admins.all()],
        "channels-TOTAL_FORMS": str(len(channels)),
        "channels-INITIAL_FORMS": str(len(channels)),
        "channels-MIN_NUM_FORMS": "0",
        "channels-MAX_NUM_FORMS": "1000",
    }
    for i, channel in enumerate(channels):
        data.update(
            {
                f"channels-{i}-id": str(channel.pk),
                f"channels-{i}-client": str(client.pk),
                f"channels-{i}-optimove_channel_id": str(channel.optimove_channel_id),
                f"channels-{i}-name": channel.name,
                f"channels-{i}-kind": channel.kind,
                f"channels-{i}-provider": channel.provider,
                f"channels-{i}-is_realtime": "on" if channel.is_realtime else None,
                f"channels-{i}-is_active": "on" if channel.is_active else None,
            }
        )
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def channel_form_data(channel: Any, **overrides: Any) -> dict[str, Any]:
    """What the admin's channel form posts; None drops a key."""
    data: dict[str, Any] = {
        "client": str(channel.client_id),
        "optimove_channel_id": str(channel.optimove_channel_id),
        "name": channel.name,
        "kind": channel.kind,
        "provider": channel.provider,
        "provider_options": json.dumps(channel.provider_options),
        "provider_secrets_update": "",
        "address_attribute": channel.address_attribute,
        "rate_limit_per_second": ""
        if channel.rate_limit_per_second is None
        else str(channel.rate_limit_per_second),
        "is_realtime": "on" if channel.is_realtime else None,
        "scheduled_event_type": str(channel.scheduled_event_type),
        "consent_sync": channel.consent_sync,
        "consent_attribute": channel.consent_attribute,
        "is_active": "on" if channel.is_active else None,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}
