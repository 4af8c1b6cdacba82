"""`manage.py optimove_report SLUG [--campaign ID]`: report a client's runs to Optimove now."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.campaigns.models import CampaignRun
from apps.clients.commands import command_client
from apps.delivery.reporting import RunReport, client_report


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def describe(report: RunReport) -> str:
    """One line per run: counts only, never customer ids."""
    head = f"campaign {report.campaign_id} on channel {report.channel_id} ({report.kind})"
    if report.skipped:
        return f"{head}: not reported: {report.skipped}."
    sent = (
        f"metrics {report.metric_items} in {_plural(report.metric_calls, 'call')}; "
        f"interactions {_plural(report.interactions, 'customer id')} in "
        f"{_plural(report.interaction_calls, 'call')}"
    )
    if report.ok:
        return f"{head}: OK: {sent}."
    waiting = ""
    if report.pending_interactions:
        waiting = f"; {_plural(report.pending_interactions, 'interaction')} wait for the next report"
    errors = "".join(f"\n  - {error}" for error in report.errors)
    return f"{head}: FAILED: {sent}{waiting}.{errors}"


class Command(BaseCommand):
    help = (
        "Reports a client's runs with a message sent in the last REPORTING_WINDOW_DAYS days to Optimove "
        "now: UpdateCampaignMetrics totals and the UpdateCampaignInteractions Optimove has not accepted "
        "yet. Exits non-zero when a run's report failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The client's slug.")
        parser.add_argument("--campaign", type=int, default=None, help="Only this Optimove CampaignID.")

    def handle(self, *args: Any, **options: Any) -> None:
        slug: str = options["slug"]
        campaign_id: int | None = options["campaign"]
        client = command_client(slug)
        if campaign_id is not None:
            if campaign_id < 1:
                raise CommandError(f"--campaign must be a positive CampaignID, got {campaign_id}.")
            if not CampaignRun.objects.filter(client=client, campaign_id=campaign_id).exists():
                raise CommandError(f"Client {slug!r} has no run of campaign {campaign_id}.")
        if not client.is_active:
            self.stdout.write(f"Note: client {slug!r} is marked inactive; the periodic report skips it.")

        reports = client_report(client=client, campaign_id=campaign_id)
        days = settings.REPORTING_WINDOW_DAYS
        what = f"campaign {campaign_id} of {slug!r}" if campaign_id is not None else f"client {slug!r}"
        if not reports:
            self.stdout.write(f"Nothing to report: {what} sent no message in the last {days} days.")
            return
        self.stdout.write(f"Reporting {what} to {client.optimove_base_url}: {_plural(len(reports), 'run')}.")
        for report in reports:
            self.stdout.write(describe(report))
        failed = sum(1 for report in reports if not report.ok)
        if failed:
            raise CommandError(
                f"{failed} of {_plural(len(reports), 'run')} failed to report; what was not accepted is "
                "sent again by the next report."
            )
