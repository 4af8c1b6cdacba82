"""Reporting in the admin: on each run's page its totals by metric and template, the timeline of the
reports sent to Optimove with their outcome, and the provider events that matched no message; and a
read-only list of every report call.

The run page (apps.campaigns.admin) takes `RunReportingAdminMixin` and `REPORTING_READONLY_FIELDS`.
Importing this module registers the `OptimoveReport` admin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.campaigns.models import CampaignRun
from apps.clients.admin_scoping import ClientScopedAdminMixin
from apps.core.admin import ReadOnlyAdminMixin
from apps.delivery.models import DeliveryEvent, OptimoveReport
from apps.delivery.reporting import REPORTED_EVENTS, run_metric_totals, run_pending_interactions
from apps.optimove.types import MetricID

if TYPE_CHECKING:
    _ModelAdminBase = admin.ModelAdmin[Any]
else:
    _ModelAdminBase = object

TIMELINE_ROWS = 50
UNMATCHED_ROWS = 20
REPORTING_READONLY_FIELDS = ("report_totals", "report_timeline", "unmatched_provider_events")


def _metric_label(metric_id: int) -> str:
    try:
        return f"{metric_id} {MetricID(metric_id).name.title()}"
    except ValueError:
        return str(metric_id)


def report_totals_html(run: CampaignRun) -> SafeString:
    """The totals UpdateCampaignMetrics reports, by template, and how many interactions wait."""
    totals = run_metric_totals(run=run)
    pending = sum(group.customers for group in run_pending_interactions(run=run))
    waiting = format_html("<p>{} interaction(s) not yet accepted by Optimove.</p>", pending)
    if not totals:
        return format_html("<p>Nothing sent yet.</p>{}", waiting)
    header = format_html_join("", "<th>{}</th>", ((_metric_label(m),) for m in REPORTED_EVENTS))
    rows = format_html_join(
        "",
        "<tr><td>{}</td>{}</tr>",
        (
            (
                t.template_id,
                format_html_join("", "<td>{}</td>", ((t.values[m],) for m in REPORTED_EVENTS)),
            )
            for t in totals
        ),
    )
    total_row = format_html_join(
        "", "<td><b>{}</b></td>", ((sum(t.values[m] for t in totals),) for m in REPORTED_EVENTS)
    )
    return format_html(
        "<table><thead><tr><th>template</th>{}</tr></thead><tbody>{}"
        "<tr><td><b>all</b></td>{}</tr></tbody></table>{}",
        header,
        rows,
        total_row,
        waiting,
    )


def _report_about(report: OptimoveReport) -> str:
    if report.event_id is None:
        return ""
    date = report.interaction_date.isoformat() if report.interaction_date else ""
    return f"event {_metric_label(report.event_id)}, template {report.template_id}, {date}"


def report_timeline_html(run: CampaignRun) -> SafeString:
    """The latest report calls for the run, newest first, with their outcome."""
    reports = list(OptimoveReport.objects.filter(run=run).order_by("-sent_at", "-id")[:TIMELINE_ROWS])
    if not reports:
        return format_html("<p>Not reported to Optimove yet.</p>")
    rows = format_html_join(
        "",
        '<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style="color:{}">{}</td><td>{}</td></tr>',
        (
            (
                r.sent_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                r.get_kind_display(),
                r.items,
                _report_about(r),
                "#2e7d32" if r.ok else "#c62828",
                "accepted" if r.ok else "failed",
                r.error,
            )
            for r in reports
        ),
    )
    link = reverse("admin:delivery_optimovereport_changelist") + f"?run__id__exact={run.pk}"
    return format_html(
        "<table><thead><tr><th>sent at</th><th>call</th><th>items</th><th>about</th><th>outcome</th>"
        '<th>error</th></tr></thead><tbody>{}</tbody></table><p><a href="{}">All report calls of this run'
        "</a></p>",
        rows,
        link,
    )


def unmatched_events_html(run: CampaignRun) -> SafeString:
    """Provider events that matched no message, for the run's client and channel (or no channel) since
    the run began: the run's own ones are among them, though nothing ties an unmatched event to a run."""
    events = DeliveryEvent.objects.filter(
        Q(channel=run.channel_id) | Q(channel__isnull=True),
        client=run.client_id,
        message__isnull=True,
        received_at__gte=run.created_at,
    )
    count = events.count()
    if not count:
        return format_html("<p>None.</p>")
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                e.received_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                e.provider,
                e.get_event_display(),
                e.provider_message_id or "(no id)",
                e.occurred_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            )
            for e in events.order_by("-received_at", "-id")[:UNMATCHED_ROWS]
        ),
    )
    try:
        changelist = reverse("admin:delivery_deliveryevent_changelist")
    except NoReverseMatch:  # no DeliveryEvent admin registered
        more = format_html("")
    else:
        more = format_html(
            '<p><a href="{}?client__id__exact={}&amp;message__isnull=True">All unmatched events of the '
            "client</a></p>",
            changelist,
            run.client_id,
        )
    return format_html(
        "<p>{} event(s); the latest:</p><table><thead><tr><th>received</th><th>provider</th><th>event</th>"
        "<th>provider message id</th><th>occurred</th></tr></thead><tbody>{}</tbody></table>{}",
        count,
        rows,
        more,
    )


class RunReportingAdminMixin(_ModelAdminBase):
    """Read-only reporting fields for the CampaignRun admin (list them in `readonly_fields`)."""

    @admin.display(description="totals reported to Optimove")
    def report_totals(self, run: CampaignRun) -> SafeString:
        return report_totals_html(run)

    @admin.display(description="reports sent to Optimove")
    def report_timeline(self, run: CampaignRun) -> SafeString:
        return report_timeline_html(run)

    @admin.display(description="provider events matching no message")
    def unmatched_provider_events(self, run: CampaignRun) -> SafeString:
        return unmatched_events_html(run)


@admin.register(OptimoveReport)
class OptimoveReportAdmin(ReadOnlyAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin):
    client_lookup = "run__client"
    list_display = (
        "sent_at",
        "run",
        "kind",
        "ok",
        "items",
        "event_id",
        "template_id",
        "interaction_date",
        "error",
    )
    list_filter = ("kind", "ok")
    list_select_related = ("run",)
    date_hierarchy = "sent_at"
    show_full_result_count = False
    readonly_fields = [f.name for f in OptimoveReport._meta.fields]
