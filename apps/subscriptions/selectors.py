from __future__ import annotations

from collections.abc import Iterable

from apps.subscriptions.models import ConsentStatus, Subscription


def opted_out_customers(*, channel_id: int, customer_ids: Iterable[str]) -> set[str]:
    """Which of these customers opted out of the channel: one query for a whole send batch."""
    ids = list(set(customer_ids))
    if not ids:
        return set()
    return set(
        Subscription.objects.filter(
            channel_id=channel_id, customer_id__in=ids, status=ConsentStatus.OPTED_OUT
        ).values_list("customer_id", flat=True)
    )


def subscription_status(*, channel_id: int, customer_id: str) -> str:
    """The customer's state on the channel; `unknown` when nothing was ever recorded."""
    status = (
        Subscription.objects.filter(channel_id=channel_id, customer_id=customer_id)
        .values_list("status", flat=True)
        .first()
    )
    return status or ConsentStatus.UNKNOWN
