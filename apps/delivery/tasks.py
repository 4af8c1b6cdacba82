"""Reporting tasks, on the `reporting` queue. Thin: ids in, one service call.

Retry policy: none inside the task. A run whose report failed has moved no cursor, so the next beat tick
(REPORTING_INTERVAL_SECONDS) sends what failed; the API client has already retried 429s and 5xx with
backoff before giving up.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.campaigns.models import CampaignRun
from apps.delivery.reporting import campaign_report, reporting_runs_due

logger = logging.getLogger(__name__)


@shared_task(name="delivery.report_due", ignore_result=True)
def report_due() -> int:
    """The beat tick: one task per run with a message sent in the reporting window, so one slow or
    failing run delays no other. Returns how many were enqueued."""
    run_ids = list(
        reporting_runs_due(now=timezone.now())
        .filter(client__is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for run_id in run_ids:
        # A report still waiting when the next tick comes is superseded by that tick's.
        report_run.apply_async(args=(run_id,), queue="reporting", expires=settings.REPORTING_INTERVAL_SECONDS)
    return len(run_ids)


@shared_task(name="delivery.report_run", acks_late=True, ignore_result=True)
def report_run(run_id: int) -> None:
    run = CampaignRun.objects.select_related("client", "channel").filter(pk=run_id).first()
    if run is None:
        return
    report = campaign_report(run=run)
    if report.errors:
        logger.warning(
            "optimove report of run %s failed; the next tick sends what is missing",
            run_id,
            extra={"run_id": run_id, "errors": list(report.errors)},
        )
