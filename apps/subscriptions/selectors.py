from __future__ import annotations

from collections.abc import Iterable

from apps.subscriptions.models import OptOut


def opted_out_customers(*, channel_id: int, customer_ids: Iterable[str]) -> set[str]:
    """Which of these customers opted out of the channel: one query for a whole send batch."""
    ids = list(set(customer_ids))
    if not ids:
        return set()
    return set(
        OptOut.objects.filter(channel_id=channel_id, customer_id__in=ids).values_list(
            "customer_id", flat=True
        )
    )
