"""Telling Optimove each customer's opt-in state, channel by channel.

The outbox is the Subscription table itself: `subscriptions_set` bumps a row's `sync_version` on every
change, and a row whose `sync_version > synced_version` holds a state Optimove has not accepted yet
(partial index `subscription_sync_pending` on (channel, id)). `subscriptions_sync` walks a channel's
pending rows in id order (keyset, so memory stays flat at any size) and pushes them by the channel's
method:

- "preference": SetCustomerChannelPreference, one call per CommunicationMode (rows grouped by status),
  at most 50,000 customers per call. For a push channel the call names its first active app.
- "attribute": the channel's consent attribute, created once per client with AddCustomerAttribute
  (recorded as a ConsentAttribute), filled with UpdateCustomerAttributes in batches of
  OPTIMOVE_UPDATE_ATTRIBUTES_BATCH_SIZE, each call with a signed CallbackURL (see `callbacks`).

We make one HTTP call per batch ourselves (the API client would split a bigger list, and a failure
half-way would not say which half went through), and as soon as Optimove has accepted a call its rows
get `synced_version` = the version sent, only where `sync_version` is still that version: a change made
while the call was in flight stays pending and goes in a later call; an accepted version is never sent
again (except by a `full` sync, which an operator asks for). Should the process die between Optimove's
answer and that update, the batch is sent again: both calls set a state, so a repeat is harmless.

Errors:
- One that can heal (timeouts, 5xx and 429 past the API client's own retries, no rate-limit slot) or
  refused credentials stop the run; the rows stay pending for the next periodic run.
- Any other refusal (a 400...) is recorded as `sync_error` on that call's rows, and the run goes on
  with the next batch. The periodic run leaves rows with an error alone, so bad data is not sent every
  minute; their next change, `manage.py optimove_sync_subscriptions` or the admin's "push again" sends
  them again.
- For the attribute method, Optimove's HTTP acceptance counts as acceptance; customers its callback
  rejects afterwards are recorded (ConsentSyncRejection) and put back to pending with the reason in
  `sync_error` (`callbacks.rejections_reopen`).

One run per channel at a time, under a PostgreSQL session lock (no transaction stays open across the
HTTP calls; PostgreSQL lets go of it should the worker die). Every call is recorded as a
ConsentSyncCall for the admin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from apps.clients.models import Channel, ChannelKind, ConsentSync, PushApp
from apps.core.locks import session_lock
from apps.optimove.client import PREFERENCE_CUSTOMERS_PER_CALL, OptimoveClient, optimove_client_for
from apps.optimove.errors import (
    OptimoveAuthError,
    OptimoveError,
    OptimoveRetryableError,
    OptimoveTerminalError,
)
from apps.optimove.types import AttributeValue, CustomerAttributeUpdate
from apps.subscriptions.callbacks import attribute_callback_url, rejections_reopen
from apps.subscriptions.models import ConsentStatus, Subscription
from apps.subscriptions.models_sync import (
    ConsentAttribute,
    ConsentSyncCall,
    ConsentSyncCallState,
    ConsentSyncRejection,
)

logger = logging.getLogger(__name__)

DUE_TASK = "subscriptions.sync_due"
CHANNEL_TASK = "subscriptions.sync_channel"
# Background work that talks to Optimove, like reporting and the template sync: never behind (or in
# front of) a campaign's audience pages or sends.
SYNC_QUEUE = "reporting"
# The consent attribute holds the status itself ("opted_in", "opted_out", "unknown"): at most 9
# characters, readable in Optimove's segment builder, and the same words as our admin and API.
ATTRIBUTE_TYPE = "VARCHAR(10)"
ATTRIBUTE_DEFAULT_VALUE = ConsentStatus.UNKNOWN.value
_ERROR_MAX_CHARS = 500


def communication_modes() -> dict[str, int]:
    """The CommunicationMode sent for each status. Optimove does not document the values: settings."""
    return {
        ConsentStatus.OPTED_IN: int(settings.OPTIMOVE_COMMUNICATION_MODE_OPTED_IN),
        ConsentStatus.OPTED_OUT: int(settings.OPTIMOVE_COMMUNICATION_MODE_OPTED_OUT),
        ConsentStatus.UNKNOWN: int(settings.OPTIMOVE_COMMUNICATION_MODE_UNKNOWN),
    }


def attribute_value(status: str) -> str:
    """What the consent attribute holds for a status: the status itself."""
    return str(status)


@dataclass(frozen=True)
class ChannelSyncResult:
    channel_id: int  # our Channel's id
    optimove_channel_id: int
    method: str
    pushed: int = 0  # customers in calls Optimove accepted
    calls: int = 0  # calls Optimove accepted
    refused: int = 0  # customers in calls Optimove refused: their rows carry the error as sync_error
    refused_calls: int = 0
    complete: bool = True  # False: the run stopped early and rows are still pending
    stopped: str = ""  # why it stopped early
    skipped: str = ""  # why nothing was tried


@dataclass(frozen=True)
class _Row:
    pk: int
    customer_id: str
    status: str
    version: int


@dataclass
class _Run:
    channel: Channel
    api: OptimoveClient
    full: bool
    include_failed: bool
    deadline: float | None
    pushed: int = 0
    calls: int = 0
    refused: int = 0
    refused_calls: int = 0
    stopped: str = ""
    incomplete: bool = False

    def stop(self, reason: str) -> None:
        self.stopped = self.stopped or reason
        self.incomplete = True

    def result(self) -> ChannelSyncResult:
        return ChannelSyncResult(
            channel_id=self.channel.pk,
            optimove_channel_id=self.channel.optimove_channel_id,
            method=self.channel.consent_sync,
            pushed=self.pushed,
            calls=self.calls,
            refused=self.refused,
            refused_calls=self.refused_calls,
            complete=not self.incomplete,
            stopped=self.stopped,
        )


# ---------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------


def subscriptions_sync(
    *,
    channel: Channel,
    full: bool = False,
    include_failed: bool = False,
    wait: bool = False,
    time_budget_seconds: float | None = None,
) -> ChannelSyncResult:
    """Pushes the channel's states Optimove has not accepted (every state with `full`) and records what
    it accepted. `include_failed` also sends rows whose last push was refused (the periodic run leaves
    them alone). With `wait`, waits for another run of the channel to end instead of skipping. After
    `time_budget_seconds` no new batch is read; the next run goes on from where this one stopped."""
    skipped = _skip_reason(channel)
    if skipped:
        return _skipped(channel, skipped)
    with session_lock(f"subscriptions-sync:{channel.pk}", wait=wait) as locked:
        if not locked:
            return _skipped(channel, "another sync of this channel is running")
        try:
            api = optimove_client_for(channel.client)
        except OptimoveError as exc:
            return ChannelSyncResult(
                channel_id=channel.pk,
                optimove_channel_id=channel.optimove_channel_id,
                method=channel.consent_sync,
                complete=False,
                stopped=_error_text(exc),
            )
        deadline = None if time_budget_seconds is None else time.monotonic() + time_budget_seconds
        run = _Run(channel=channel, api=api, full=full, include_failed=include_failed, deadline=deadline)
        if channel.consent_sync == ConsentSync.ATTRIBUTE:
            _push_attributes(run)
        else:
            _push_preferences(run)
    result = run.result()
    log = logger.warning if result.stopped or result.refused else logger.info
    log(
        "consent sync of channel %s: %d customers in %d calls accepted, %d refused%s",
        channel.optimove_channel_id,
        result.pushed,
        result.calls,
        result.refused,
        f"; stopped: {result.stopped}" if result.stopped else "",
        extra={"client": channel.client.slug, "channel_id": channel.optimove_channel_id},
    )
    return result


def _skip_reason(channel: Channel) -> str:
    if channel.consent_sync == ConsentSync.OFF:
        return "consent sync is off for this channel (shared through Optimove's batch process)"
    if channel.consent_sync not in (ConsentSync.PREFERENCE, ConsentSync.ATTRIBUTE):
        return f"unknown consent sync method {channel.consent_sync!r}"
    if not channel.is_active:
        return "the channel is inactive"
    if not channel.client.is_active:
        return "the client is inactive"
    if channel.consent_sync == ConsentSync.ATTRIBUTE:
        name = channel.consent_attribute
        if not name:
            return "consent sync by attribute needs the channel's consent attribute"
        # The attribute belongs to the customer, not the channel: two channels filling one attribute
        # would overwrite each other's states.
        other = (
            Channel.objects.filter(
                client_id=channel.client_id,
                is_active=True,
                consent_sync=ConsentSync.ATTRIBUTE,
                consent_attribute__iexact=name,
            )
            .exclude(pk=channel.pk)
            .values_list("optimove_channel_id", flat=True)
            .first()
        )
        if other is not None:
            return f"channel {other} fills the consent attribute {name!r} too: each channel needs its own"
    return ""


def _skipped(channel: Channel, reason: str) -> ChannelSyncResult:
    return ChannelSyncResult(
        channel_id=channel.pk,
        optimove_channel_id=channel.optimove_channel_id,
        method=channel.consent_sync,
        skipped=reason,
    )


def _chunks(run: _Run, size: int) -> Iterator[list[_Row]]:
    """The rows to push, `size` at a time, in keyset order. Each chunk is read when the one before
    was pushed, so rows changed meanwhile are read with their new version.

    Pending rows go by id, along the partial index of pending rows. A full push goes by customer id,
    along the (channel, customer_id) unique index: every row of the channel, without a sort."""
    after: int | str | None = None
    while True:
        if run.deadline is not None and time.monotonic() >= run.deadline:
            run.stop("its time budget ran out; the next run goes on")
            return
        rows = Subscription.objects.filter(channel_id=run.channel.pk)
        if run.full:
            key = "customer_id"
        else:
            key = "pk"
            rows = rows.filter(sync_version__gt=F("synced_version"))
            if not run.include_failed:
                rows = rows.filter(sync_error="")
        if after is not None:
            rows = rows.filter(**{f"{key}__gt": after})
        values = rows.order_by(key).values_list("pk", "customer_id", "status", "sync_version")[:size]
        chunk = [_Row(*row) for row in values]
        if not chunk:
            return
        yield chunk
        if run.incomplete or len(chunk) < size:
            return
        last = chunk[-1]
        after = last.customer_id if run.full else last.pk


# ---------------------------------------------------------------------------------------------------
# The two methods
# ---------------------------------------------------------------------------------------------------


def _push_preferences(run: _Run) -> None:
    size = max(1, min(int(settings.SUBSCRIPTIONS_SYNC_PREFERENCE_BATCH_SIZE), PREFERENCE_CUSTOMERS_PER_CALL))
    modes = communication_modes()
    app_id = _push_app_id(run.channel)
    waiting: dict[str, list[_Row]] = {status: [] for status in modes}
    for chunk in _chunks(run, size):
        for row in chunk:
            batch = waiting.setdefault(row.status, [])
            batch.append(row)
            if len(batch) >= size:
                waiting[row.status] = []
                if not _send_preference(run, batch, modes.get(row.status), app_id):
                    return
    for status, batch in waiting.items():
        if batch and not _send_preference(run, batch, modes.get(status), app_id):
            return


def _send_preference(run: _Run, rows: list[_Row], mode: int | None, app_id: str | None) -> bool:
    if mode is None:  # a status the settings know no CommunicationMode for
        return _send(run, rows, mode=None, send=_refuse_unknown_status)
    customer_ids = [row.customer_id for row in rows]

    def send(call: ConsentSyncCall) -> None:
        run.api.set_customer_channel_preference(
            channel_id=run.channel.optimove_channel_id,
            customer_ids=customer_ids,
            communication_mode=mode,
            app_id=app_id,
        )

    return _send(run, rows, mode=mode, send=send)


def _refuse_unknown_status(call: ConsentSyncCall) -> None:
    raise ValueError("no CommunicationMode is configured for this status")


def _push_app_id(channel: Channel) -> str | None:
    """A push channel's preference names its first active app (Optimove keys push consent by AppID);
    other channels, and a push channel without apps, send none."""
    if channel.kind != ChannelKind.PUSH:
        return None
    return (
        PushApp.objects.filter(channel=channel, is_active=True)
        .order_by("pk")
        .values_list("app_id", flat=True)
        .first()
    )


def _push_attributes(run: _Run) -> None:
    name = run.channel.consent_attribute
    if not _attribute_ensure(run, name):
        return
    size = max(1, int(settings.OPTIMOVE_UPDATE_ATTRIBUTES_BATCH_SIZE))
    for chunk in _chunks(run, size):
        updates = [
            CustomerAttributeUpdate(
                customer_id=row.customer_id,
                attributes=(AttributeValue(real_field_name=name, value=attribute_value(row.status)),),
            )
            for row in chunk
        ]

        def send(call: ConsentSyncCall, updates: list[CustomerAttributeUpdate] = updates) -> None:
            run.api.update_customer_attributes(
                updates=updates, callback_url=attribute_callback_url(call_id=call.pk), batch_size=len(updates)
            )

        if not _send(run, chunk, mode=None, send=send, versions=True):
            return


def _attribute_ensure(run: _Run, name: str) -> bool:
    """Creates the consent attribute in the client's Optimove once; False when the run must stop."""
    client = run.channel.client
    if ConsentAttribute.objects.filter(client=client, name=name).exists():
        return True
    note = ""
    try:
        run.api.add_customer_attribute(name=name, type=ATTRIBUTE_TYPE, default_value=ATTRIBUTE_DEFAULT_VALUE)
    except (OptimoveRetryableError, OptimoveAuthError) as exc:
        run.stop(f"AddCustomerAttribute: {_error_text(exc)}")
        return False
    except OptimoveTerminalError as exc:
        if exc.status != 400:
            run.stop(f"AddCustomerAttribute: {_error_text(exc)}")
            return False
        # Optimove answers 400 to a name that exists already (created by an earlier run whose record
        # was lost, or by hand); should the attribute be missing after all, every customer's callback
        # says so and the rejections show it in the admin.
        note = "Optimove answered 400 (it does so for a name that exists already): taken as existing"
        logger.warning(
            "consent sync: AddCustomerAttribute answered 400 for channel %s; taken as existing",
            run.channel.optimove_channel_id,
        )
    ConsentAttribute.objects.get_or_create(
        client=client, name=name, defaults={"created_at": timezone.now(), "note": note}
    )
    return True


# ---------------------------------------------------------------------------------------------------
# One call and what it did to its rows
# ---------------------------------------------------------------------------------------------------


def _send(
    run: _Run,
    rows: list[_Row],
    *,
    mode: int | None,
    send: Callable[[ConsentSyncCall], None],
    versions: bool = False,
) -> bool:
    """Makes one call for `rows` and records the outcome on them; False when the run must stop."""
    call = ConsentSyncCall.objects.create(
        client_id=run.channel.client_id,
        channel=run.channel,
        method=run.channel.consent_sync,
        communication_mode=mode,
        customers=len(rows),
        versions={row.customer_id: row.version for row in rows} if versions else {},
        sent_at=timezone.now(),
    )
    try:
        send(call)
    except (OptimoveRetryableError, OptimoveAuthError) as exc:
        # Optimove is down or slow, or the credentials are wrong: every later call would fail the same
        # way. The rows stay pending, untouched, for the next run.
        text = _error_text(exc)
        _call_close(call, ConsentSyncCallState.FAILED, text)
        run.stop(text)
        return False
    except (OptimoveError, ValueError) as exc:
        # ValueError: data the API client refuses before sending it, as final as a 400.
        text = _error_text(exc)
        _call_close(call, ConsentSyncCallState.REFUSED, text)
        _rows_refused(rows, f"{_function(run)} refused: {text}"[:_ERROR_MAX_CHARS])
        run.refused += len(rows)
        run.refused_calls += 1
        return True
    _call_accepted(call, rows)
    run.pushed += len(rows)
    run.calls += 1
    return True


def _function(run: _Run) -> str:
    if run.channel.consent_sync == ConsentSync.ATTRIBUTE:
        return "UpdateCustomerAttributes"
    return "SetCustomerChannelPreference"


def _call_close(call: ConsentSyncCall, state: str, error: str) -> None:
    ConsentSyncCall.objects.filter(pk=call.pk).update(state=state, error=error, answered_at=timezone.now())


_ACCEPT = """
UPDATE subscriptions_subscription AS s
SET synced_version = v.version, sync_error = ''
FROM unnest(%(ids)s::bigint[], %(versions)s::int[]) AS v(id, version)
WHERE s.id = v.id AND s.sync_version = v.version
"""

_REFUSE = """
UPDATE subscriptions_subscription AS s
SET sync_error = %(error)s
FROM unnest(%(ids)s::bigint[], %(versions)s::int[]) AS v(id, version)
WHERE s.id = v.id AND s.sync_version = v.version AND s.sync_version > s.synced_version
"""


def _call_accepted(call: ConsentSyncCall, rows: list[_Row]) -> None:
    with transaction.atomic():
        # The callback service takes the same lock: a callback that arrived before this point is
        # applied here, one arriving after is applied there.
        locked = ConsentSyncCall.objects.select_for_update().get(pk=call.pk)
        locked.state = ConsentSyncCallState.ACCEPTED
        locked.answered_at = timezone.now()
        locked.save(update_fields=["state", "answered_at"])
        with connection.cursor() as cursor:
            cursor.execute(
                _ACCEPT, {"ids": [row.pk for row in rows], "versions": [row.version for row in rows]}
            )
        if locked.callback_received_at is not None:
            rejections_reopen(call=locked)


def _rows_refused(rows: list[_Row], error: str) -> None:
    """Only rows still at the version sent, and not accepted before (a `full` re-push of a state
    Optimove already has leaves it alone)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _REFUSE,
            {"ids": [row.pk for row in rows], "versions": [row.version for row in rows], "error": error},
        )


def _error_text(error: Exception) -> str:
    # The API client's messages name the function and the status, never a body or a credential.
    text = str(error) or type(error).__name__
    if isinstance(error, OptimoveAuthError):
        text = f"{text}: check the client's Optimove credentials"
    return text[:_ERROR_MAX_CHARS]


# ---------------------------------------------------------------------------------------------------
# For the periodic task and the admin
# ---------------------------------------------------------------------------------------------------


def channels_due() -> list[int]:
    """Active channels of active clients, synced to Optimove, with a state waiting to be pushed."""
    pending = Subscription.objects.filter(
        channel_id=OuterRef("pk"), sync_version__gt=F("synced_version"), sync_error=""
    )
    return list(
        Channel.objects.filter(
            is_active=True,
            client__is_active=True,
            consent_sync__in=[ConsentSync.PREFERENCE, ConsentSync.ATTRIBUTE],
        )
        .filter(Exists(pending))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def subscriptions_push_again(*, subscription_ids: list[int]) -> int:
    """Clears the error of pending rows so the next periodic run sends them again; returns how many."""
    return (
        Subscription.objects.filter(pk__in=subscription_ids, sync_version__gt=F("synced_version"))
        .exclude(sync_error="")
        .update(sync_error="")
    )


def sync_history_prune(*, now: datetime | None = None) -> tuple[int, int]:
    """Deletes call records and rejections older than SUBSCRIPTIONS_SYNC_HISTORY_DAYS; returns how
    many of each."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SUBSCRIPTIONS_SYNC_HISTORY_DAYS)
    rejections, _ = ConsentSyncRejection.objects.filter(received_at__lt=cutoff).delete()
    calls, _ = ConsentSyncCall.objects.filter(sent_at__lt=cutoff).delete()
    return calls, rejections
