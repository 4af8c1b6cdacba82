"""The retention purge's beat task, on the `reporting` queue. Thin: one service call.

No retry: every batch the purge finishes is committed, and the next beat tick
(PERSONAL_DATA_PURGE_INTERVAL_SECONDS) carries on from whatever is left."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.subscriptions.retention import personal_data_purge

logger = logging.getLogger(__name__)


@shared_task(name="subscriptions.purge_personal_data", ignore_result=True)
def purge_personal_data() -> None:
    result = personal_data_purge()
    logger.info(
        "personal data purge",
        extra={
            "messages": result.messages,
            "delivery_events": result.delivery_events,
            "notifications": result.notifications,
            "promo_codes": result.promo_codes,
            "clients": result.clients,
            "complete": result.complete,
            "locked_out": result.locked_out,
        },
    )
