"""Reporting delivery and engagement back to Optimove, for seven days after each send.

Each report of a run makes two kinds of call:

- `UpdateCampaignMetrics`: the current totals per (channel, campaign, template) of 0 Sent (messages
  sent), 1 Delivered, 2 Opened, 3 Clicked, 4 Unsubscribed and 9 Bounced (sent messages whose column is
  set). Totals, never deltas: whether Optimove adds or replaces is not documented, and a total sent twice
  is still right. Every report sends them all again.
- `UpdateCampaignInteractions`: the customers whose events Optimove has not accepted yet, grouped by
  InteractionDate (the UTC day of the event), EventID and TemplateID, at most 10,000 ids per call,
  RecipientGroupID 1. EventIDs are the metric ids: OPTIMOVE_API.md says they follow the metric ids for
  0-4, so 0 Sent is reported too (Optimove knows whom it asked us to reach, not whom we did reach:
  skipped, failed and opted-out customers are not in it); 9 Bounced is the same guess the metrics make.
  A customer appears once per message, so a real-time run's two messages to one customer both count,
  as they do in the totals.

Interactions are additive at Optimove, so each (message, event) is reported once: the message's
`InteractionCursor` bit is set in the same transaction that records the accepted call, and only after
Optimove accepted it. A call that fails moves nothing, and the next report sends it again. The one
repeat we cannot rule out is a call Optimove accepted whose answer was lost (a timeout, a dropped
connection, or this process dying before its commit): it is sent once more, and Optimove counts it twice.

Runs are reported while they have a message sent in the last `REPORTING_WINDOW_DAYS` days; a long-lived
real-time run is reported for as long as it keeps sending. One report of a run at a time (a PostgreSQL
session lock), so the beat tick and `manage.py optimove_report` cannot both send the same interactions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.utils import timezone

from apps.campaigns.models import CampaignRun, Message, MessageStatus
from apps.clients.models import Client
from apps.core.locks import session_lock
from apps.delivery.models import OptimoveReport, ReportKind
from apps.optimove.client import (
    INTERACTION_CUSTOMERS_PER_CALL,
    METRICS_PER_CALL,
    OptimoveClient,
    optimove_client_for,
)
from apps.optimove.errors import OptimoveAuthError, OptimoveError
from apps.optimove.types import CampaignInteractions, CampaignMetric, MetricID

logger = logging.getLogger(__name__)

# What is reported, and the column of `Message` that says it happened (and when). Only sent messages
# count; an open implies delivery and a click both (apps.delivery.services sets the implied columns).
REPORTED_EVENTS: dict[MetricID, str] = {
    MetricID.SENT: "sent_at",
    MetricID.DELIVERED: "delivered_at",
    MetricID.OPENED: "opened_at",
    MetricID.CLICKED: "clicked_at",
    MetricID.UNSUBSCRIBED: "unsubscribed_at",
    MetricID.BOUNCED: "bounced_at",
}
RECIPIENT_GROUP_ID = 1
_ERROR_MAX_CHARS = 500


# ---------------------------------------------------------------------------------------------------
# Reading (selectors): also what the admin shows
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateTotals:
    """A run's totals for one template, by MetricID."""

    template_id: int
    values: dict[MetricID, int]


def reporting_window_start(*, now: datetime) -> datetime:
    return now - timedelta(days=settings.REPORTING_WINDOW_DAYS)


def reporting_runs_due(*, now: datetime) -> QuerySet[CampaignRun]:
    """Runs with a message sent in the reporting window ending at `now` (scheduled or real-time)."""
    recent = Message.objects.filter(
        run=OuterRef("pk"), status=MessageStatus.SENT, sent_at__gte=reporting_window_start(now=now)
    )
    return CampaignRun.objects.filter(Exists(recent))


def run_metric_totals(*, run: CampaignRun) -> list[TemplateTotals]:
    """The totals UpdateCampaignMetrics reports for `run`, one entry per template that sent anything."""
    annotations = {
        metric.name: Count("id") if metric is MetricID.SENT else Count(column)
        for metric, column in REPORTED_EVENTS.items()
    }
    rows = (
        Message.objects.filter(run=run, status=MessageStatus.SENT)
        .values("template_id")
        .annotate(**annotations)
        .order_by("template_id")
        .values_list("template_id", *annotations)
    )
    return [
        TemplateTotals(
            template_id=int(row[0]),
            values={metric: int(n) for metric, n in zip(REPORTED_EVENTS, row[1:], strict=True)},
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class InteractionGroup:
    """Interactions not yet accepted by Optimove that go into the same calls."""

    interaction_date: date
    event_id: MetricID
    template_id: int
    customers: int


def _event_values_sql() -> str:
    # The columns are ours (REPORTED_EVENTS), never input.
    return ", ".join(f"({int(metric)}, m.{column})" for metric, column in REPORTED_EVENTS.items())


def run_pending_interactions(*, run: CampaignRun) -> list[InteractionGroup]:
    """The interactions of `run` that Optimove has not accepted yet, by (date, event, template)."""
    sql = f"""
        SELECT (e.at AT TIME ZONE 'UTC')::date, e.event_id, m.template_id, count(*)
          FROM campaigns_message m
          LEFT JOIN delivery_interactioncursor c ON c.message_id = m.id
         CROSS JOIN LATERAL (VALUES {_event_values_sql()}) AS e(event_id, at)
         WHERE m.run_id = %s AND m.status = %s AND e.at IS NOT NULL
           AND (COALESCE(c.reported, 0) & (1 << e.event_id)) = 0
         GROUP BY 1, 2, 3
         ORDER BY 1, 2, 3
    """  # noqa: S608 (the VALUES list is built from our own column names)
    with connection.cursor() as cursor:
        cursor.execute(sql, [run.pk, MessageStatus.SENT])
        rows = cursor.fetchall()
    return [
        InteractionGroup(interaction_date=day, event_id=MetricID(event), template_id=template, customers=n)
        for day, event, template, n in rows
    ]


def _pending_chunk(
    *, run_id: int, group: InteractionGroup, after_message_id: int, limit: int
) -> list[tuple[int, str]]:
    """(message id, customer id) of one group's next unreported interactions, in message id order."""
    column = REPORTED_EVENTS[group.event_id]
    sql = f"""
        SELECT m.id, m.customer_id
          FROM campaigns_message m
          LEFT JOIN delivery_interactioncursor c ON c.message_id = m.id
         WHERE m.run_id = %s AND m.status = %s AND m.template_id = %s
           AND m.{column} IS NOT NULL AND (m.{column} AT TIME ZONE 'UTC')::date = %s
           AND (COALESCE(c.reported, 0) & %s) = 0
           AND m.id > %s
         ORDER BY m.id
         LIMIT %s
    """  # noqa: S608 (column is one of REPORTED_EVENTS)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                run_id,
                MessageStatus.SENT,
                group.template_id,
                group.interaction_date,
                1 << int(group.event_id),
                after_message_id,
                limit,
            ],
        )
        return [(int(message_id), str(customer_id)) for message_id, customer_id in cursor.fetchall()]


# ---------------------------------------------------------------------------------------------------
# Reporting (services)
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one report of one run sent. Counts only: never customer ids."""

    run_id: int
    campaign_id: int
    channel_id: int
    kind: str
    metric_calls: int = 0
    metric_items: int = 0
    interaction_calls: int = 0
    interactions: int = 0  # customer ids Optimove accepted
    pending_interactions: int = 0  # left for the next report (after a failure)
    errors: tuple[str, ...] = ()
    skipped: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(slots=True)
class _Progress:
    metric_calls: int = 0
    metric_items: int = 0
    interaction_calls: int = 0
    interactions: int = 0
    errors: list[str] = field(default_factory=list)


def _describe(
    run: CampaignRun, progress: _Progress | None = None, *, pending: int = 0, skipped: str = ""
) -> RunReport:
    done = progress or _Progress()
    return RunReport(
        run_id=run.pk,
        campaign_id=run.campaign_id,
        channel_id=run.channel.optimove_channel_id,
        kind=run.kind,
        metric_calls=done.metric_calls,
        metric_items=done.metric_items,
        interaction_calls=done.interaction_calls,
        interactions=done.interactions,
        pending_interactions=pending,
        errors=tuple(done.errors),
        skipped=skipped,
    )


def _error_text(error: Exception) -> str:
    # The API client's messages name the function and the status, never a body or a credential; its
    # ValueErrors name the field and position, never a customer id.
    text = str(error) or type(error).__name__
    if isinstance(error, OptimoveAuthError) and error.status is not None:  # Optimove said no
        text = f"{text}: check the client's Optimove credentials"
    return text[:_ERROR_MAX_CHARS]


def _run_report_lock(run_id: int) -> AbstractContextManager[bool]:
    return session_lock(f"delivery-report:run:{run_id}")


def _report_call(
    *,
    run: CampaignRun,
    kind: ReportKind,
    items: int,
    call: Callable[[], None],
    accepted: Callable[[], None] | None = None,
    group: InteractionGroup | None = None,
) -> Exception | None:
    """Makes one Optimove call and records it; `accepted` runs in the same transaction as the record of
    an accepted call. Returns the error of a failed call."""
    sent_at = timezone.now()
    started = time.monotonic()
    error: Exception | None = None
    try:
        call()
    except (OptimoveError, ValueError) as exc:
        error = exc
    _record(run=run, kind=kind, items=items, sent_at=sent_at, error=error, accepted=accepted, group=group)
    logger.info(
        "optimove report %s for run %s: %d item(s) %s in %d ms",
        kind,
        run.pk,
        items,
        "accepted" if error is None else "failed",
        int((time.monotonic() - started) * 1000),
        extra={"run_id": run.pk, "report_kind": str(kind), "items": items, "ok": error is None},
    )
    return error


def _record(
    *,
    run: CampaignRun,
    kind: ReportKind,
    items: int,
    sent_at: datetime,
    error: Exception | None,
    accepted: Callable[[], None] | None = None,
    group: InteractionGroup | None = None,
) -> None:
    with transaction.atomic():
        OptimoveReport.objects.create(
            run=run,
            kind=kind,
            sent_at=sent_at,
            items=items,
            event_id=None if group is None else int(group.event_id),
            template_id=None if group is None else group.template_id,
            interaction_date=None if group is None else group.interaction_date,
            ok=error is None,
            error="" if error is None else _error_text(error),
        )
        if error is None and accepted is not None:
            accepted()


def _stops_the_run(error: Exception) -> bool:
    """Optimove unreachable or refusing us (timeouts, 429 and 5xx past the client's retries, bad
    credentials): every later call would fail the same way, so the rest waits for the next report.
    A 400 on one call says nothing about the others."""
    return isinstance(error, OptimoveError) and (error.retryable or isinstance(error, OptimoveAuthError))


def _report_metrics(*, api: OptimoveClient, run: CampaignRun, progress: _Progress) -> bool:
    """Sends the run's totals; False when Optimove is unreachable and the run's report should stop."""
    channel_id = run.channel.optimove_channel_id
    metrics = [
        CampaignMetric(
            channel_id=channel_id,
            campaign_id=run.campaign_id,
            template_id=totals.template_id,
            metric_id=int(metric),
            metric_value=value,
        )
        for totals in run_metric_totals(run=run)
        for metric, value in totals.values.items()
    ]
    for start in range(0, len(metrics), METRICS_PER_CALL):
        batch = metrics[start : start + METRICS_PER_CALL]
        error = _report_call(
            run=run,
            kind=ReportKind.METRICS,
            items=len(batch),
            call=partial(api.update_campaign_metrics, metrics=batch),
        )
        if error is not None:
            progress.errors.append(f"UpdateCampaignMetrics: {_error_text(error)}")
            if _stops_the_run(error):
                return False
            continue
        progress.metric_calls += 1
        progress.metric_items += len(batch)
    return True


def _mark_reported(*, message_ids: list[int], event_id: MetricID) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO delivery_interactioncursor (message_id, reported)
            SELECT unnest(%s::bigint[]), %s
            ON CONFLICT (message_id)
            DO UPDATE SET reported = delivery_interactioncursor.reported | EXCLUDED.reported
            """,
            [message_ids, 1 << int(event_id)],
        )


def _report_interactions(*, api: OptimoveClient, run: CampaignRun, progress: _Progress) -> None:
    channel_id = run.channel.optimove_channel_id
    for group in run_pending_interactions(run=run):
        after = 0
        while True:
            chunk = _pending_chunk(
                run_id=run.pk, group=group, after_message_id=after, limit=INTERACTION_CUSTOMERS_PER_CALL
            )
            if not chunk:
                break
            message_ids = [message_id for message_id, _ in chunk]
            interactions = CampaignInteractions(
                campaign_id=run.campaign_id,
                channel_id=channel_id,
                interaction_date=group.interaction_date,
                template_id=group.template_id,
                event_id=int(group.event_id),
                customer_ids=tuple(customer_id for _, customer_id in chunk),
                recipient_group_id=RECIPIENT_GROUP_ID,
            )
            # At most 10,000 ids, so the client makes exactly one HTTP call and its outcome is this
            # chunk's. UpdateCampaignInteractions is additive at Optimove: should it accept the call
            # but its answer be lost (a timeout after it processed the body, the client's own retry of
            # that, or this process dying before the commit below), the cursor does not move and the
            # next report sends these customers again, which Optimove then counts twice. Every other
            # failure moves nothing and loses nothing.
            error = _report_call(
                run=run,
                kind=ReportKind.INTERACTIONS,
                items=len(chunk),
                call=partial(api.update_campaign_interactions, interactions=interactions),
                accepted=partial(_mark_reported, message_ids=message_ids, event_id=group.event_id),
                group=group,
            )
            if error is not None:
                progress.errors.append(
                    f"UpdateCampaignInteractions (event {int(group.event_id)}, template "
                    f"{group.template_id}, {group.interaction_date.isoformat()}): {_error_text(error)}"
                )
                if _stops_the_run(error):
                    return
                break  # this group waits for the next report; the others may still go through
            progress.interaction_calls += 1
            progress.interactions += len(chunk)
            after = message_ids[-1]
            if len(chunk) < INTERACTION_CUSTOMERS_PER_CALL:
                break


def campaign_report(*, run: CampaignRun, now: datetime | None = None) -> RunReport:
    """Reports one run to Optimove now: its totals, then its interactions not yet accepted. A run
    with nothing sent in the reporting window ending at `now` is not reported."""
    now = now or timezone.now()
    if not reporting_runs_due(now=now).filter(pk=run.pk).exists():
        days = settings.REPORTING_WINDOW_DAYS
        return _describe(run, skipped=f"nothing sent in the last {days} days")
    with _run_report_lock(run.pk) as locked:
        if not locked:
            return _describe(run, skipped="another report of this run is under way")
        progress = _Progress()
        try:
            api = optimove_client_for(run.client)
        except OptimoveError as exc:
            # Nothing can be sent (no credentials, a malformed base URL): shown on the run's timeline.
            _record(run=run, kind=ReportKind.METRICS, items=0, sent_at=timezone.now(), error=exc)
            progress.errors.append(f"cannot call Optimove: {_error_text(exc)}")
            return _describe(run, progress)
        if _report_metrics(api=api, run=run, progress=progress):
            _report_interactions(api=api, run=run, progress=progress)
        pending = 0
        if progress.errors:
            pending = sum(group.customers for group in run_pending_interactions(run=run))
        return _describe(run, progress, pending=pending)


def client_report(
    *, client: Client, campaign_id: int | None = None, now: datetime | None = None
) -> list[RunReport]:
    """Reports every run of `client` (of one campaign, if given) with a message sent in the reporting
    window. One run's failure does not stop the others."""
    now = now or timezone.now()
    runs = reporting_runs_due(now=now).filter(client=client)
    if campaign_id is not None:
        runs = runs.filter(campaign_id=campaign_id)
    reports = []
    for run in runs.select_related("client", "channel").order_by(
        "campaign_id", "channel__optimove_channel_id", "pk"
    ):
        try:
            reports.append(campaign_report(run=run, now=now))
        except Exception as exc:  # a bug or the database: the next run may still go through
            logger.exception("optimove report of run %s failed", run.pk, extra={"run_id": run.pk})
            progress = _Progress(errors=[f"unexpected error ({type(exc).__name__}); see the logs"])
            reports.append(_describe(run, progress))
    return reports
