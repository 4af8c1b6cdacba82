"""Every change of a customer's opt-in state goes through `subscriptions_set`: one statement stores the
new state, bumps its sync version and appends the history row, for one customer or ten thousand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.clients.models import Channel
from apps.subscriptions.models import ConsentSource, ConsentStatus, Subscription, SubscriptionChange

CUSTOMER_ID_MAX_LENGTH = Subscription._meta.get_field("customer_id").max_length or 128
DETAIL_MAX_LENGTH = SubscriptionChange._meta.get_field("detail").max_length or 255


@dataclass(frozen=True)
class ConsentUpdate:
    customer_id: str
    status: str


def _validated(updates: Sequence[ConsentUpdate], source: str) -> dict[str, str]:
    """Checks every update before anything is written; the last update of a customer wins."""
    if source not in ConsentSource.values:
        raise ValueError(f"unknown consent source {source!r}")
    latest: dict[str, str] = {}
    for index, update in enumerate(updates):
        customer_id = update.customer_id
        if not isinstance(customer_id, str) or not customer_id.strip() or customer_id != customer_id.strip():
            raise ValueError(
                f"updates[{index}]: a customer id must be a non-empty string without spaces around it"
            )
        if len(customer_id) > CUSTOMER_ID_MAX_LENGTH:
            raise ValueError(
                f"updates[{index}]: a customer id is at most {CUSTOMER_ID_MAX_LENGTH} characters"
            )
        if update.status not in ConsentStatus.values:
            allowed = ", ".join(ConsentStatus.values)
            raise ValueError(f"updates[{index}]: status must be one of {allowed}, not {update.status!r}")
        latest[customer_id] = update.status
    return latest


_UPSERT = """
WITH input(customer_id, status) AS (SELECT * FROM unnest(%(customer_ids)s::text[], %(statuses)s::text[])),
changed AS (
    INSERT INTO subscriptions_subscription AS s
        (created_at, updated_at, client_id, channel_id, customer_id, status, source, changed_at,
         sync_version, synced_version, sync_error)
    SELECT %(now)s, %(now)s, %(client_id)s, %(channel_id)s, customer_id, status, %(source)s, %(now)s, 1, 0, ''
    FROM input
    ON CONFLICT (channel_id, customer_id) DO UPDATE
        SET status = EXCLUDED.status, source = EXCLUDED.source, changed_at = EXCLUDED.changed_at,
            updated_at = EXCLUDED.updated_at, sync_version = s.sync_version + 1, sync_error = ''
        WHERE s.status <> EXCLUDED.status
    RETURNING s.id, s.status
)
INSERT INTO subscriptions_subscriptionchange (subscription_id, status, source, detail, created_at)
SELECT id, status, %(source)s, %(detail)s, %(now)s FROM changed
"""


def subscriptions_set(
    *,
    channel: Channel,
    updates: Sequence[ConsentUpdate],
    source: str,
    detail: str = "",
    at: datetime | None = None,
) -> int:
    """Sets each customer's state on the channel and returns how many changed. A customer already in
    that state is left alone: no history row, nothing to sync. Bad input raises ValueError naming the
    first bad update, and nothing is written."""
    latest = _validated(updates, source)
    if not latest:
        return 0
    params: dict[str, Any] = {
        "customer_ids": list(latest),
        "statuses": list(latest.values()),
        "now": at or timezone.now(),
        "client_id": channel.client_id,
        "channel_id": channel.pk,
        "source": source,
        "detail": detail[:DETAIL_MAX_LENGTH],
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_UPSERT, params)
        return cursor.rowcount


def subscription_opt_out(
    *, channel: Channel, customer_id: str, source: str, detail: str = "", at: datetime | None = None
) -> bool:
    """Opts one customer out of one channel; True when this changed their state."""
    update = ConsentUpdate(customer_id=customer_id, status=ConsentStatus.OPTED_OUT)
    return subscriptions_set(channel=channel, updates=[update], source=source, detail=detail, at=at) == 1
