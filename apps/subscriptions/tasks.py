"""Pushing consent to Optimove. Thin: the Subscription rows are the outbox and these tasks only wake
its push; each is safe to run twice, or twice at once (the second run of a channel finds it locked)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.clients.models import Channel
from apps.subscriptions import sync
from apps.subscriptions.tasks_personal import purge_personal_data  # noqa: F401 (workers find tasks here)


@shared_task(name=sync.DUE_TASK, ignore_result=True)
def sync_due() -> None:
    """Every SUBSCRIPTIONS_SYNC_INTERVAL_SECONDS (beat): one task per channel with states to push, so a
    client whose Optimove is slow or down never holds up another's. A task still waiting when the next
    beat comes is dropped: that beat queued a fresh one."""
    interval = float(settings.SUBSCRIPTIONS_SYNC_INTERVAL_SECONDS)
    for channel_id in sync.channels_due():
        sync_channel.apply_async(kwargs={"channel_id": channel_id}, queue=sync.SYNC_QUEUE, expires=interval)
    sync.sync_history_prune()


@shared_task(name=sync.CHANNEL_TASK, ignore_result=True, acks_late=True)
def sync_channel(channel_id: int) -> None:
    """Pushes one channel's pending states. Failures stay on the rows (or leave them pending), not in a
    Celery retry: the next beat picks up what waits. The time budget keeps the run well inside the
    task's time limit; the next run goes on from where it stopped."""
    channel = Channel.objects.select_related("client").filter(pk=channel_id).first()
    if channel is None:
        return
    sync.subscriptions_sync(
        channel=channel, time_budget_seconds=float(settings.SUBSCRIPTIONS_SYNC_RUN_SECONDS)
    )
