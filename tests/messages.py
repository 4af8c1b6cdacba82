"""Message rows as a campaign's paging stores them, for tests that start from a run's messages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.campaigns.models import CampaignRun, Message, MessageStatus


def messages_add(
    run: CampaignRun,
    count: int,
    *,
    status: str = MessageStatus.PENDING,
    template_id: int = 1,
    at: datetime | None = None,
    prefix: str = "c",
    attributes: Callable[[int], dict[str, str]] | None = None,
    **fields: Any,
) -> list[int]:
    """Adds `count` messages to `run` for customers `{prefix}N`, numbered on from the run's messages,
    each sent and due at `at` (now) and keyed by its customer; returns their ids in customer order.
    `attributes(N)` gives customer N's merge attributes (default: an `Email`); `fields`, other columns."""
    start = Message.objects.filter(run=run).count()
    when = at or timezone.now()
    made = Message.objects.bulk_create(
        (
            Message(
                run=run,
                customer_id=f"{prefix}{n}",
                template_id=template_id,
                idempotency_key=f"{prefix}{n}",
                send_at=when,
                due_at=when,
                status=status,
                attributes=attributes(n) if attributes else {"Email": f"{prefix}{n}@example.test"},
                **fields,
            )
            for n in range(start, start + count)
        ),
        batch_size=2000,
    )
    return [m.pk for m in made]
