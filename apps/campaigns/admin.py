from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from apps.campaigns import services
from apps.campaigns.models import CampaignRun, Message, MessageStatus
from apps.clients.admin_scoping import ClientScopedAdminMixin
from apps.delivery.admin_reports import REPORTING_READONLY_FIELDS, RunReportingAdminMixin

BAR_COLOURS = {
    MessageStatus.SENT: "#2e7d32",
    MessageStatus.FAILED: "#c62828",
    MessageStatus.SKIPPED: "#f9a825",
    MessageStatus.CANCELLED: "#757575",
}


def progress_bar(run: CampaignRun) -> str:
    counts = services.run_progress(run=run)
    total = max(run.fetched_count, sum(counts.values()), 1)
    segments = format_html_join(
        "",
        '<span title="{} {}" style="display:inline-block;height:10px;width:{}%;background:{}"></span>',
        (
            (counts[s.value], s.label, round(100 * counts[s.value] / total, 2), colour)
            for s, colour in BAR_COLOURS.items()
        ),
    )
    summary = ", ".join(f"{counts[s.value]} {s.value}" for s in BAR_COLOURS)
    return format_html(
        '<div style="width:220px;background:#e0e0e0;white-space:nowrap;font-size:0">{}</div>'
        "<small>fetched {} · {}</small>",
        segments,
        run.fetched_count,
        summary,
    )


@admin.register(CampaignRun)
class CampaignRunAdmin(RunReportingAdminMixin, ClientScopedAdminMixin, admin.ModelAdmin):
    client_lookup = "client"
    list_display = ("campaign_id", "client", "channel", "kind", "state", "progress", "created_at")
    list_filter = ("state", "kind", "client")
    search_fields = ("=campaign_id",)
    actions = ("pause_runs", "resume_runs", "cancel_runs", "retry_failed_messages")
    readonly_fields = [f.name for f in CampaignRun._meta.fields] + ["progress", *REPORTING_READONLY_FIELDS]
    list_select_related = ("client", "channel")

    @admin.display(description="progress")
    def progress(self, run: CampaignRun) -> str:
        return progress_bar(run)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Pause the selected runs")
    def pause_runs(self, request: HttpRequest, queryset: QuerySet[CampaignRun]) -> None:
        done = sum(services.campaign_run_pause(run=run) for run in queryset)
        self.message_user(request, f"Paused {done} run(s).", messages.SUCCESS)

    @admin.action(description="Resume the selected runs")
    def resume_runs(self, request: HttpRequest, queryset: QuerySet[CampaignRun]) -> None:
        done = sum(services.campaign_run_resume(run=run) for run in queryset)
        self.message_user(request, f"Resumed {done} run(s).", messages.SUCCESS)

    @admin.action(description="Cancel the selected runs (pending messages are not sent)")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[CampaignRun]) -> None:
        cancelled = sum(services.campaign_run_cancel(run=run) for run in queryset)
        self.message_user(request, f"Cancelled {cancelled} pending message(s).", messages.SUCCESS)

    @admin.action(description="Retry the failed messages of the selected runs")
    def retry_failed_messages(self, request: HttpRequest, queryset: QuerySet[CampaignRun]) -> None:
        retried = sum(services.campaign_run_retry_failed(run=run) for run in queryset)
        self.message_user(request, f"{retried} failed message(s) will be retried.", messages.SUCCESS)


@admin.register(Message)
class MessageAdmin(ClientScopedAdminMixin, admin.ModelAdmin):
    client_lookup = "run__client"
    list_display = ("customer_id", "run", "template_id", "status", "send_at", "attempts", "sent_at")
    list_filter = ("status",)
    search_fields = ("=customer_id",)
    show_full_result_count = False
    list_select_related = ("run",)
    exclude = ("attributes", "history")
    readonly_fields = [f.name for f in Message._meta.fields if f.name not in ("attributes", "history")] + [
        "status_history"
    ]

    @admin.display(description="status history")
    def status_history(self, message: Message) -> str:
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                "<li>{} · {} {}</li>",
                ((h.get("at", ""), h.get("status", ""), h.get("reason", "")) for h in message.history),
            ),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False
