"""Thin tasks: ids in, one service call, the retry policy here. Every task is safe to run twice."""

from __future__ import annotations

import logging
import random

from celery import shared_task
from celery.app.task import Task
from django.conf import settings

from apps.campaigns import services
from apps.campaigns.models import CampaignRun, RunState
from apps.core.errors import RetryableError, TerminalError

logger = logging.getLogger(__name__)


def _backoff(attempt: int, base: float = 2.0, cap: float = 60.0) -> float:
    # Countdowns stay far inside the broker's visibility timeout; the sweeper covers anything longer.
    return random.uniform(0, min(cap, base * (2**attempt)))


@shared_task(name="campaigns.fetch_page", bind=True, acks_late=True, max_retries=None)
def fetch_page(self: Task, run_id: int) -> None:
    from apps.optimove.audience import optimove_audience_page

    try:
        services.campaign_run_fetch_page(run_id=run_id, fetch=optimove_audience_page)
    except CampaignRun.DoesNotExist:
        return
    except RetryableError as exc:
        attempts = (
            CampaignRun.objects.filter(pk=run_id).values_list("paging_attempts", flat=True).first() or 0
        )
        if attempts + 1 >= settings.PAGING_MAX_ATTEMPTS:
            services.campaign_run_paging_failed(run_id=run_id, reason=f"audience paging gave up: {exc}")
            return
        CampaignRun.objects.filter(pk=run_id, state=RunState.PAGING).update(paging_attempts=attempts + 1)
        raise self.retry(exc=exc, countdown=_backoff(attempts)) from exc
    except TerminalError as exc:
        services.campaign_run_paging_failed(run_id=run_id, reason=f"audience paging failed: {exc}")


@shared_task(name="campaigns.send_batch", acks_late=True)
def send_batch(message_ids: list[int]) -> None:
    outcome = services.message_batch_send(message_ids=message_ids)
    if outcome.claimed:
        logger.info(
            "send batch",
            extra={
                "claimed": outcome.claimed,
                "sent": outcome.sent,
                "failed": outcome.failed,
                "retried": outcome.retried,
                "skipped": outcome.skipped,
            },
        )


@shared_task(name="campaigns.send_realtime", acks_late=True, ignore_result=True)
def send_realtime(message_id: int) -> None:
    """One real-time trigger's message, straight from the listener. If this task is lost, the message
    is still pending and the dispatcher releases it once its rescue time has come."""
    services.realtime_messages_send(message_id=message_id)


@shared_task(name="campaigns.dispatch", ignore_result=True)
def dispatch() -> None:
    services.messages_dispatch()


@shared_task(name="campaigns.sweep", ignore_result=True)
def sweep() -> None:
    services.campaigns_sweep()


@shared_task(name="campaigns.record_cancelled_customers", bind=True, acks_late=True, max_retries=8)
def record_cancelled_customers(self: Task, cancellation_id: int) -> None:
    from apps.optimove.audience import optimove_record_cancelled_customers

    try:
        optimove_record_cancelled_customers(cancellation_id=cancellation_id)
    except RetryableError as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
