"""Campaign runs from notification to the last message.

Every step can run twice. Runs are unique per client, channel and campaign; messages are unique per
run and idempotency key; every status move is a conditional UPDATE on the rows' current status, so a
redelivered task finds its rows already moved and does nothing.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Field, Q
from django.utils import timezone

from apps.campaigns.audience import AudiencePage, AudienceRow
from apps.campaigns.keys import realtime_message_key, scheduled_message_key
from apps.campaigns.models import (
    ACTIVE_RUN_STATES,
    CampaignCancellation,
    CampaignHold,
    CampaignRun,
    Message,
    MessageStatus,
    RunKind,
    RunState,
)
from apps.clients.models import Channel, Client
from apps.core.rows import instance_from_row, model_fields, select_list

if TYPE_CHECKING:
    from apps.channels.base import OutboundMessage, SendResult

logger = logging.getLogger(__name__)

IN_FLIGHT = (MessageStatus.PENDING, MessageStatus.QUEUED, MessageStatus.SENDING)


# Starting, holding and cancelling
# ------------------------------------------------------------------------------


def campaign_run_start(
    *, client: Client, channel: Channel, campaign_id: int, event_type_id: int | None = None
) -> tuple[CampaignRun, bool]:
    """Creates the run for this campaign on this channel, once. A repeat (or a 1 and a 13 for the same
    campaign) finds the existing run and changes nothing. Paging is enqueued after commit."""
    now = timezone.now()
    hold = CampaignHold.objects.filter(client=client, campaign_id=campaign_id, hold_until__gt=now).first()
    cancelled = CampaignCancellation.objects.filter(client=client, campaign_id=campaign_id).exists()
    if cancelled:
        state, hold_until = RunState.CANCELLED, None
    elif hold:
        state, hold_until = RunState.HELD, hold.hold_until
    else:
        state, hold_until = RunState.PAGING, None
    with transaction.atomic():
        run, created = CampaignRun.objects.get_or_create(
            client=client,
            channel=channel,
            campaign_id=campaign_id,
            defaults={
                "kind": RunKind.SCHEDULED,
                "state": state,
                "hold_until": hold_until,
                "started_by_event_type": event_type_id,
                "last_progress_at": now,
                "cancelled_at": now if cancelled else None,
            },
        )
        if created and run.state == RunState.PAGING:
            transaction.on_commit(lambda: _enqueue_fetch_page(run.pk))
    if created:
        logger.info(
            "campaign run created",
            extra={
                "run_id": run.pk,
                "campaign_id": campaign_id,
                "channel_id": channel.optimove_channel_id,
                "state": run.state,
            },
        )
    return run, created


def campaign_hold(*, client: Client, campaign_id: int, hold_until: datetime) -> list[CampaignRun]:
    """Holds the campaign until `hold_until`. The hold names no channel, so a run is made (held) for each
    of the client's scheduled channels; one without customers for the campaign completes empty."""
    with transaction.atomic():
        CampaignHold.objects.update_or_create(
            client=client, campaign_id=campaign_id, defaults={"hold_until": hold_until}
        )
        runs = []
        for channel in client.channels.filter(is_active=True, is_realtime=False):
            run, created = CampaignRun.objects.get_or_create(
                client=client,
                channel=channel,
                campaign_id=campaign_id,
                defaults={"state": RunState.HELD, "hold_until": hold_until, "started_by_event_type": 5},
            )
            if not created and run.state in (
                RunState.HELD,
                RunState.PAGING,
                RunState.SENDING,
                RunState.PAUSED,
            ):
                # A hold arriving after the run started still holds its unsent messages back.
                CampaignRun.objects.filter(pk=run.pk).update(hold_until=hold_until)
            runs.append(run)
    return runs


@dataclass
class CancelOutcome:
    runs: int = 0
    messages_cancelled: int = 0


def campaign_cancel(*, client: Client, campaign_id: int) -> CancelOutcome:
    """Cancels the campaign on every channel of the client: pending and queued messages become
    cancelled (messages already being handed to a provider finish). A run that starts later starts
    cancelled. The customers Optimove lists as cancelled are recorded by a task after commit."""
    outcome = CancelOutcome()
    now = timezone.now()
    with transaction.atomic():
        cancellation, _ = CampaignCancellation.objects.get_or_create(client=client, campaign_id=campaign_id)
        run_ids = list(
            CampaignRun.objects.select_for_update()
            .filter(client=client, campaign_id=campaign_id)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        outcome.runs = len(run_ids)
        if run_ids:
            outcome.messages_cancelled = _runs_cancel_locked(
                run_ids, now, reason="campaign cancelled by Optimove"
            )
        transaction.on_commit(lambda: _enqueue("campaigns.record_cancelled_customers", cancellation.pk))
    return outcome


def _runs_cancel_locked(run_ids: list[int], now: datetime, *, reason: str) -> int:
    """Cancels the runs (their rows locked by the caller) and their pending and queued messages, all in
    one statement: a statement per run would lock one run's rows before the next's, out of id order."""
    CampaignRun.objects.filter(pk__in=run_ids).exclude(state=RunState.CANCELLED).update(
        state=RunState.CANCELLED, cancelled_at=now, resume_state=""
    )
    return _move(
        run_ids=run_ids,
        from_statuses=(MessageStatus.PENDING, MessageStatus.QUEUED),
        to_status=MessageStatus.CANCELLED,
        now=now,
        reason=reason,
    )


# Real-time triggers
# ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RealtimeTrigger:
    """One customer meeting a real-time trigger (EventTypeID 11), as the listener parsed it."""

    campaign_id: int
    template_id: int
    customer_id: str
    timestamp: datetime
    attributes: dict[str, str]  # personalization, trigger-event parameters and promo_code


@dataclass(frozen=True, slots=True)
class TriggerOutcome:
    run_id: int
    message_id: int | None  # None: nothing stored (a cancelled campaign, or a repeat)
    reason: str
    acted: bool = True  # False: the trigger was refused (its campaign was cancelled)
    receipt_id: int | None = None  # the receipt's row, when one was asked for


@dataclass(frozen=True, slots=True)
class TriggerReceipt:
    """A row the caller keeps of the trigger (the listener's record of the notification), written by the
    same statement as the trigger's message: at hundreds of triggers a second, every round trip to
    PostgreSQL waits its turn for a core, so one statement (autocommitted) answers Optimove sooner than a
    transaction of several. `table` has the columns in `values` and also `run_id`, `acted` and
    `outcome`, which the statement fills in: the run, whether the trigger was acted on, and the reason
    (prefixed by `refusal_prefix` when it was not)."""

    table: str
    values: dict[str, Any]
    refusal_prefix: str = ""


TRIGGER_CANCELLED = "the campaign was cancelled"
TRIGGER_REPEAT = "repeat: this trigger was received before"
TRIGGER_QUEUED = "message queued"
TRIGGER_STORED = "message stored; the run is "  # + the run's state


def realtime_trigger_receive(
    *, client: Client, channel: Channel, trigger: RealtimeTrigger, receipt: TriggerReceipt | None = None
) -> TriggerOutcome:
    """Stores the trigger as one message of the campaign's long-lived real-time run and, after commit,
    rings the run's `realtime` task (no dispatcher tick in between). A repeat of the same notification
    finds its message and changes nothing. Its `due_at` is set a little later, so the dispatcher rescues
    the message if that task is lost, and only then. Outside a transaction the message (and the
    receipt) are one autocommitted statement; the campaign's first trigger also makes its run."""
    now = timezone.now()
    key = realtime_message_key(
        client_id=client.pk,
        channel_id=channel.pk,
        campaign_id=trigger.campaign_id,
        customer_id=trigger.customer_id,
        template_id=trigger.template_id,
        timestamp=trigger.timestamp.isoformat(),
    )
    insert = partial(
        _realtime_message_insert,
        client=client,
        channel=channel,
        key=key,
        trigger=trigger,
        now=now,
        receipt=receipt,
    )
    stored = insert()
    if stored is None:  # the campaign's first trigger: its run is made once, then the trigger stored
        CampaignRun.objects.get_or_create(
            client=client,
            channel=channel,
            campaign_id=trigger.campaign_id,
            defaults={
                "kind": RunKind.REALTIME,
                "state": RunState.SENDING,
                "paging_done": True,
                "started_by_event_type": 11,
                "last_progress_at": now,
            },
        )
        stored = insert()
        assert stored is not None, "the run exists now"
    run_id, state, message_id, receipt_id = stored
    if state == RunState.CANCELLED:
        return TriggerOutcome(run_id, None, TRIGGER_CANCELLED, acted=False, receipt_id=receipt_id)
    if message_id is None:
        return TriggerOutcome(run_id, None, TRIGGER_REPEAT, receipt_id=receipt_id)
    if state == RunState.SENDING:
        # Straight away when the statement was its own transaction.
        transaction.on_commit(lambda: realtime_run_ring(run_id=run_id, message_id=message_id))
        return TriggerOutcome(run_id, message_id, TRIGGER_QUEUED, receipt_id=receipt_id)
    return TriggerOutcome(run_id, message_id, f"{TRIGGER_STORED}{state}", receipt_id=receipt_id)


# How long one realtime task goes on taking its run's triggers as they arrive before it hands over to a
# new task at the back of the queue, so that busy campaigns do not keep the `realtime` worker processes
# from the other campaigns' triggers, nor from the dispatcher and the sweeper, which share that queue.
# At 200 triggers a second that is still one task per hundred triggers.
REALTIME_TASK_SECONDS = 0.5


def realtime_bell_key(run_id: int) -> str:
    return f"campaigns:realtime-bell:{run_id}"


def realtime_run_ring(*, run_id: int, message_id: int) -> None:
    """Asks for one `realtime` task for the run unless one is already waiting: that task will take this
    message too, since it sends every waiting trigger of its run. At hundreds of triggers a second this
    turns a task per trigger into a task per batch. The bell expires, so a lost task holds nothing up for
    long; the dispatcher's rescue covers the message either way."""
    from apps.core.redis import get_redis

    try:
        rung = get_redis().set(
            realtime_bell_key(run_id), message_id, nx=True, px=int(settings.REALTIME_BELL_SECONDS * 1000)
        )
    except Exception:  # Redis hiccup: one task per trigger is still correct, only dearer
        logger.warning("realtime bell unavailable; enqueuing the trigger's task directly", exc_info=True)
        rung = True
    if rung:
        _enqueue("campaigns.send_realtime", message_id, queue="realtime")


def realtime_messages_send(*, message_id: int) -> BatchOutcome:
    """Sends a trigger's message with every new trigger of its run, in chunks of SEND_CHUNK_SIZE over
    one provider connection each, and goes on with the triggers arriving meanwhile while the run's bell
    still rings: they ring no task of their own, so at hundreds a second a task's fixed costs are paid
    once for many triggers. It first waits until REALTIME_GATHER_SECONDS after the trigger arrived,
    then sends what has come, waits that long again and sends what came meanwhile, until a wait brings
    nothing or REALTIME_TASK_SECONDS have passed. Then it silences the bell and claims once more: every
    trigger committed before that moment is in that claim or an earlier one, and every one committed
    after it rings a new task. A paused or cancelled run's triggers stay pending (resume releases them)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT run_id, send_at FROM campaigns_message WHERE id = %s", [message_id])
        row = cursor.fetchone()
    if row is None:
        return BatchOutcome()
    run_id, rang_at = row
    # Let the triggers arriving just behind this one join its batch: they find the bell still ringing
    # and ring no task of their own. A task that waited in the queue that long already goes at once.
    gather = (rang_at - timezone.now()).total_seconds() + settings.REALTIME_GATHER_SECONDS
    if gather > 0:
        time.sleep(min(gather, settings.REALTIME_GATHER_SECONDS))
    deadline = time.monotonic() + REALTIME_TASK_SECONDS
    total, ringing = BatchOutcome(), True
    while True:
        claimed = _claim_new_triggers(run_id, limit=settings.SEND_CHUNK_SIZE)
        if claimed:
            total.add(_claimed_send(claimed, sleep=time.sleep, refill=False))
        if ringing and claimed and time.monotonic() < deadline:
            if len(claimed) < settings.SEND_CHUNK_SIZE:  # not a backlog: let the next triggers gather
                time.sleep(settings.REALTIME_GATHER_SECONDS)
            continue
        if not ringing:
            break
        _realtime_bell_silence(run_id)
        ringing = False  # the last claim comes next
    if len(claimed) == settings.SEND_CHUNK_SIZE:  # a backlog left: another task goes on with it
        realtime_run_ring(run_id=run_id, message_id=message_id)
    return total


def _realtime_bell_silence(run_id: int) -> None:
    from apps.core.redis import get_redis

    try:
        get_redis().delete(realtime_bell_key(run_id))
    except Exception:  # the bell expires by itself; triggers meanwhile are rescued by the dispatcher
        logger.warning("could not silence the realtime bell", exc_info=True)


_REALTIME_INSERT = """
WITH run AS (
    SELECT id, state FROM campaigns_campaignrun
     WHERE client_id = %(client_id)s AND channel_id = %(channel_id)s AND campaign_id = %(campaign_id)s
),
inserted AS (
    INSERT INTO campaigns_message
           (run_id, customer_id, template_id, idempotency_key, send_at, due_at, attributes,
            status, attempts, provider_message_id, error, history, delivery_state)
    SELECT run.id, %(customer_id)s, %(template_id)s, %(key)s, %(now)s, %(due_at)s, %(attributes)s,
           'pending', 0, '', '', %(history)s, ''
      FROM run
     WHERE run.state <> 'cancelled'
    ON CONFLICT ON CONSTRAINT message_unique_per_run DO NOTHING
    RETURNING id
){receipt_cte}
SELECT run.id, run.state, (SELECT id FROM inserted), {receipt_id} FROM run
"""
# The receipt's outcome, as TriggerOutcome gives it (realtime_trigger_receive).
_RECEIPT_CTE = """,
receipt AS (
    INSERT INTO {table} ({columns}, run_id, acted, outcome)
    SELECT {values}, run.id, run.state <> 'cancelled',
           CASE WHEN run.state = 'cancelled' THEN %(r_refused)s
                WHEN NOT EXISTS (SELECT FROM inserted) THEN %(r_repeat)s
                WHEN run.state = 'sending' THEN %(r_queued)s
                ELSE %(r_stored)s || run.state END
      FROM run
    RETURNING id
)"""


def _realtime_message_insert(
    *,
    client: Client,
    channel: Channel,
    key: str,
    trigger: RealtimeTrigger,
    now: datetime,
    receipt: TriggerReceipt | None,
) -> tuple[int, str, int | None, int | None] | None:
    """One statement (the listener pays per notification, at hundreds a second): finds the campaign's
    real-time run, inserts the trigger's message unless the run was cancelled or the same trigger was
    stored before, and the receipt. (run id, run state, new message id or None, receipt id or None), or
    None when the run does not exist (nothing written)."""
    history = [{"status": MessageStatus.PENDING.value, "at": now.isoformat()}]
    params: dict[str, Any] = {
        "client_id": client.pk,
        "channel_id": channel.pk,
        "campaign_id": trigger.campaign_id,
        "customer_id": trigger.customer_id,
        "template_id": trigger.template_id,
        "key": key,
        "now": now,
        "due_at": now + timedelta(seconds=settings.REALTIME_RESCUE_SECONDS),
        "attributes": json.dumps(trigger.attributes),
        "history": json.dumps(history),
    }
    receipt_cte, receipt_id = "", "NULL"
    if receipt is not None:
        quote = connection.ops.quote_name
        names = [f"v{i}" for i in range(len(receipt.values))]
        params.update(zip(names, receipt.values.values(), strict=True))
        params.update(
            r_refused=receipt.refusal_prefix + TRIGGER_CANCELLED,
            r_repeat=TRIGGER_REPEAT,
            r_queued=TRIGGER_QUEUED,
            r_stored=TRIGGER_STORED,
        )
        receipt_cte = _RECEIPT_CTE.format(
            table=quote(receipt.table),
            columns=", ".join(quote(column) for column in receipt.values),
            values=", ".join(f"%({name})s" for name in names),
        )
        receipt_id = "(SELECT id FROM receipt)"
    with connection.cursor() as cursor:
        cursor.execute(_REALTIME_INSERT.format(receipt_cte=receipt_cte, receipt_id=receipt_id), params)
        row = cursor.fetchone()
    if row is None:
        return None
    return (
        int(row[0]),
        str(row[1]),
        None if row[2] is None else int(row[2]),
        None if row[3] is None else int(row[3]),
    )


# Paging
# ------------------------------------------------------------------------------

AudienceFetcher = Callable[[CampaignRun, int, int], AudiencePage]


@dataclass
class PageOutcome:
    stored: int = 0
    done: bool = False
    discarded: bool = False  # another task stored this page first


def campaign_run_fetch_page(
    *, run_id: int, fetch: AudienceFetcher, page_size: int | None = None
) -> PageOutcome:
    """Fetches the page at the run's cursor and stores it, advancing the cursor in the same transaction.
    One page per call; the caller enqueues the next page when `done` is False."""
    page_size = page_size or settings.OPTIMOVE_PAGE_SIZE
    run = CampaignRun.objects.select_related("client", "channel").get(pk=run_id)
    if run.state != RunState.PAGING or run.paging_done:
        return PageOutcome(done=True)
    if not run.attributes and run.cursor_skip == 0:
        run.attributes = audience_attribute_names(channel=run.channel)
        CampaignRun.objects.filter(pk=run.pk, cursor_skip=0).update(attributes=run.attributes)
    skip = run.cursor_skip
    page = fetch(run, skip, page_size)
    now = timezone.now()
    with transaction.atomic():
        locked = CampaignRun.objects.select_for_update().get(pk=run_id)
        if locked.cursor_skip != skip or locked.paging_done or locked.state != RunState.PAGING:
            return PageOutcome(discarded=True, done=locked.paging_done or locked.state != RunState.PAGING)
        if not page.rows:
            locked.paging_done = True
            locked.state = RunState.SENDING
            locked.last_progress_at = now
            locked.paging_attempts = 0
            locked.save(
                update_fields=["paging_done", "state", "last_progress_at", "paging_attempts", "updated_at"]
            )
            return PageOutcome(done=True)
        # Repeats (a page stored before a crash, or a customer listed twice) are skipped by the unique
        # key, and only what is new counts, so the run's totals stay exact.
        stored = _page_store(run=run, rows=page.rows, now=now)
        locked.cursor_skip = skip + len(page.rows)
        locked.pages_fetched += 1
        locked.fetched_count += stored
        locked.last_progress_at = now
        locked.paging_attempts = 0
        locked.save(
            update_fields=[
                "cursor_skip",
                "pages_fetched",
                "fetched_count",
                "last_progress_at",
                "paging_attempts",
                "updated_at",
            ]
        )
        transaction.on_commit(lambda: _enqueue_fetch_page(run_id))
        due_by = now + timedelta(seconds=settings.DISPATCH_LEAD_SECONDS)
        if any((row.send_at or now) <= due_by for row in page.rows):
            # Some are due already: release them from here rather than wait for the next tick, or for a
            # dispatcher task queued behind other pages.
            transaction.on_commit(_dispatch_now)
    return PageOutcome(stored=len(page.rows))


# A page arrives as up to OPTIMOVE_PAGE_SIZE (10,000) rows. They are copied into a temporary table and
# inserted from there in one statement: COPY takes a fraction of the CPU of the ORM's bulk_create, and
# the INSERT keeps ON CONFLICT, which COPY lacks. The table lives for the database session; it is
# emptied before each page (a test's never-committed transaction stores several) and at each commit.
_PAGE_TABLE = "campaigns_page_in"
_PAGE_TABLE_CREATE = f"""
    CREATE TEMPORARY TABLE IF NOT EXISTS {_PAGE_TABLE} (
        customer_id text NOT NULL,
        template_id bigint NOT NULL,
        idempotency_key text NOT NULL,
        send_at timestamptz NOT NULL,
        attributes jsonb NOT NULL
    ) ON COMMIT DELETE ROWS
"""
_PAGE_INSERT = f"""
    INSERT INTO campaigns_message (
        run_id, customer_id, template_id, idempotency_key, send_at, due_at, attributes, status, attempts,
        provider_message_id, error, history, delivery_state
    )
    SELECT %s, customer_id, template_id, idempotency_key, send_at, send_at, attributes, 'pending', 0, '',
           '', jsonb_build_array(jsonb_build_object('status', 'pending', 'at', %s::text)), ''
      FROM {_PAGE_TABLE}
    ON CONFLICT DO NOTHING
"""  # noqa: S608 (a constant table name)


def _page_store(*, run: CampaignRun, rows: Sequence[AudienceRow], now: datetime) -> int:
    """Stores a page's rows as pending messages of the run, inside the caller's transaction; returns how
    many were new."""
    assert connection.in_atomic_block, "the temporary table is emptied at each commit"
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    with connection.cursor() as cursor:
        cursor.execute(_PAGE_TABLE_CREATE)
        cursor.execute(f"TRUNCATE {_PAGE_TABLE}")
        with cursor.cursor.copy(
            f"COPY {_PAGE_TABLE} (customer_id, template_id, idempotency_key, send_at, attributes) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(
                    (
                        row.customer_id,
                        row.template_id,
                        scheduled_message_key(
                            client_id=run.client_id,
                            channel_id=run.channel_id,
                            campaign_id=run.campaign_id,
                            customer_id=row.customer_id,
                        ),
                        row.send_at or now,
                        dumps(row.attributes),
                    )
                )
        cursor.execute(_PAGE_INSERT, [run.pk, now.isoformat()])
        return int(cursor.rowcount)


def campaign_run_paging_failed(*, run_id: int, reason: str) -> None:
    """Paging gave up (a terminal error, or retries exhausted): the run fails with a readable reason.
    Messages already stored still go out."""
    CampaignRun.objects.filter(pk=run_id, state=RunState.PAGING).update(
        state=RunState.FAILED, error=reason[:2000], paging_done=True, last_progress_at=timezone.now()
    )


def audience_attribute_names(*, channel: Channel) -> list[str]:
    """The attributes to request: those the channel's templates use, plus the address attribute."""
    from apps.message_templates.models import MessageTemplate
    from apps.message_templates.rendering import template_attribute_names

    names: set[str] = set()
    for template in MessageTemplate.objects.filter(channel=channel, is_active=True):
        names |= template_attribute_names(template=template)
    if channel.address_attribute:
        names.add(channel.address_attribute)
    return sorted(names)


# Dispatching due messages, fairly
# ------------------------------------------------------------------------------


def _sends_backlog() -> int:
    """How many send batches wait in the broker's `sends` queue (Redis list of that name)."""
    from apps.core.redis import get_redis

    try:
        return int(get_redis().llen("sends"))
    except Exception:  # the broker is down: release nothing this tick, the sweeper catches up
        logger.warning("dispatch: cannot read the sends queue length")
        return 1 << 30


def messages_dispatch(*, now: datetime | None = None, budget: int | None = None) -> int:
    """Releases due messages to the `sends` queue in batches, one batch per run in turn, clients taking
    turns, and only as many batches as keep the queue short. A big campaign thus shares the workers with
    every other run instead of filling the queue ahead of them. Returns the number of batches released."""
    now = now or timezone.now()
    if budget is None:
        budget = settings.DISPATCH_MAX_QUEUED_BATCHES - _sends_backlog()
    if budget <= 0:
        return 0
    runs = list(
        CampaignRun.objects.filter(state__in=ACTIVE_RUN_STATES)
        .filter(Q(hold_until__isnull=True) | Q(hold_until__lte=now))
        .order_by("last_dispatched_at", "pk")
        .values_list("pk", "client_id", "kind")
    )
    by_client: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for run_id, client_id, kind in runs:
        by_client[client_id].append((run_id, kind))
    released = 0
    batch_size = settings.SEND_BATCH_SIZE
    # Released a little ahead of their send time, so a send task has rendered its batch and opened its
    # connection by then; it hands each message over no earlier than its send time.
    due_by = now + timedelta(seconds=settings.DISPATCH_LEAD_SECONDS)
    while budget > 0 and by_client:
        for client_id in list(by_client):
            if budget <= 0:
                break
            queue = by_client[client_id]
            run_id, kind = queue.pop(0)
            ids = _claim_due(run_id=run_id, now=now, limit=batch_size, due_by=due_by)
            if ids:
                _enqueue_send_batch(ids, realtime=kind == RunKind.REALTIME)
                _mark_dispatched(run_id, now)
                released += 1
                budget -= 1
                if len(ids) == batch_size:
                    queue.append((run_id, kind))  # more may be due: back of this client's line
            if not queue:
                del by_client[client_id]
    return released


def _mark_dispatched(run_id: int, now: datetime) -> None:
    """Moves the run to the back of the dispatcher's line, unless its row is locked: a page being stored
    holds that lock for seconds, and the dispatcher (on the realtime queue) must never wait for it. A
    skipped mark only costs that run a little of its turn."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_campaignrun SET last_dispatched_at = %s
             WHERE id = (SELECT id FROM campaigns_campaignrun WHERE id = %s FOR UPDATE SKIP LOCKED)
            """,
            [now, run_id],
        )


def _claim_due(*, run_id: int, now: datetime, limit: int, due_by: datetime | None = None) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH due AS (
                SELECT id FROM campaigns_message
                WHERE run_id = %s AND status = 'pending' AND due_at <= %s
                ORDER BY due_at, id
                LIMIT %s
                FOR UPDATE SKIP LOCKED
            )
            UPDATE campaigns_message m
               SET status = 'queued', queued_at = %s
              FROM due WHERE m.id = due.id
            RETURNING m.id
            """,
            [run_id, due_by or now, limit, now],
        )
        return sorted(row[0] for row in cursor.fetchall())


# Sending a batch
# ------------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    released: int = 0  # claimed ahead of the send time, given back because the run stopped meanwhile
    reasons: dict[int, str] = field(default_factory=dict)

    def add(self, other: BatchOutcome) -> None:
        for name in ("claimed", "sent", "failed", "retried", "skipped", "released"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reasons.update(other.reasons)


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    run_id: int
    customer_id: str
    template_id: int
    idempotency_key: str
    attributes: dict[str, str]
    send_at: datetime
    due_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What became of one claimed message: decided before sending (skipped, failed) or by the provider."""

    message_id: int
    status: str  # a MessageStatus, or RETRY
    reason: str = ""
    provider_message_id: str = ""
    retry_after: float | None = None

    RETRY = "retry"

    @classmethod
    def from_result(cls, result: SendResult) -> _Outcome:
        from apps.channels.base import SendStatus

        status = {SendStatus.SENT: MessageStatus.SENT, SendStatus.FAILED: MessageStatus.FAILED}.get(
            result.status, cls.RETRY
        )
        return cls(result.message_id, status, result.error, result.provider_message_id, result.retry_after)


def message_batch_send(
    *,
    message_ids: Sequence[int],
    sleep: Callable[[float], None] = time.sleep,
    claim_from: MessageStatus = MessageStatus.QUEUED,
) -> BatchOutcome:
    """Claims the batch (`queued -> sending`), renders and sends it over the channel's provider, and
    records each outcome. Rows another task already moved are left alone. A message released ahead of
    its send time is handed over at that time, unless its run was paused or cancelled meanwhile."""
    claimed = _claim_for_sending(message_ids, claim_from=claim_from)
    return _claimed_send(claimed, sleep=sleep, refill=claim_from == MessageStatus.QUEUED)


def _claimed_send(claimed: list[_Claimed], *, sleep: Callable[[float], None], refill: bool) -> BatchOutcome:
    """Renders, sends and records a claimed batch (all of one run); `refill`: ask the dispatcher for
    more work afterwards (a slot of the `sends` queue is free)."""
    from apps.channels.base import OutboundMessage
    from apps.delivery.tracking import delivery_tracking_apply
    from apps.message_templates.rendering import TemplateRenderError, template_render
    from apps.message_templates.selectors import template_map_for_channel
    from apps.subscriptions.selectors import opted_out_customers
    from apps.subscriptions.unsubscribe import MERGE_NAME, unsubscribe_footer_add, unsubscribe_links_for

    outcome = BatchOutcome()
    outcome.claimed = len(claimed)
    if not claimed:
        return outcome
    run = _run_for_sending(claimed[0].run_id)
    channel = run.channel
    now = timezone.now()
    max_lateness = timedelta(seconds=_max_lateness_seconds(channel))
    templates = template_map_for_channel(channel=channel, template_ids={c.template_id for c in claimed})
    opted_out = opted_out_customers(channel_id=channel.pk, customer_ids=(c.customer_id for c in claimed))

    outcomes: list[_Outcome] = []
    outbound: list[OutboundMessage] = []
    for message in claimed:
        if message.customer_id in opted_out:
            outcomes.append(_Outcome(message.id, MessageStatus.SKIPPED, "opted out of this channel"))
            continue
        if now - message.send_at > max_lateness:
            outcomes.append(
                _Outcome(message.id, MessageStatus.SKIPPED, "later than the channel's maximum lateness")
            )
            continue
        template = templates.get(message.template_id)
        if template is None:
            outcomes.append(
                _Outcome(message.id, MessageStatus.FAILED, f"template {message.template_id} not found")
            )
            continue
        address = message.attributes.get(channel.address_attribute, "") if channel.address_attribute else ""
        if channel.address_attribute and not address:
            reason = f"no address in attribute {channel.address_attribute}"
            outcomes.append(_Outcome(message.id, MessageStatus.FAILED, reason))
            continue
        extra = {
            "customer_id": message.customer_id,
            "campaign_id": run.campaign_id,
            "template_id": message.template_id,
        }
        # Email only: the unsubscribe link as a merge value, and in each part that does not use it.
        unsubscribe = unsubscribe_links_for(
            channel=channel, customer_id=message.customer_id, message_id=message.id
        )
        if unsubscribe is not None:
            extra[MERGE_NAME] = unsubscribe.page_url
        try:
            content = template_render(template=template, attributes=message.attributes, extra=extra)
        except TemplateRenderError as exc:
            outcomes.append(_Outcome(message.id, MessageStatus.FAILED, f"render: {exc}"))
            continue
        if unsubscribe is not None:
            content = unsubscribe_footer_add(content=content, links=unsubscribe)
        outbound.append(
            OutboundMessage(
                message_id=message.id,
                idempotency_key=message.idempotency_key,
                to=address,
                content=content,
                customer_id=message.customer_id,
                metadata={
                    "campaign_id": str(run.campaign_id),
                    "channel_id": str(channel.optimove_channel_id),
                    "template_id": str(message.template_id),
                },
                list_unsubscribe_url=unsubscribe.one_click_url if unsubscribe is not None else "",
            )
        )
    if outbound:
        outbound = [delivery_tracking_apply(channel=channel, message=m) for m in outbound]
        # A first attempt goes at its send time; a retry no earlier than its backoff allows.
        due = {c.id: c.send_at if c.attempts <= 1 else c.due_at for c in claimed}
        sent, unsent = _send_over_provider(
            channel, outbound, due=due, run_state=lambda: _run_state(run.pk), sleep=sleep
        )
        outcomes.extend(sent)
        if unsent:
            outcome.released += _release_unsent(run.pk, unsent)
    _record_outcomes(outcomes, attempts={c.id: c.attempts for c in claimed}, outcome=outcome)
    # A real-time run never completes: skip the in-flight query on the trigger path.
    completed = run.kind == RunKind.SCHEDULED and run_complete_if_done(run_id=run.pk)
    if not completed and refill:
        dispatch_soon()  # a worker slot is free again: refill the queue now rather than at the next tick
    return outcome


def _send_over_provider(
    channel: Channel,
    outbound: list[OutboundMessage],
    *,
    due: dict[int, datetime],
    run_state: Callable[[], str],
    sleep: Callable[[float], None],
) -> tuple[list[_Outcome], list[int]]:
    """Hands the messages (in order of due time) to the channel's provider over one connection, paced by
    the channel's shared rate limit, each chunk no earlier than the latest due time in it. Returns the
    outcomes, and the messages not handed over because the run stopped while the batch waited.

    A channel whose provider is misconfigured fails its messages with the reason, which names the
    setting (never a secret's value); after a fix, the admin retries them."""
    from apps.channels.base import ChannelConfigError
    from apps.channels.ratelimit import rate_limiter_for
    from apps.channels.registry import backend_for
    from apps.metrics.recorders import provider_batch_send

    try:
        backend = backend_for(channel)
    except ChannelConfigError as exc:
        return [
            _Outcome(m.message_id, MessageStatus.FAILED, f"channel configuration: {exc}") for m in outbound
        ], []
    limiter = rate_limiter_for(channel)
    chunk_size = settings.SEND_CHUNK_SIZE
    if limiter is not None:
        # Never hand the provider more in one go than the channel may send in a second.
        chunk_size = max(1, min(chunk_size, limiter.max_batch))
    outcomes: list[_Outcome] = []
    with backend:
        for start in range(0, len(outbound), chunk_size):
            chunk = outbound[start : start + chunk_size]
            # Never longer than the dispatcher's lead: a worker slot is not for parking messages.
            wait = min(
                (max(due[m.message_id] for m in chunk) - timezone.now()).total_seconds(),
                settings.DISPATCH_LEAD_SECONDS,
            )
            if wait > 0:
                sleep(wait)
                if run_state() not in ACTIVE_RUN_STATES:
                    return outcomes, [m.message_id for m in outbound[start:]]
            if limiter is not None:
                limiter.acquire(len(chunk))
            outcomes.extend(map(_Outcome.from_result, provider_batch_send(backend, chunk, channel=channel)))
    return outcomes, []


def _run_state(run_id: int) -> str:
    return CampaignRun.objects.filter(pk=run_id).values_list("state", flat=True).first() or ""


def _release_unsent(run_id: int, message_ids: list[int]) -> int:
    """Messages claimed ahead of their send time whose run was paused or cancelled before it came: a
    cancelled run's become cancelled, a paused run's go back to pending (the claim's attempt undone)."""
    now = timezone.now()
    cancelled = _run_state(run_id) == RunState.CANCELLED
    status, reason = (
        (MessageStatus.CANCELLED, "run cancelled before the send time")
        if cancelled
        else (MessageStatus.PENDING, "run paused before the send time")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE campaigns_message m
               SET status = %s, queued_at = NULL, claimed_at = NULL, attempts = GREATEST(attempts - 1, 0),
                   history = m.history || jsonb_build_array(
                       jsonb_build_object('status', %s::text, 'at', %s::text, 'reason', %s::text))
             WHERE {_SENDING_LOCKED}
            """,  # noqa: S608 (a constant)
            [status, status, now.isoformat(), reason, message_ids, MessageStatus.SENDING.value],
        )
        return int(cursor.rowcount)


def _max_lateness_seconds(channel: Channel) -> int:
    return int(channel.max_lateness_seconds or settings.MESSAGE_MAX_LATENESS_SECONDS)


@cache
def _run_for_sending_query() -> tuple[str, list[list[Field[Any, Any]]]]:
    """The run, its channel (with the provider's secrets) and its client (without the Optimove
    credentials, which a send never reads) in one plain query (apps.core.rows)."""
    from apps.clients.fields import EncryptedJSONField, EncryptedTextField

    parts = [
        model_fields(CampaignRun),
        model_fields(Channel),
        model_fields(Client, skip=(EncryptedTextField, EncryptedJSONField)),
    ]
    sql = (
        f"SELECT {select_list(parts[0], 'r')}, {select_list(parts[1], 'ch')}, {select_list(parts[2], 'c')} "  # noqa: S608 (names from the models)
        f"FROM {CampaignRun._meta.db_table} r "
        f"JOIN {Channel._meta.db_table} ch ON ch.id = r.channel_id "
        f"JOIN {Client._meta.db_table} c ON c.id = r.client_id WHERE r.id = %s"
    )
    return sql, parts


def _run_for_sending(run_id: int) -> CampaignRun:
    """The run of a claimed batch, with `run.channel`, `run.client` and `run.channel.client` loaded."""
    sql, (run_fields, channel_fields, client_fields) = _run_for_sending_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_id])
        row = cursor.fetchone()
    if row is None:
        raise CampaignRun.DoesNotExist(f"run {run_id}")
    split = len(run_fields), len(run_fields) + len(channel_fields)
    run = instance_from_row(CampaignRun, run_fields, row[: split[0]])
    channel = instance_from_row(Channel, channel_fields, row[split[0] : split[1]])
    client = instance_from_row(Client, client_fields, row[split[1] :])
    channel.client = client
    run.channel, run.client = channel, client
    return run


# Statements that move rows found by their ids check the status as `(status || '') = ...`, which no
# index can serve, so that PostgreSQL always finds the rows by primary key. Written plainly, the check let
# the planner scan a partial index of every row in that status instead (message_in_flight,
# message_pending_due_id), testing each against the batch's ids: statistics taken before a campaign's
# rows were queued say almost none are, so that scan looks free. At 60,000 queued rows a send batch's
# claim then took seconds of CPU, and the updates waiting behind its row locks held up real-time sends
# (docs/BENCHMARKS.md, 2026-12-06).
#
# Those that may wait for a row another session holds also take their rows' locks in id order
# (`_LOCK_BY_IDS`), as an operator's cancel or retry does (`_move`), so that no two of them can each hold
# a row the other waits for. Left to its plan, each statement locked in the order it found its rows (an
# index of statuses, a page's physical order, a batch's send order), and PostgreSQL broke the resulting
# deadlocks by aborting one side: an operator's cancel failed on one in the 2026-12-06 benchmark.
# Statements that must never wait (the dispatcher's, the real-time claim, the sweeper's) skip locked rows.
_LOCK_BY_IDS = (
    "SELECT id FROM campaigns_message WHERE id = ANY(%s) AND (status || '') = %s ORDER BY id FOR UPDATE"
)
# The rows `m` of the ids given, still being sent, locked in id order; its parameters: the ids, 'sending'.
_SENDING_LOCKED = f"m.id IN ({_LOCK_BY_IDS}) AND (m.status || '') = 'sending'"
_CLAIM_SET = "status = 'sending', claimed_at = %s, attempts = attempts + 1"
_CLAIM_RETURNING = (
    "id, run_id, customer_id, template_id, idempotency_key, attributes, send_at, due_at, attempts"
)


def _claim_for_sending(
    message_ids: Sequence[int], *, claim_from: MessageStatus = MessageStatus.QUEUED
) -> list[_Claimed]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE campaigns_message SET {_CLAIM_SET} WHERE id IN ({_LOCK_BY_IDS}) AND (status || '') = %s "  # noqa: S608
            f"RETURNING {_CLAIM_RETURNING}",
            [timezone.now(), list(message_ids), claim_from.value, claim_from.value],
        )
        return _claimed_rows(cursor.fetchall())


def _claim_new_triggers(run_id: int, *, limit: int) -> list[_Claimed]:
    """Claims (`pending -> sending`) up to `limit` of a real-time run's triggers not tried yet, oldest
    first, if the run is sending. Rows another task is claiming are skipped, not waited for."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE campaigns_message SET {_CLAIM_SET}
             WHERE id IN (
                   SELECT m.id FROM campaigns_message m
                     JOIN campaigns_campaignrun r ON r.id = m.run_id
                    WHERE m.run_id = %s AND m.status = 'pending' AND m.attempts = 0 AND r.state = 'sending'
                    ORDER BY m.id
                    LIMIT %s
                      FOR UPDATE OF m SKIP LOCKED)
               AND (status || '') = 'pending'
            RETURNING {_CLAIM_RETURNING}
            """,  # noqa: S608 (constants above)
            [timezone.now(), run_id, limit],
        )
        return _claimed_rows(cursor.fetchall())


def _claimed_rows(rows: Sequence[tuple[Any, ...]]) -> list[_Claimed]:
    claimed = [
        _Claimed(
            id=row[0],
            run_id=row[1],
            customer_id=row[2],
            template_id=row[3],
            idempotency_key=row[4],
            attributes=row[5] if isinstance(row[5], dict) else json.loads(row[5]),
            send_at=row[6],
            due_at=row[7],
            attempts=row[8],
        )
        for row in rows
    ]
    claimed.sort(key=lambda c: (c.due_at, c.id))
    return claimed


def _retry_delay(attempts: int, retry_after: float | None) -> float:
    base = settings.MESSAGE_RETRY_BASE_SECONDS * (2 ** max(attempts - 1, 0))
    delay = min(settings.MESSAGE_RETRY_MAX_SECONDS, base)
    delay = delay / 2 + random.uniform(
        0, delay / 2
    )  # jitter, so retries of a batch do not come back together
    return max(delay, retry_after or 0.0)


def _record_outcomes(
    outcomes: Sequence[_Outcome], *, attempts: dict[int, int], outcome: BatchOutcome
) -> None:
    now = timezone.now()
    sent: list[tuple[int, str]] = []
    failed: list[tuple[int, str]] = []
    skipped: list[tuple[int, str]] = []
    retry: list[tuple[int, str, datetime]] = []
    for item in outcomes:
        if item.status == MessageStatus.SENT:
            sent.append((item.message_id, item.provider_message_id))
        elif item.status == MessageStatus.SKIPPED:
            skipped.append((item.message_id, item.reason))
        elif (
            item.status == _Outcome.RETRY and attempts.get(item.message_id, 0) < settings.MESSAGE_MAX_ATTEMPTS
        ):
            delay = _retry_delay(attempts.get(item.message_id, 1), item.retry_after)
            retry.append((item.message_id, item.reason, now + timedelta(seconds=delay)))
        elif item.status == _Outcome.RETRY:
            failed.append(
                (item.message_id, f"gave up after {attempts[item.message_id]} attempts: {item.reason}")
            )
        else:
            failed.append((item.message_id, item.reason))
    now_iso = now.isoformat()
    with connection.cursor() as cursor:
        if sent:
            ids = [s[0] for s in sent]
            cursor.execute(
                f"""
                UPDATE campaigns_message m
                   SET status = 'sent', sent_at = %s, provider_message_id = v.pid, error = '',
                       history = m.history || jsonb_build_array(
                           jsonb_build_object('status', 'sent', 'at', %s))
                  FROM unnest(%s::bigint[], %s::text[]) AS v(id, pid)
                 WHERE m.id = v.id AND {_SENDING_LOCKED}
                """,  # noqa: S608 (constants)
                [now, now_iso, ids, [s[1] for s in sent], ids, MessageStatus.SENDING.value],
            )
        for status, rows in (("failed", failed), ("skipped", skipped)):
            if rows:
                ids = [r[0] for r in rows]
                cursor.execute(
                    f"""
                    UPDATE campaigns_message m
                       SET status = '{status}', error = v.reason,
                           history = m.history || jsonb_build_array(
                               jsonb_build_object('status', '{status}', 'at', %s, 'reason', v.reason))
                      FROM unnest(%s::bigint[], %s::text[]) AS v(id, reason)
                     WHERE m.id = v.id AND {_SENDING_LOCKED}
                    """,  # noqa: S608 (status is one of two literals above; the rest constants)
                    [now_iso, ids, [r[1] for r in rows], ids, MessageStatus.SENDING.value],
                )
        if retry:
            ids = [r[0] for r in retry]
            cursor.execute(
                f"""
                UPDATE campaigns_message m
                   SET status = 'pending', due_at = v.due, queued_at = NULL, claimed_at = NULL,
                       error = v.reason,
                       history = m.history || jsonb_build_array(
                           jsonb_build_object('status', 'retry', 'at', %s, 'reason', v.reason))
                  FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS v(id, reason, due)
                 WHERE m.id = v.id AND {_SENDING_LOCKED}
                """,  # noqa: S608 (constants)
                [
                    now_iso,
                    ids,
                    [r[1] for r in retry],
                    [r[2] for r in retry],
                    ids,
                    MessageStatus.SENDING.value,
                ],
            )
    outcome.sent += len(sent)
    outcome.failed += len(failed)
    outcome.skipped += len(skipped)
    outcome.retried += len(retry)
    for message_id, reason in failed + skipped:
        outcome.reasons[message_id] = reason


def run_complete_if_done(*, run_id: int) -> bool:
    """A scheduled run whose audience is all fetched and whose messages are all final is completed."""
    now = timezone.now()
    pending = Message.objects.filter(run_id=run_id, status__in=IN_FLIGHT).exists()
    if pending:
        return False
    return bool(
        CampaignRun.objects.filter(
            pk=run_id, state=RunState.SENDING, paging_done=True, kind=RunKind.SCHEDULED
        ).update(state=RunState.COMPLETED, completed_at=now)
    )


# The sweeper: the database is the truth, the queue a wake-up call
# ------------------------------------------------------------------------------


@dataclass
class SweepReport:
    holds_released: int = 0
    paging_restarted: int = 0
    queued_reset: int = 0
    sending_reset: int = 0
    runs_completed: int = 0


def _send_queues_empty() -> bool:
    """No send task waits in the broker's `sends` or `realtime` queue; False when Redis cannot say."""
    from apps.core.redis import get_redis

    try:
        pipe = get_redis().pipeline()
        pipe.llen("sends")
        pipe.llen("realtime")
        return not any(pipe.execute())
    except Exception:
        logger.warning("sweep: cannot read the send queues' lengths")
        return False


def _reset_unlocked(lookups: dict[str, Any], **changes: Any) -> int:
    """Applies `changes` to the messages matching `lookups` that no other session holds. The sweeper
    leaves a row being moved (claimed, recorded, cancelled) to that move, and finds it at a later sweep if
    it is still stuck."""
    free = Message.objects.filter(**lookups).order_by("pk").select_for_update(skip_locked=True)
    with transaction.atomic():
        return Message.objects.filter(pk__in=free.values("pk"), **lookups).update(**changes)


def campaigns_sweep(*, now: datetime | None = None) -> SweepReport:
    """Puts back in motion what a killed worker or a restarted Redis left behind."""
    now = now or timezone.now()
    report = SweepReport()
    # Held runs whose clearance time came: start paging.
    for run_id in CampaignRun.objects.filter(state=RunState.HELD, hold_until__lte=now).values_list(
        "pk", flat=True
    ):
        if CampaignRun.objects.filter(pk=run_id, state=RunState.HELD).update(
            state=RunState.PAGING, last_progress_at=now
        ):
            report.holds_released += 1
            _enqueue_fetch_page(run_id)
    # Paging that made no progress for a while: its task was lost.
    stalled = CampaignRun.objects.filter(
        state=RunState.PAGING,
        paging_done=False,
        last_progress_at__lt=now - timedelta(seconds=settings.PAGING_STALL_SECONDS),
    ).filter(Q(hold_until__isnull=True) | Q(hold_until__lte=now))
    for run_id in stalled.values_list("pk", flat=True):
        CampaignRun.objects.filter(pk=run_id).update(last_progress_at=now)
        report.paging_restarted += 1
        _enqueue_fetch_page(run_id)
    # Batches released but never picked up (a lost task): release them again. With no send task waiting
    # in the broker, a batch queued this long lost its task (a Redis restart empties the queues), so it
    # need not wait the full timeout. Either way it is safe: a late task claims only rows still queued.
    queued_timeout = settings.MESSAGE_QUEUED_TIMEOUT_SECONDS
    if _send_queues_empty():
        queued_timeout = min(queued_timeout, settings.MESSAGE_QUEUED_ORPHAN_SECONDS)
    report.queued_reset = _reset_unlocked(
        {"status": MessageStatus.QUEUED, "queued_at__lt": now - timedelta(seconds=queued_timeout)},
        status=MessageStatus.PENDING,
        queued_at=None,
        due_at=now,
    )
    # Claimed for sending by a worker that died: send again, with the same idempotency key.
    report.sending_reset = _reset_unlocked(
        {
            "status": MessageStatus.SENDING,
            "claimed_at__lt": now - timedelta(seconds=settings.MESSAGE_SENDING_TIMEOUT_SECONDS),
        },
        status=MessageStatus.PENDING,
        queued_at=None,
        claimed_at=None,
        due_at=now,
    )
    for run_id in CampaignRun.objects.filter(
        state=RunState.SENDING, paging_done=True, kind=RunKind.SCHEDULED
    ).values_list("pk", flat=True):
        if run_complete_if_done(run_id=run_id):
            report.runs_completed += 1
    if any(vars(report).values()):
        logger.info("sweep", extra=dict(vars(report)))
    return report


# Operator controls (the admin's buttons)
# ------------------------------------------------------------------------------


def campaign_run_pause(*, run: CampaignRun) -> bool:
    return bool(
        CampaignRun.objects.filter(pk=run.pk, state__in=(*ACTIVE_RUN_STATES, RunState.HELD)).update(
            state=RunState.PAUSED, resume_state=run.state
        )
    )


def campaign_run_resume(*, run: CampaignRun) -> bool:
    run.refresh_from_db()
    if run.state != RunState.PAUSED:
        return False
    target = run.resume_state or (RunState.SENDING if run.paging_done else RunState.PAGING)
    updated = CampaignRun.objects.filter(pk=run.pk, state=RunState.PAUSED).update(
        state=target, resume_state="", last_progress_at=timezone.now()
    )
    if updated and target == RunState.PAGING:
        transaction.on_commit(lambda: _enqueue_fetch_page(run.pk))
    return bool(updated)


def campaign_run_cancel(*, run: CampaignRun) -> int:
    with transaction.atomic():
        locked = CampaignRun.objects.select_for_update().get(pk=run.pk)
        return _runs_cancel_locked([locked.pk], timezone.now(), reason="cancelled by an operator")


def campaign_run_retry_failed(*, run: CampaignRun) -> int:
    """Gives the run's failed messages a fresh set of attempts, due now."""
    now = timezone.now()
    with transaction.atomic():
        count = _move(
            run_ids=[run.pk],
            from_statuses=(MessageStatus.FAILED,),
            to_status=MessageStatus.PENDING,
            now=now,
            reason="retry requested by an operator",
            reset_attempts=True,
        )
        if count:
            CampaignRun.objects.filter(pk=run.pk, state__in=(RunState.COMPLETED, RunState.FAILED)).update(
                state=RunState.SENDING, completed_at=None
            )
    return count


def run_progress(*, run: CampaignRun) -> dict[str, int]:
    """Counts by status for the admin's progress bar."""
    counts = dict(
        Message.objects.filter(run=run)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return {status.value: counts.get(status.value, 0) for status in MessageStatus}


def _move(
    *,
    run_ids: list[int],
    from_statuses: Sequence[str],
    to_status: str,
    now: datetime,
    reason: str,
    reset_attempts: bool = False,
) -> int:
    attempts_sql = ", attempts = 0" if reset_attempts else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE campaigns_message m
               SET status = %s, due_at = %s, queued_at = NULL, claimed_at = NULL,
                   error = CASE WHEN %s = 'pending' THEN '' ELSE %s END {attempts_sql},
                   history = m.history || jsonb_build_array(
                       jsonb_build_object('status', %s::text, 'at', %s::text, 'reason', %s::text))
             WHERE m.id IN (SELECT id FROM campaigns_message
                             WHERE run_id = ANY(%s) AND status = ANY(%s) ORDER BY id FOR UPDATE)
               AND m.status = ANY(%s)
            """,  # noqa: S608 (attempts_sql is one of two literals)
            [
                to_status,
                now,
                to_status,
                reason,
                to_status,
                now.isoformat(),
                reason,
                run_ids,
                list(from_statuses),
                list(from_statuses),
            ],
        )
        return int(cursor.rowcount)


# Enqueueing (after commit; ids only)
# ------------------------------------------------------------------------------


def _enqueue(task_name: str, *args: object, queue: str | None = None) -> None:
    from config.celery import app

    app.send_task(task_name, args=list(args), queue=queue)


def _enqueue_fetch_page(run_id: int) -> None:
    _enqueue("campaigns.fetch_page", run_id, queue="audience")


DISPATCH_KICK_KEY = "campaigns:dispatch-kick"


def _dispatch_now() -> None:
    try:
        messages_dispatch()
    except Exception:  # the page is stored; the beat tick releases its messages
        logger.exception("dispatch after storing a page failed; the next tick will release them")


def dispatch_soon() -> None:
    """Runs the dispatcher now instead of at its next tick. Kicks within a short spell coalesce into one
    task, so a thousand finishing batches do not become a thousand dispatcher runs."""
    from apps.core.redis import get_redis

    try:
        if get_redis().set(DISPATCH_KICK_KEY, "1", nx=True, px=settings.DISPATCH_KICK_COALESCE_MS):
            _enqueue("campaigns.dispatch", queue="realtime")
    except Exception:  # Redis is down: the beat tick and the sweeper catch up
        logger.warning("dispatch kick failed; the next tick will release due messages")


def _enqueue_send_batch(message_ids: list[int], *, realtime: bool = False) -> None:
    _enqueue("campaigns.send_batch", message_ids, queue="realtime" if realtime else "sends")
