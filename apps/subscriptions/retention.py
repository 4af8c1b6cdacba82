"""Personal data has a lifetime: each client's `personal_data_retention_days` after a message's send time,
what the platform holds about the customer is purged, while ids, states, times and counts stay.

What holds personal data, and what the purge does to it:

- `Message.attributes` (the audience page's or the trigger's attributes: addresses, names, anything the
  templates use) becomes `{}` once the message is finished (sent, failed, skipped, cancelled).
- `Message.error` and the `reason` of each `Message.history` entry: providers' words and render errors.
  The write paths already redact addresses there (`apps.channels.base.safe_reason`, the renderer's
  `_reason`); the purge scrubs them again with the message's own attribute values and the email and
  phone patterns, so a row written by an older or careless path is cleaned too. Statuses and times stay.
- `DeliveryEvent.raw` (the provider's payload: recipient addresses) becomes `{}` and `url` (a click's
  link, often personalised) keeps only scheme, host and path, once received longer ago than the period.
- `Notification.body` of a real-time trigger (EventTypeID 11: personalization values, addresses,
  promo codes) keeps only the trigger's own fields (ids, types and time).
- `CancelledCustomer.promo_code` is blanked for cancellations older than the period.

Left alone: customer ids, template ids, states, timestamps, a message's delivery columns and its
`InteractionCursor` (which holds no personal data), so run totals and what `apps.delivery.reporting`
reports are the same before and after; consent history, which proves opt-outs (`customer_erase` is the
one thing that trims it); the sandbox's tables, which stand in for Optimove.

Each kind is found through a partial index over rows "not purged yet" (`personal_data_purged_at IS
NULL`, or `promo_code <> ''`) and worked through in keyset order, a few thousand rows per batch, each batch
its own short transaction that skips rows locked by someone else. A purged row leaves its index, so a
crash half-way loses nothing and the next run starts where this one stopped; a second run finds nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.campaigns.models import FINAL_MESSAGE_STATUSES, CampaignCancellation, CampaignRun
from apps.clients.models import Client
from apps.core.locks import session_lock
from apps.core.logging import redact
from apps.optimove.notifications import TRIGGER_FIELDS
from apps.optimove.types import EventType

PURGE_LOCK = "subscriptions:personal-data-purge"
FINISHED_STATUSES: list[str] = [status.value for status in FINAL_MESSAGE_STATUSES]
# What a notification keeps: the fields that say which event, campaign, channel, template, customer and
# time, never the parameters or personalization around them (nor the promo code, often one per person).
NOTIFICATION_KEPT_FIELDS = (TRIGGER_FIELDS - {"promocode"}) | {"clearancerequiredby"}
REDACTED_VALUE = "[redacted]"
# Attribute values shorter than this, or plain words like these, are not searched for in reasons: "UK"
# or "true" would blot out ordinary words, and a short value identifies nobody.
_MIN_SECRET_LENGTH = 4
_NOT_SECRETS = frozenset({"true", "false", "none", "null", "yes", "no"})

MESSAGES, DELIVERY_EVENTS, NOTIFICATIONS, PROMO_CODES = (
    "messages",
    "delivery_events",
    "notifications",
    "promo_codes",
)


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """How many rows one purge cleaned, by kind. `complete` is False when the time budget ran out or
    another purge was running (`locked_out`): the next run continues."""

    messages: int = 0
    delivery_events: int = 0
    notifications: int = 0
    promo_codes: int = 0
    clients: int = 0
    complete: bool = True
    locked_out: bool = False


# Scrubbing (shared with apps.subscriptions.erasure)
# ------------------------------------------------------------------------------


def personal_values(attributes: object) -> list[str]:
    """The values of a message's attributes worth searching for in free text, longest first."""
    if not isinstance(attributes, Mapping):
        return []
    values: set[str] = set()
    for value in attributes.values():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        text = text.strip()
        if len(text) >= _MIN_SECRET_LENGTH and text.lower() not in _NOT_SECRETS:
            values.add(text)
    return sorted(values, key=len, reverse=True)


def scrub_text(text: str, secrets: Sequence[str]) -> str:
    """`text` without any of `secrets` (case-insensitive) and without anything that looks like an email
    address or a phone number."""
    if not text:
        return text
    for secret in secrets:
        if secret:
            text = re.sub(re.escape(secret), REDACTED_VALUE, text, flags=re.IGNORECASE)
    return redact(text)


def scrub_history(history: object, secrets: Sequence[str]) -> list[Any]:
    """The history with every entry's status and time, its other text scrubbed."""
    if not isinstance(history, list):
        return []
    scrubbed: list[Any] = []
    for entry in history:
        if isinstance(entry, dict):
            scrubbed.append(
                {
                    key: scrub_text(value, secrets)
                    if isinstance(value, str) and key not in ("status", "at")
                    else value
                    for key, value in entry.items()
                }
            )
        else:
            scrubbed.append(scrub_text(entry, secrets) if isinstance(entry, str) else entry)
    return scrubbed


def notification_kept_fields(body: object) -> dict[str, Any]:
    """A notification's body cut down to the fields that identify the event (any key case)."""
    if not isinstance(body, Mapping):
        return {}
    return {
        str(key): value
        for key, value in body.items()
        if str(key).lower() in NOTIFICATION_KEPT_FIELDS and not isinstance(value, dict | list)
    }


def url_without_personal_parts(url: str) -> str:
    """Which page a click went to, without the query, fragment or user info that personalise links."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return ""
    return redact(urlunsplit((parts.scheme, netloc, parts.path, "", "")))


# The purge
# ------------------------------------------------------------------------------


def personal_data_purge(
    *, now: datetime | None = None, batch_size: int | None = None, time_budget_seconds: float | None = None
) -> PurgeResult:
    """Purges, for every client, the personal data older than its retention period (see the module
    docstring). Clients take turns batch by batch, so one client's backlog does not hold the others back;
    when the time budget runs out the result says so and the next run carries on. One purge at a time
    (a PostgreSQL session lock): a second one started meanwhile returns at once with `locked_out`."""
    now = now or timezone.now()
    batch = batch_size or settings.PERSONAL_DATA_PURGE_BATCH_SIZE
    budget = (
        settings.PERSONAL_DATA_PURGE_TIME_BUDGET_SECONDS
        if time_budget_seconds is None
        else time_budget_seconds
    )
    deadline = time.monotonic() + budget
    counts: Counter[str] = Counter()
    complete = True
    with session_lock(PURGE_LOCK) as locked:
        if not locked:
            return PurgeResult(complete=False, locked_out=True)
        clients = list(Client.objects.order_by("pk").values_list("pk", "personal_data_retention_days"))
        work: deque[Iterator[tuple[str, int]]] = deque(
            _client_batches(client_id=client_id, cutoff=now - timedelta(days=days), batch=batch)
            for client_id, days in clients
        )
        while work:
            if time.monotonic() >= deadline:
                complete = False
                break
            batches = work.popleft()
            step = next(batches, None)
            if step is None:
                continue
            kind, done = step
            counts[kind] += done
            work.append(batches)
    return PurgeResult(
        messages=counts[MESSAGES],
        delivery_events=counts[DELIVERY_EVENTS],
        notifications=counts[NOTIFICATIONS],
        promo_codes=counts[PROMO_CODES],
        clients=len(clients),
        complete=complete,
    )


def _client_batches(*, client_id: int, cutoff: datetime, batch: int) -> Iterator[tuple[str, int]]:
    """One client's purge, one committed batch per step: (kind, rows cleaned)."""
    # Every run: a run's index probe costs next to nothing once it holds no unpurged finished messages,
    # and a message's send time may precede its run's creation, so no run can be ruled out by its age.
    run_ids = list(
        CampaignRun.objects.filter(client_id=client_id).order_by("pk").values_list("pk", flat=True)
    )
    for run_id in run_ids:
        yield from _message_batches(run_id=run_id, cutoff=cutoff, batch=batch)
    yield from _delivery_event_batches(client_id=client_id, cutoff=cutoff, batch=batch)
    yield from _notification_batches(client_id=client_id, cutoff=cutoff, batch=batch)
    cancellation_ids = list(
        CampaignCancellation.objects.filter(client_id=client_id, created_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for cancellation_id in cancellation_ids:
        yield from _promo_code_batches(cancellation_id=cancellation_id, batch=batch)


def _keyset(after: tuple[datetime, int] | None, columns: str) -> tuple[str, list[Any]]:
    if after is None:
        return "", []
    return f" AND ({columns}) > (%s, %s)", [after[0], after[1]]


def _message_batches(*, run_id: int, cutoff: datetime, batch: int) -> Iterator[tuple[str, int]]:
    after: tuple[datetime, int] | None = None
    while True:
        keyset_sql, keyset_params = _keyset(after, "send_at, id")
        with transaction.atomic(), connection.cursor() as cursor:
            # The predicate is the partial index `message_personal_data`'s, so this is a range scan of it.
            cursor.execute(
                f"""
                SELECT id, send_at, attributes, error, history FROM campaigns_message
                 WHERE run_id = %s AND personal_data_purged_at IS NULL AND status = ANY(%s)
                   AND send_at < %s{keyset_sql}
                 ORDER BY send_at, id
                 LIMIT %s
                   FOR UPDATE SKIP LOCKED
                """,  # noqa: S608 (keyset_sql is built from our own column names)
                [run_id, FINISHED_STATUSES, cutoff, *keyset_params, batch],
            )
            rows = cursor.fetchall()
            if not rows:
                return
            ids, errors, histories = [], [], []
            for message_id, _, attributes, error, history in rows:
                secrets = personal_values(json_value(attributes))
                ids.append(message_id)
                errors.append(scrub_text(error, secrets))
                histories.append(json.dumps(scrub_history(json_value(history), secrets)))
            cursor.execute(
                """
                UPDATE campaigns_message m
                   SET attributes = '{}'::jsonb, error = v.error, history = v.history::jsonb,
                       personal_data_purged_at = %s
                  FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS v(id, error, history)
                 WHERE m.id = v.id
                """,
                [timezone.now(), ids, errors, histories],
            )
        yield MESSAGES, len(rows)
        if len(rows) < batch:
            return
        after = (rows[-1][1], rows[-1][0])


def _delivery_event_batches(*, client_id: int, cutoff: datetime, batch: int) -> Iterator[tuple[str, int]]:
    after: tuple[datetime, int] | None = None
    while True:
        keyset_sql, keyset_params = _keyset(after, "received_at, id")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT id, received_at, url FROM delivery_deliveryevent
                 WHERE client_id = %s AND personal_data_purged_at IS NULL AND received_at < %s{keyset_sql}
                 ORDER BY received_at, id
                 LIMIT %s
                   FOR UPDATE SKIP LOCKED
                """,  # noqa: S608 (keyset_sql is built from our own column names)
                [client_id, cutoff, *keyset_params, batch],
            )
            rows = cursor.fetchall()
            if not rows:
                return
            cursor.execute(
                """
                UPDATE delivery_deliveryevent e
                   SET raw = '{}'::jsonb, url = v.url, personal_data_purged_at = %s
                  FROM unnest(%s::bigint[], %s::text[]) AS v(id, url)
                 WHERE e.id = v.id
                """,
                [
                    timezone.now(),
                    [row[0] for row in rows],
                    [url_without_personal_parts(row[2]) for row in rows],
                ],
            )
        yield DELIVERY_EVENTS, len(rows)
        if len(rows) < batch:
            return
        after = (rows[-1][1], rows[-1][0])


def _notification_batches(*, client_id: int, cutoff: datetime, batch: int) -> Iterator[tuple[str, int]]:
    after: tuple[datetime, int] | None = None
    while True:
        keyset_sql, keyset_params = _keyset(after, "created_at, id")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT id, created_at, body FROM optimove_notification
                 WHERE client_id = %s AND event_type_id = %s AND personal_data_purged_at IS NULL
                   AND created_at < %s{keyset_sql}
                 ORDER BY created_at, id
                 LIMIT %s
                   FOR UPDATE SKIP LOCKED
                """,  # noqa: S608 (keyset_sql is built from our own column names)
                [client_id, int(EventType.REALTIME_TRIGGER), cutoff, *keyset_params, batch],
            )
            rows = cursor.fetchall()
            if not rows:
                return
            cursor.execute(
                """
                UPDATE optimove_notification n
                   SET body = v.body::jsonb, personal_data_purged_at = %s
                  FROM unnest(%s::bigint[], %s::text[]) AS v(id, body)
                 WHERE n.id = v.id
                """,
                [
                    timezone.now(),
                    [row[0] for row in rows],
                    [json.dumps(notification_kept_fields(json_value(row[2]))) for row in rows],
                ],
            )
        yield NOTIFICATIONS, len(rows)
        if len(rows) < batch:
            return
        after = (rows[-1][1], rows[-1][0])


def _promo_code_batches(*, cancellation_id: int, batch: int) -> Iterator[tuple[str, int]]:
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            # Through the partial index `cancelled_customer_promo`: blanked rows leave it.
            cursor.execute(
                """
                UPDATE campaigns_cancelledcustomer SET promo_code = ''
                 WHERE id IN (SELECT id FROM campaigns_cancelledcustomer
                               WHERE cancellation_id = %s AND promo_code <> ''
                               ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
                """,
                [cancellation_id, batch],
            )
            done = int(cursor.rowcount)
        if not done:
            return
        yield PROMO_CODES, done
        if done < batch:
            return


def json_value(value: object) -> Any:
    """A jsonb column as a raw cursor hands it over: decoded already, or as text to decode."""
    if isinstance(value, str | bytes | bytearray):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
