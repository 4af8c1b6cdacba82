from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from apps.subscriptions.models import ConsentStatus, Subscription


def opted_out_customers(*, channel_id: int, customer_ids: Iterable[str]) -> set[str]:
    """Which of these customers opted out of the channel: one query for a whole send batch."""
    ids = list(set(customer_ids))
    if not ids:
        return set()
    with connection.cursor() as cursor:  # plain SQL: this runs once per send batch (apps.core.rows)
        cursor.execute(
            f"SELECT customer_id FROM {Subscription._meta.db_table} "  # noqa: S608
            "WHERE channel_id = %s AND customer_id = ANY(%s) AND status = %s",
            [channel_id, ids, ConsentStatus.OPTED_OUT.value],
        )
        return {row[0] for row in cursor.fetchall()}


def subscription_status(*, channel_id: int, customer_id: str) -> str:
    """The customer's state on the channel; `unknown` when nothing was ever recorded."""
    status = (
        Subscription.objects.filter(channel_id=channel_id, customer_id=customer_id)
        .values_list("status", flat=True)
        .first()
    )
    return status or ConsentStatus.UNKNOWN
