"""Keeping Optimove's template and app lists in line with ours: the outbox, its push, and reconcile.

How a change travels:
1. A service (`template_upsert`, `template_delete`, `push_app_upsert`, `push_app_delete`, a channel's
   deletion or new ChannelID) calls `outbox_record_change` inside its own transaction. After commit a
   wake-up task is queued for the client; at most one waits at a time per client.
2. `outbox_push` (task `message_templates.optimove_sync`, queue `reporting`) takes each (channel,
   template-or-app) group of the client with due rows, keeps only the latest row per key, calls
   Optimove (the API client batches 100 per call and retries what can heal) and marks the rows.
3. Every OPTIMOVE_SYNC_INTERVAL_SECONDS the beat task `message_templates.optimove_sync_due` wakes the
   push for every client with due rows: rows whose wake-up was lost (a killed worker, a Redis restart)
   or that wait out an Optimove outage are pushed then. Nothing is lost while the database holds it.
4. `templates_reconcile` (`manage.py optimove_sync_templates`) compares with GetChannelTemplates and
   fixes whatever drifted.

One pusher per group at a time, under a PostgreSQL advisory lock, rather than row locks: two workers
holding different rows of the same key could push them out of order (an add landing after the delete
that followed it). The lock is a session lock, so no transaction stays open across the HTTP calls,
and PostgreSQL lets go of it if the worker dies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Literal

from django.conf import settings
from django.db import transaction
from django.db.models import Case, CharField, F, Min, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Cast, Concat, Left
from django.utils import timezone

from apps.clients.models import Channel, Client, PushApp
from apps.core.locks import session_lock
from apps.message_templates.models import (
    MessageTemplate,
    OptimoveOutbox,
    OutboxAction,
    OutboxKind,
    OutboxState,
)
from apps.optimove.client import OptimoveClient, optimove_client_for
from apps.optimove.errors import OptimoveAuthError, OptimoveError, OptimoveRetryableError
from apps.optimove.types import ChannelApp, ChannelTemplate

logger = logging.getLogger(__name__)

PUSH_TASK = "message_templates.optimove_sync"
DUE_TASK = "message_templates.optimove_sync_due"
# Template sync is background work that talks to Optimove, like reporting; it must never wait behind
# (or delay) a campaign's audience pages or sends.
SYNC_QUEUE = "reporting"
# Set while a wake-up task for the client waits in the queue; the task clears it as it starts, so a
# change committed after that queues a new one. The expiry frees it should that task be lost.
_WAKE_KEY = "optimove-sync:wake:{client_id}"
_WAKE_KEY_SECONDS = 60
# A group is pushed again at once when rows arrived during its push, at most this many times per run.
_ROUNDS_PER_GROUP = 5
_ERROR_MAX_CHARS = 500
NO_CREDENTIALS = "waiting for the client's Optimove credentials (API key, or user name and password)"


# ---------------------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------------------


def outbox_record_change(
    *,
    client_id: int,
    optimove_channel_id: int,
    kind: OutboxKind,
    key: str,
    before: str | None,
    after: str | None,
) -> OptimoveOutbox | None:
    """Records what Optimove must hear when one template or app goes from `before` to `after`.

    Each is the name it is listed under in Optimove, or None when it is not listed there (absent, or
    inactive). Listed under a new name, or listed again: an add. No longer listed: a delete. Anything
    else (a content edit) needs no call and records nothing. Call it inside the change's transaction.
    """
    if after is not None and after != before:
        return _record(client_id, optimove_channel_id, kind, OutboxAction.ADD, key, after)
    if after is None and before is not None:
        return _record(client_id, optimove_channel_id, kind, OutboxAction.DELETE, key, "")
    return None


def outbox_record_again(
    *, client_id: int, optimove_channel_id: int, kind: OutboxKind, key: str, listed_as: str | None
) -> OptimoveOutbox:
    """Pushes a key's current state once more (an add, or a delete when it is not listed): after a
    failed push, or when Optimove is known to have drifted."""
    if listed_as is None:
        return _record(client_id, optimove_channel_id, kind, OutboxAction.DELETE, key, "")
    return _record(client_id, optimove_channel_id, kind, OutboxAction.ADD, key, listed_as)


def outbox_channel_moved(*, channel: Channel, old_client_id: int, old_optimove_channel_id: int) -> int:
    """The channel answers to another ChannelID (or client) now: each listed template and app leaves the
    old list and joins the new one. Returns the number of rows recorded."""
    if (old_client_id, old_optimove_channel_id) == (channel.client_id, channel.optimove_channel_id):
        return 0
    recorded = 0
    listed: list[tuple[OutboxKind, str, str]] = [
        (OutboxKind.TEMPLATE, str(template_id), name)
        for template_id, name in MessageTemplate.objects.filter(channel=channel, is_active=True)
        .order_by("template_id")
        .values_list("template_id", "name")
    ]
    listed += [
        (OutboxKind.APP, app_id, name)
        for app_id, name in PushApp.objects.filter(channel=channel, is_active=True)
        .order_by("app_id")
        .values_list("app_id", "name")
    ]
    for kind, key, name in listed:
        outbox_record_change(
            client_id=old_client_id,
            optimove_channel_id=old_optimove_channel_id,
            kind=kind,
            key=key,
            before=name,
            after=None,
        )
        outbox_record_change(
            client_id=channel.client_id,
            optimove_channel_id=channel.optimove_channel_id,
            kind=kind,
            key=key,
            before=None,
            after=name,
        )
        recorded += 2
    return recorded


def _record(
    client_id: int, optimove_channel_id: int, kind: OutboxKind, action: OutboxAction, key: str, name: str
) -> OptimoveOutbox:
    if action == OutboxAction.ADD and not name.strip():
        raise ValueError(f"an add of {kind} {key!r} needs the name Optimove is to show")
    row = OptimoveOutbox.objects.create(
        client_id=client_id,
        optimove_channel_id=optimove_channel_id,
        kind=kind,
        action=action,
        key=key,
        name=name,
    )
    # Many rows in one transaction queue one task: the wake-up key lets only the first through.
    transaction.on_commit(lambda: outbox_push_soon(client_id=client_id))
    return row


def outbox_push_soon(*, client_id: int) -> bool:
    """Queues a push of the client's outbox unless one is already waiting; True when it queued one.

    Never raises: should Redis or the broker be down, the rows are in the database and the beat task
    pushes them within OPTIMOVE_SYNC_INTERVAL_SECONDS of its return.
    """
    from apps.core.redis import get_redis
    from config.celery import app

    try:
        if not get_redis().set(_WAKE_KEY.format(client_id=client_id), "1", nx=True, ex=_WAKE_KEY_SECONDS):
            return False
        app.send_task(PUSH_TASK, kwargs={"client_id": client_id}, queue=SYNC_QUEUE)
        return True
    except Exception:
        logger.warning(
            "optimove sync: could not queue a push for client %s; the periodic run will push it",
            client_id,
            extra={"client_id": client_id},
        )
        return False


def outbox_wake_clear(*, client_id: int) -> None:
    """Called as a push task starts: a change committed from now on queues a task of its own."""
    from apps.core.redis import get_redis

    try:
        get_redis().delete(_WAKE_KEY.format(client_id=client_id))
    except Exception:  # the key expires by itself; the periodic run covers the gap
        logger.warning("optimove sync: could not clear the wake-up key", extra={"client_id": client_id})


# ---------------------------------------------------------------------------------------------------
# Pushing
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxPushResult:
    done: int = 0  # rows whose change reached Optimove
    superseded: int = 0  # rows replaced by a later row for the same key
    retrying: int = 0  # rows kept pending after a failure that can heal
    failed: int = 0  # rows Optimove refused, or that ran out of attempts
    busy_groups: int = 0  # groups another worker was pushing
    waiting: int = 0  # rows left pending because the client has no credentials

    def __add__(self, other: OutboxPushResult) -> OutboxPushResult:
        return OutboxPushResult(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


@dataclass(frozen=True)
class _Group:
    client_id: int
    optimove_channel_id: int
    kind: str

    @property
    def lock_name(self) -> str:
        return f"optimove-outbox:{self.client_id}:{self.optimove_channel_id}:{self.kind}"


def _due(now: datetime) -> Q:
    return Q(state=OutboxState.PENDING) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))


def outbox_due_client_ids(*, now: datetime | None = None) -> list[int]:
    """Clients with rows to push now."""
    now = now or timezone.now()
    return list(
        OptimoveOutbox.objects.filter(_due(now))
        .order_by("client_id")
        .values_list("client_id", flat=True)
        .distinct()
    )


def outbox_push(*, client_id: int, now: datetime | None = None) -> OutboxPushResult:
    """Pushes the client's due rows to Optimove, one (channel, kind) group at a time, oldest first.

    Stops at the first failure that can heal: Optimove is down or over its limit for this client, and
    the other groups would only fail the same way; their rows wait, untouched, for the next run.
    Safe to run twice at once: a group another worker is pushing is skipped.
    """
    now = now or timezone.now()
    groups = [
        _Group(client_id, channel_id, kind)
        for channel_id, kind, _first in OptimoveOutbox.objects.filter(_due(now), client_id=client_id)
        .values_list("optimove_channel_id", "kind")
        .annotate(first=Min("id"))
        .order_by("first")
    ]
    if not groups:
        return OutboxPushResult()
    client = Client.objects.filter(pk=client_id).first()
    if client is None:
        return OutboxPushResult()
    if not client.optimove_api_key and not (client.optimove_username and client.optimove_password):
        # Not a failure of these changes: they go out once the credentials are set. Meanwhile the admin
        # says why they wait.
        pending = OptimoveOutbox.objects.filter(client_id=client_id, state=OutboxState.PENDING)
        pending.exclude(last_error=NO_CREDENTIALS).update(last_error=NO_CREDENTIALS)
        return OutboxPushResult(waiting=pending.count())
    api: OptimoveClient | OptimoveError
    try:
        api = optimove_client_for(client)
    except OptimoveError as exc:  # a base URL the client refuses: every row fails with the reason
        api = exc
    result = OutboxPushResult()
    for group in groups:
        outcome = _group_push(group, api=api, now=now)
        result += outcome
        if outcome.retrying:
            break
    if result != OutboxPushResult():
        logger.info(
            "optimove sync for client %s: %d done, %d superseded, %d retrying, %d failed, %d busy groups",
            client.slug,
            result.done,
            result.superseded,
            result.retrying,
            result.failed,
            result.busy_groups,
            extra={"client": client.slug, "done": result.done, "failed": result.failed},
        )
    return result


def _group_push(group: _Group, *, api: OptimoveClient | OptimoveError, now: datetime) -> OutboxPushResult:
    with outbox_group_lock(
        client_id=group.client_id,
        optimove_channel_id=group.optimove_channel_id,
        kind=OutboxKind(group.kind),
    ) as locked:
        if not locked:
            return OutboxPushResult(busy_groups=1)
        total = OutboxPushResult()
        for _ in range(_ROUNDS_PER_GROUP):
            rows = list(_pending(group).order_by("id"))
            # Rows that arrived while the last round was out are due (no next_attempt_at); rows that
            # wait out a failure are not, so a group that just failed is not tried again at once.
            if not any(row.next_attempt_at is None or row.next_attempt_at <= now for row in rows):
                break
            outcome = _rows_push(group, rows, api=api, now=now)
            total += outcome
            if outcome.retrying:
                break
        return total


def _pending(group: _Group) -> QuerySet[OptimoveOutbox]:
    return OptimoveOutbox.objects.filter(
        client_id=group.client_id,
        optimove_channel_id=group.optimove_channel_id,
        kind=group.kind,
        state=OutboxState.PENDING,
    )


def _rows_push(
    group: _Group,
    rows: list[OptimoveOutbox],
    *,
    api: OptimoveClient | OptimoveError,
    now: datetime,
) -> OutboxPushResult:
    """Pushes one group's pending rows. `api` is the error instead when no API client could be made."""
    latest: dict[str, OptimoveOutbox] = {}
    for row in rows:  # by id: the last change to a key is what Optimove must end up with
        latest[row.key] = row
    superseded = [row.pk for row in rows if latest[row.key] is not row]
    adds = [row for row in latest.values() if row.action == OutboxAction.ADD]
    deletes = [row for row in latest.values() if row.action == OutboxAction.DELETE]
    done: list[OptimoveOutbox] = []
    retry: list[tuple[OptimoveOutbox, str]] = []
    failed: list[tuple[OptimoveOutbox, str]] = []
    # After a failure that can heal, what was not sent yet waits too; a refusal of the adds does not
    # stop the deletes (and the other way round).
    healable: Exception | None = api if isinstance(api, OptimoveRetryableError) else None
    for batch, send in ((adds, _send_adds), (deletes, _send_deletes)):
        if not batch:
            continue
        error = healable or (api if isinstance(api, OptimoveError) else _sent(send, api, group, batch))
        if error is None:
            done += batch
        elif isinstance(error, OptimoveRetryableError):
            healable = error
            retry += [(row, _error_text(error)) for row in batch]
        else:
            failed += [(row, _error_text(error)) for row in batch]
    with transaction.atomic():
        if superseded:
            OptimoveOutbox.objects.filter(pk__in=superseded).update(state=OutboxState.SUPERSEDED, done_at=now)
        if done:
            OptimoveOutbox.objects.filter(pk__in=[row.pk for row in done]).update(
                state=OutboxState.DONE,
                done_at=now,
                attempts=F("attempts") + 1,
                last_error="",
                next_attempt_at=None,
            )
        gave_up = 0
        for row, reason in retry:
            row.attempts += 1
            row.last_error = reason
            if row.attempts >= settings.OPTIMOVE_SYNC_MAX_ATTEMPTS:
                row.state = OutboxState.FAILED
                row.done_at = now
                row.last_error = f"gave up after {row.attempts} attempts: {reason}"[:_ERROR_MAX_CHARS]
                gave_up += 1
            else:
                row.next_attempt_at = now + _retry_delay(row.attempts)
        for row, reason in failed:
            row.attempts += 1
            row.state = OutboxState.FAILED
            row.done_at = now
            row.last_error = reason
        touched = [row for row, _ in retry + failed]
        if touched:
            OptimoveOutbox.objects.bulk_update(
                touched, ["attempts", "last_error", "state", "done_at", "next_attempt_at"]
            )
    return OutboxPushResult(
        done=len(done),
        superseded=len(superseded),
        retrying=len(retry) - gave_up,
        failed=len(failed) + gave_up,
    )


def _sent(
    send: Callable[[OptimoveClient, _Group, list[OptimoveOutbox]], None],
    api: OptimoveClient,
    group: _Group,
    rows: list[OptimoveOutbox],
) -> Exception | None:
    """Sends; returns the error, or None when Optimove took it."""
    try:
        send(api, group, rows)
    except (OptimoveError, ValueError) as exc:
        # ValueError: data the API client refuses before sending it (a key that is not a TemplateID):
        # as final as a 400.
        return exc
    return None


def _send_adds(api: OptimoveClient, group: _Group, rows: list[OptimoveOutbox]) -> None:
    if group.kind == OutboxKind.TEMPLATE:
        api.add_channel_templates(
            channel_id=group.optimove_channel_id,
            templates=[
                ChannelTemplate(template_id=_template_id(row.key), template_name=row.name) for row in rows
            ],
        )
    else:
        api.add_channel_apps(
            channel_id=group.optimove_channel_id,
            apps=[ChannelApp(app_id=row.key, app_name=row.name) for row in rows],
        )


def _send_deletes(api: OptimoveClient, group: _Group, rows: list[OptimoveOutbox]) -> None:
    if group.kind == OutboxKind.TEMPLATE:
        api.delete_channel_templates(
            channel_id=group.optimove_channel_id, template_ids=[_template_id(row.key) for row in rows]
        )
    else:
        api.delete_channel_apps(channel_id=group.optimove_channel_id, app_ids=[row.key for row in rows])


def _template_id(key: str) -> int:
    if not key.isdigit():
        raise ValueError(f"outbox key {key!r} is not a TemplateID")
    return int(key)


def _retry_delay(attempts: int) -> timedelta:
    base = float(settings.OPTIMOVE_SYNC_RETRY_BASE_SECONDS)
    cap = float(settings.OPTIMOVE_SYNC_RETRY_MAX_SECONDS)
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def _error_text(error: Exception) -> str:
    # The API client's messages name the function and the status, never a body or a credential.
    text = str(error) or type(error).__name__
    if isinstance(error, OptimoveAuthError):
        text = f"{text}: check the client's Optimove credentials"
    return text[:_ERROR_MAX_CHARS]


def outbox_group_lock(
    *, client_id: int, optimove_channel_id: int, kind: OutboxKind, wait: bool = False
) -> AbstractContextManager[bool]:
    """The lock on one (client, channel, kind) list; yields whether it was obtained (always with
    `wait`)."""
    return session_lock(_Group(client_id, optimove_channel_id, kind).lock_name, wait=wait)


# ---------------------------------------------------------------------------------------------------
# Reading the state, for the admin
# ---------------------------------------------------------------------------------------------------


def templates_with_sync_state(queryset: QuerySet[MessageTemplate]) -> QuerySet[MessageTemplate]:
    """The templates annotated with their latest outbox row: `sync_state`, `sync_error`,
    `sync_attempts` (all None for a template never pushed)."""
    latest = OptimoveOutbox.objects.filter(
        client_id=OuterRef("channel__client_id"),
        optimove_channel_id=OuterRef("channel__optimove_channel_id"),
        kind=OutboxKind.TEMPLATE,
        key=Cast(OuterRef("template_id"), output_field=CharField()),
    ).order_by("-id")
    return queryset.annotate(
        sync_state=Subquery(latest.values("state")[:1]),
        sync_error=Subquery(latest.values("last_error")[:1]),
        sync_attempts=Subquery(latest.values("attempts")[:1]),
    )


def app_latest_outbox_row(*, app: PushApp) -> OptimoveOutbox | None:
    return (
        OptimoveOutbox.objects.filter(
            client_id=app.channel.client_id,
            optimove_channel_id=app.channel.optimove_channel_id,
            kind=OutboxKind.APP,
            key=app.app_id,
        )
        .order_by("-id")
        .first()
    )


def outbox_state_label(*, state: str | None, attempts: int | None = 0) -> str:
    """How the admin names the latest row's state for a template or app."""
    if state is None:
        return "never pushed"
    if state == OutboxState.DONE:
        return "synced"
    if state == OutboxState.PENDING:
        return "pending (retrying)" if attempts else "pending"
    return str(state)


# ---------------------------------------------------------------------------------------------------
# Reconciling with GetChannelTemplates
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateListChange:
    optimove_channel_id: int
    action: Literal["added", "renamed", "deleted"]
    template_id: int
    name: str  # the name listed now (added, renamed), or the one Optimove had (deleted)
    old_name: str = ""

    def __str__(self) -> str:
        return self.describe()

    def describe(self, *, dry_run: bool = False) -> str:
        """`channel 504: added 14 'Welcome'`; in a dry run `channel 504: would add 14 'Welcome'`."""
        verb = {"added": "add", "renamed": "rename", "deleted": "delete"}[self.action]
        done = f"would {verb}" if dry_run else self.action
        where = f"channel {self.optimove_channel_id}"
        if self.action == "renamed":
            return f"{where}: {done} {self.template_id} '{self.old_name}' -> '{self.name}'"
        return f"{where}: {done} {self.template_id} '{self.name}'"


@dataclass(frozen=True)
class ChannelReconcile:
    optimove_channel_id: int
    listed: int  # our active templates on the channel
    changes: tuple[TemplateListChange, ...] = ()
    error: str = ""
    resolved_rows: int = 0  # outbox rows the reconcile settled


def templates_reconcile(
    *, client: Client, dry_run: bool = False, api: OptimoveClient | None = None
) -> list[ChannelReconcile]:
    """Makes Optimove's template list of each active channel of the client match its active templates.

    Adds what Optimove lacks, renames what it names differently, deletes what it has and we do not.
    Pushes directly (an operator's command), holding each channel's outbox lock meanwhile, and then
    settles that channel's open outbox rows (pending or failed) that were there when it started: the
    list now matches what they asked for. With `dry_run` it only compares. A channel Optimove fails
    on is reported with its error and the others go on. Raises OptimoveError when no API client can
    be made for the client (no credentials).
    """
    api = api or optimove_client_for(client)
    results = []
    for channel in client.channels.filter(is_active=True).order_by("optimove_channel_id"):
        results.append(_channel_reconcile(client, channel, api=api, dry_run=dry_run))
    return results


def _channel_reconcile(
    client: Client, channel: Channel, *, api: OptimoveClient, dry_run: bool
) -> ChannelReconcile:
    channel_id = channel.optimove_channel_id
    with outbox_group_lock(
        client_id=client.pk, optimove_channel_id=channel_id, kind=OutboxKind.TEMPLATE, wait=True
    ):
        group = _Group(client.pk, channel_id, OutboxKind.TEMPLATE)
        # Read before the templates: each of these rows committed with its template change, which the
        # read below therefore sees. Rows committed later are left for the push.
        open_rows = list(
            OptimoveOutbox.objects.filter(
                client_id=group.client_id,
                optimove_channel_id=channel_id,
                kind=group.kind,
                state__in=[OutboxState.PENDING, OutboxState.FAILED],
            ).values_list("pk", flat=True)
        )
        ours = dict(
            MessageTemplate.objects.filter(channel=channel, is_active=True).values_list("template_id", "name")
        )
        try:
            theirs = {
                t.template_id: t.template_name for t in api.get_channel_templates(channel_id=channel_id)
            }
        except OptimoveError as exc:
            return ChannelReconcile(channel_id, len(ours), error=_error_text(exc))
        changes = [
            TemplateListChange(channel_id, "added", template_id, name)
            for template_id, name in sorted(ours.items())
            if template_id not in theirs
        ]
        changes += [
            TemplateListChange(channel_id, "renamed", template_id, name, old_name=theirs[template_id])
            for template_id, name in sorted(ours.items())
            if template_id in theirs and theirs[template_id] != name
        ]
        changes += [
            TemplateListChange(channel_id, "deleted", template_id, name)
            for template_id, name in sorted(theirs.items())
            if template_id not in ours
        ]
        changes.sort(key=lambda change: (change.template_id, change.action))
        if dry_run:
            return ChannelReconcile(channel_id, len(ours), tuple(changes))
        upserts = [
            ChannelTemplate(template_id=c.template_id, template_name=c.name)
            for c in changes
            if c.action != "deleted"
        ]
        deletes = [c.template_id for c in changes if c.action == "deleted"]
        try:
            if upserts:
                api.add_channel_templates(channel_id=channel_id, templates=upserts)
            if deletes:
                api.delete_channel_templates(channel_id=channel_id, template_ids=deletes)
        except OptimoveError as exc:
            # Some calls may have gone through: the next reconcile sees what remains to do.
            return ChannelReconcile(channel_id, len(ours), tuple(changes), error=_error_text(exc))
        resolved = outbox_resolve(row_ids=open_rows)
    return ChannelReconcile(channel_id, len(ours), tuple(changes), resolved_rows=resolved)


def outbox_resolve(*, row_ids: list[int], now: datetime | None = None) -> int:
    """Marks open rows done because the list they belong to was made to match another way."""
    if not row_ids:
        return 0
    now = now or timezone.now()
    return OptimoveOutbox.objects.filter(
        pk__in=row_ids, state__in=[OutboxState.PENDING, OutboxState.FAILED]
    ).update(
        state=OutboxState.DONE,
        done_at=now,
        next_attempt_at=None,
        last_error=Case(
            When(last_error="", then=Value("")),
            default=Left(Concat(Value("settled by optimove_sync_templates; was: "), F("last_error")), 500),
        ),
    )
