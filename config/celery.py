"""The Celery application: JSON only, four queues, beat with the database scheduler."""

import os

from celery import Celery
from celery.signals import task_prerun, worker_init, worker_process_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("optimove_partner")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Celery's Django fixup closes the database connection before and after every task unless told to reuse
# it, so every send batch paid for a new PostgreSQL backend and its cold caches (a million-customer
# campaign opened thousands). Connections are kept, closed every CELERY_DB_REUSE_MAX tasks, and checked
# before each task as Django checks them before each request (CONN_MAX_AGE, CONN_HEALTH_CHECKS), so one
# broken by a PostgreSQL restart or a cut connection is replaced rather than failing the next task.
app.conf.CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", "500"))


@task_prerun.connect
def _database_connections_check(sender: object = None, **kwargs: object) -> None:
    # Not for a task run eagerly (`apply()`): it runs inside its caller's request or transaction.
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@worker_init.connect
def _bulk_worker_priority(sender: object = None, **kwargs: object) -> None:
    """Before the pool forks, so its children inherit the priority (apps.core.priority)."""
    from django.conf import settings

    from apps.core.priority import worker_priority_lower

    # The queues `-Q` chose, or every queue without it.
    queues = getattr(sender, "app", app).amqp.queues.consume_from
    worker_priority_lower(queues=queues, niceness=settings.BULK_WORKER_NICENESS)


@worker_init.connect
def _preload_send_path(**kwargs: object) -> None:
    """Imports the send path (channel backends with their provider libraries, the template sandbox)
    in the worker's main process, before the pool forks: otherwise every child pays for those imports
    in its first send batch, seconds of CPU at once, just when a wave of messages falls due."""
    from django.urls import reverse

    from apps.channels.registry import known_providers
    from apps.message_templates.rendering import template_source_error
    from apps.metrics import recorders  # noqa: F401 (prometheus_client, the send path's counters)
    from apps.subscriptions.unsubscribe import unsubscribe_token

    known_providers()
    template_source_error("{{ warm | default('up') }}", html=True)
    # Every campaign email carries sealed unsubscribe links: derive the token key and fill Django's URL
    # resolver once, here, rather than in each child's first batch.
    token = unsubscribe_token(client_id=0, channel_id=0, customer_id="warm-up", message_id=0)
    reverse("subscriptions-unsubscribe", kwargs={"client_slug": "warm-up", "channel_id": 1, "token": token})


@worker_init.connect
def _startup_objects_freeze(**kwargs: object) -> None:
    """After the preloads above (handlers run in the order they connect), before the pool forks: a full
    garbage collection in a child then walks only what the child made (apps.core.gcfreeze)."""
    from apps.core.gcfreeze import startup_objects_freeze

    startup_objects_freeze()


# --- metrics (apps.metrics): prometheus_client's bookkeeping when a pool child exits ---
@worker_process_shutdown.connect
def _metrics_process_dead(pid: int | None = None, **kwargs: object) -> None:
    from apps.metrics.multiproc import multiprocess_process_dead

    if pid:
        multiprocess_process_dead(pid)


# --- end of metrics ---
