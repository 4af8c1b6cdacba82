"""Erasing one customer's personal data everywhere the platform holds it for one client.

What goes, in one transaction:

- Their messages, on every run and channel: attributes emptied, error and history scrubbed as the
  retention purge does (apps.subscriptions.retention), plus every known address of theirs. Messages
  not yet handed to a worker (pending, queued) are cancelled, since nothing could be sent without the
  data; one a worker holds right now (sending) is finished by that worker and left to the next purge.
- Provider events: the payload and link of every event of their messages, and of any event of the
  client (matched to a message or not) that carries one of their known addresses.
- Optimove notifications: real-time triggers (EventTypeID 11) for them, and any notification of the
  client carrying one of their addresses, cut down to the fields that identify the event.
- Promo codes recorded for them when a campaign was cancelled.
- Consent: what proves an opt-out stays, nothing else. An opted-out subscription keeps its row and its
  opt-out change rows (status, source and time) with `detail` blanked; its other change rows go. A
  subscription that is not opted out goes with its history.

"Known addresses" are the values the client's channels' address attributes (`Channel.address_attribute`)
take in the customer's messages and triggers. Ids (customer, message, template), states, times and
delivery columns stay, so run totals and reporting still add up.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.campaigns.models import MessageStatus
from apps.clients.models import Client
from apps.optimove.types import EventType
from apps.subscriptions.models import ConsentStatus, Subscription, SubscriptionChange
from apps.subscriptions.retention import (
    json_value,
    notification_kept_fields,
    personal_values,
    scrub_history,
    scrub_text,
)
from apps.subscriptions.services import CUSTOMER_ID_MAX_LENGTH

ERASED_REASON = "cancelled: the customer's personal data was erased"
_UNSENT = (MessageStatus.PENDING.value, MessageStatus.QUEUED.value)


@dataclass(frozen=True, slots=True)
class ErasureResult:
    """What one erasure removed, as counts of rows by kind; never the data itself."""

    messages: int = 0  # messages whose attributes, error or history were cleared
    messages_cancelled: int = 0  # of those, unsent messages cancelled
    delivery_events: int = 0  # provider events whose payload or link was cleared
    notifications: int = 0  # Optimove notifications cut down to their identifying fields
    promo_codes: int = 0  # cancelled-campaign records whose promo code was blanked
    subscriptions_deleted: int = 0  # subscriptions not opted out, deleted with their history
    consent_changes_deleted: int = 0  # change rows deleted (of those subscriptions, and non-opt-out rows)
    consent_details_blanked: int = 0  # opt-out change rows whose detail was blanked
    opt_outs_kept: int = 0  # opted-out subscriptions kept as proof (not a removal)

    @property
    def found(self) -> bool:
        """Whether anything was removed; the opt-outs kept as proof do not count."""
        return any(getattr(self, f.name) for f in fields(self) if f.name != "opt_outs_kept")


def customer_erase(*, client: Client, customer_id: str) -> ErasureResult:
    """Removes the customer's personal data for the client (see the module docstring) in one transaction.
    Raises ValueError for a customer id that cannot be one, with nothing changed."""
    if not isinstance(customer_id, str) or not customer_id.strip() or customer_id != customer_id.strip():
        raise ValueError("the customer id must be a non-empty string without spaces around it")
    if len(customer_id) > CUSTOMER_ID_MAX_LENGTH:
        raise ValueError(f"the customer id is at most {CUSTOMER_ID_MAX_LENGTH} characters")
    now = timezone.now()
    address_attributes = {
        name.lower()
        for name in client.channels.exclude(address_attribute="").values_list("address_attribute", flat=True)
    }
    with transaction.atomic(), connection.cursor() as cursor:
        messages = _customer_messages(cursor, client_id=client.pk, customer_id=customer_id)
        triggers = _customer_triggers(cursor, client_id=client.pk, customer_id=customer_id)
        addresses = _addresses(
            [attributes for _, _, attributes, _, _ in messages] + [body for _, body in triggers],
            address_attributes,
        )
        erased_messages, cancelled = _erase_messages(cursor, messages, addresses=addresses, now=now)
        events = _erase_delivery_events(
            cursor,
            client_id=client.pk,
            message_ids=[row[0] for row in messages],
            addresses=addresses,
            now=now,
        )
        notifications = _erase_notifications(
            cursor,
            client_id=client.pk,
            trigger_ids=[row[0] for row in triggers],
            addresses=addresses,
            now=now,
        )
        cursor.execute(
            """
            UPDATE campaigns_cancelledcustomer cc SET promo_code = ''
              FROM campaigns_campaigncancellation c
             WHERE cc.cancellation_id = c.id AND c.client_id = %s AND cc.customer_id = %s
               AND cc.promo_code <> ''
            """,
            [client.pk, customer_id],
        )
        promo_codes = int(cursor.rowcount)
        consent = _erase_consent(client=client, customer_id=customer_id)
    return ErasureResult(
        messages=erased_messages,
        messages_cancelled=cancelled,
        delivery_events=events,
        notifications=notifications,
        promo_codes=promo_codes,
        **consent,
    )


_MessageRow = tuple[int, str, Any, str, Any]  # id, status, attributes, error, history


def _customer_messages(cursor: Any, *, client_id: int, customer_id: str) -> list[_MessageRow]:
    # Locked, so a send task's claim (queued -> sending) waits for this and then finds them cancelled.
    cursor.execute(
        """
        SELECT m.id, m.status, m.attributes, m.error, m.history
          FROM campaigns_message m JOIN campaigns_campaignrun r ON r.id = m.run_id
         WHERE r.client_id = %s AND m.customer_id = %s
         ORDER BY m.id
           FOR UPDATE OF m
        """,
        [client_id, customer_id],
    )
    return [(row[0], row[1], json_value(row[2]), row[3], json_value(row[4])) for row in cursor.fetchall()]


def _customer_triggers(cursor: Any, *, client_id: int, customer_id: str) -> list[tuple[int, Any]]:
    # Field names come in any case (customerID, CustomerID); a numeric id is matched as its text.
    cursor.execute(
        """
        SELECT n.id, n.body FROM optimove_notification n
         WHERE n.client_id = %s AND n.event_type_id = %s
           AND CASE WHEN jsonb_typeof(n.body) = 'object' THEN EXISTS (
                   SELECT 1 FROM jsonb_each_text(n.body) AS kv(key, value)
                    WHERE lower(kv.key) = 'customerid' AND btrim(kv.value) = %s)
               ELSE false END
         ORDER BY n.id
           FOR UPDATE
        """,
        [client_id, int(EventType.REALTIME_TRIGGER), customer_id],
    )
    return [(row[0], json_value(row[1])) for row in cursor.fetchall()]


def _addresses(sources: Iterable[object], address_attributes: set[str]) -> list[str]:
    """The values of the address attributes found in `sources` (attributes, or trigger bodies with their
    nested personalization objects), lower-cased."""
    found: set[str] = set()

    def visit(value: object) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if (
                    str(key).lower() in address_attributes
                    and isinstance(item, str | int)
                    and not isinstance(item, bool)
                    and str(item).strip()
                ):
                    found.add(str(item).strip().lower())
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    for source in sources:
        visit(source)
    return sorted(found)


def _needles(addresses: Iterable[str]) -> list[str]:
    """What to look for in stored payloads and links: each address as stored, without a phone number's
    leading +, and as it appears URL-encoded in a query string."""
    needles: set[str] = set()
    for address in addresses:
        needles.add(address)
        if address.startswith("+") and len(address) > 4:
            needles.add(address[1:])
        needles.add(address.replace("@", "%40").replace("+", "%2b"))
    return sorted(needle for needle in needles if len(needle) >= 3)


def _erase_messages(
    cursor: Any, messages: list[_MessageRow], *, addresses: list[str], now: Any
) -> tuple[int, int]:
    ids: list[int] = []
    statuses: list[str] = []
    errors: list[str] = []
    histories: list[str] = []
    cancelled = 0
    for message_id, status, attributes, error, history in messages:
        secrets = sorted({*personal_values(attributes), *addresses}, key=len, reverse=True)
        new_history = scrub_history(history, secrets)
        new_error = scrub_text(error, secrets)
        new_status = status
        if status in _UNSENT:
            new_status = MessageStatus.CANCELLED.value
            new_error = ERASED_REASON
            new_history.append({"status": new_status, "at": now.isoformat(), "reason": ERASED_REASON})
            cancelled += 1
        if attributes == {} and new_status == status and new_error == error and new_history == history:
            continue  # already holds nothing of theirs (erased before, or purged)
        ids.append(message_id)
        statuses.append(new_status)
        errors.append(new_error)
        histories.append(json.dumps(new_history))
    if ids:
        # A message a worker is sending keeps no purge mark: its outcome is still to be written, and the
        # retention purge scrubs that later.
        cursor.execute(
            """
            UPDATE campaigns_message m
               SET attributes = '{}'::jsonb, status = v.status, error = v.error, history = v.history::jsonb,
                   queued_at = CASE WHEN v.status <> m.status THEN NULL ELSE m.queued_at END,
                   personal_data_purged_at = CASE WHEN v.status = 'sending' THEN NULL ELSE %s END
              FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS v(id, status, error, history)
             WHERE m.id = v.id
            """,
            [now, ids, statuses, errors, histories],
        )
    return len(ids), cancelled


def _erase_delivery_events(
    cursor: Any, *, client_id: int, message_ids: list[int], addresses: list[str], now: Any
) -> int:
    cursor.execute(
        """
        UPDATE delivery_deliveryevent e
           SET raw = '{}'::jsonb, url = '', personal_data_purged_at = %s
         WHERE e.client_id = %s AND (e.raw <> '{}'::jsonb OR e.url <> '')
           AND (e.message_id = ANY(%s)
                OR EXISTS (SELECT 1 FROM unnest(%s::text[]) AS a(needle)
                            WHERE strpos(lower(e.raw::text), a.needle) > 0
                               OR strpos(lower(e.url), a.needle) > 0))
        """,
        [now, client_id, message_ids, _needles(addresses)],
    )
    return int(cursor.rowcount)


def _erase_notifications(
    cursor: Any, *, client_id: int, trigger_ids: list[int], addresses: list[str], now: Any
) -> int:
    cursor.execute(
        """
        SELECT n.id, n.body FROM optimove_notification n
         WHERE n.client_id = %s
           AND (n.id = ANY(%s)
                OR EXISTS (SELECT 1 FROM unnest(%s::text[]) AS a(needle)
                            WHERE strpos(lower(n.body::text), a.needle) > 0))
         ORDER BY n.id
           FOR UPDATE
        """,
        [client_id, trigger_ids, _needles(addresses)],
    )
    changed = [
        (notification_id, kept)
        for notification_id, body in ((row[0], json_value(row[1])) for row in cursor.fetchall())
        if (kept := notification_kept_fields(body)) != body
    ]
    if changed:
        cursor.execute(
            """
            UPDATE optimove_notification n SET body = v.body::jsonb, personal_data_purged_at = %s
              FROM unnest(%s::bigint[], %s::text[]) AS v(id, body)
             WHERE n.id = v.id
            """,
            [now, [row[0] for row in changed], [json.dumps(row[1]) for row in changed]],
        )
    return len(changed)


def _erase_consent(*, client: Client, customer_id: str) -> dict[str, int]:
    subscriptions = list(
        Subscription.objects.select_for_update().filter(client=client, customer_id=customer_id).order_by("pk")
    )
    opted_out = [s.pk for s in subscriptions if s.status == ConsentStatus.OPTED_OUT]
    others = [s.pk for s in subscriptions if s.status != ConsentStatus.OPTED_OUT]
    # Of an opt-out, only its opt-out rows prove anything; a subscription in any other state proves nothing.
    changes_deleted = (
        SubscriptionChange.objects.filter(subscription_id__in=opted_out)
        .exclude(status=ConsentStatus.OPTED_OUT)
        .delete()[0]
    )
    changes_deleted += SubscriptionChange.objects.filter(subscription_id__in=others).delete()[0]
    details_blanked = (
        SubscriptionChange.objects.filter(subscription_id__in=opted_out, status=ConsentStatus.OPTED_OUT)
        .exclude(detail="")
        .update(detail="")
    )
    subscriptions_deleted = (
        Subscription.objects.filter(pk__in=others).delete()[1].get(Subscription._meta.label, 0)
    )
    return {
        "subscriptions_deleted": subscriptions_deleted,
        "consent_changes_deleted": changes_deleted,
        "consent_details_blanked": details_blanked,
        "opt_outs_kept": len(opted_out),
    }
