"""Pushing template and push-app changes to Optimove. Thin: the outbox in the database is the truth and
these tasks only wake its push; each is safe to run twice, or twice at once."""

from __future__ import annotations

from celery import shared_task

from apps.message_templates import sync


@shared_task(name=sync.PUSH_TASK, ignore_result=True, acks_late=True)
def optimove_sync(client_id: int) -> None:
    """Pushes one client's due outbox rows. Failures are recorded on the rows, not retried here: the
    periodic run picks up what waits."""
    sync.outbox_wake_clear(client_id=client_id)
    sync.outbox_push(client_id=client_id)


@shared_task(name=sync.DUE_TASK, ignore_result=True)
def optimove_sync_due() -> None:
    """Every OPTIMOVE_SYNC_INTERVAL_SECONDS (beat): one push task per client with due rows, so a client
    whose Optimove is slow or down never holds up another's."""
    for client_id in sync.outbox_due_client_ids():
        sync.outbox_push_soon(client_id=client_id)
