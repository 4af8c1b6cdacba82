"""UpdateCustomerAttributes callbacks: the signed URL each call carries, and recording what Optimove
answers on it.

Optimove answers each UpdateCustomerAttributes call later, by POSTing `{"isSuccess", "requestId",
"errors": [...]}` to the call's CallbackURL. The URL names our ConsentSyncCall row in a token signed
with the platform's secret key (never the client's API key), in the query string: our request log
writes the path only, so the token stays out of the logs, as the listener token does. The shape of
`errors` is not documented: strings like "CustomerID 13482: unknown attribute 'Consent'" (what the
sandbox sends) and objects naming a customer are understood; anything else is kept as it came, with
a note, and a rejection that names no customer.

A rejected customer's state is put back to "not accepted" (the version sent, only if it is still the
current one) with the reason in `sync_error`; the periodic sync leaves rows with an error alone, so a
state Optimove keeps refusing is not pushed every minute. `optimove_sync_subscriptions` (or the
admin's "push again" action, or the customer's next change) sends it again.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from apps.subscriptions.models import Subscription
from apps.subscriptions.models_sync import ConsentSyncCall, ConsentSyncCallState, ConsentSyncRejection

logger = logging.getLogger(__name__)

CALLBACK_URL_NAME = "subscriptions-attributes-callback"
_TOKEN_SALT = "apps.subscriptions.attributes-callback"  # noqa: S105 (a namespace, not a secret)
REASON_MAX_CHARS = 500
# What one callback may record: a call carries at most OPTIMOVE_UPDATE_ATTRIBUTES_BATCH_SIZE customers
# (1,000 by default), each with a handful of errors at most.
MAX_REJECTIONS_PER_CALLBACK = 10_000
_STORED_BODY_MAX_CHARS = 64 * 1024
_CUSTOMER_IN_TEXT = re.compile(r"(?i)\bcustomer\s*id\b\W*([^\s:,;'\"]+)")
_CUSTOMER_KEYS = ("customerid", "customer_id", "customer", "id")
_REASON_KEYS = ("error", "errormessage", "error_message", "message", "reason", "description", "details")


# ---------------------------------------------------------------------------------------------------
# The signed URL
# ---------------------------------------------------------------------------------------------------


def attribute_callback_token(*, call_id: int) -> str:
    return signing.dumps({"call": call_id}, salt=_TOKEN_SALT)


def attribute_callback_call_id(*, token: str) -> int | None:
    """The call a token names; None when it was not signed by us (checked in constant time)."""
    if not token:
        return None
    try:
        data = signing.loads(token, salt=_TOKEN_SALT)
    except signing.BadSignature:
        return None
    call_id = data.get("call") if isinstance(data, dict) else None
    if isinstance(call_id, bool) or not isinstance(call_id, int):
        return None
    return call_id


def attribute_callback_url(*, call_id: int) -> str:
    query = urlencode({"token": attribute_callback_token(call_id=call_id)})
    return f"{settings.PUBLIC_BASE_URL}{reverse(CALLBACK_URL_NAME)}?{query}"


# ---------------------------------------------------------------------------------------------------
# Reading a callback body
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackError:
    customer_id: str  # "" when the error names no customer
    reason: str


@dataclass(frozen=True)
class ParsedCallback:
    success: bool | None
    request_id: str
    errors: tuple[CallbackError, ...]
    notes: tuple[str, ...]  # what did not have the expected shape


def attribute_callback_parse(raw: bytes) -> tuple[Any, ParsedCallback]:
    """The decoded body (None when it is not JSON) and what it says. Never raises."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, ParsedCallback(None, "", (), ("the body is not JSON",))
    if not isinstance(body, dict):
        return body, ParsedCallback(
            None, "", (), (f"the body is a JSON {type(body).__name__}, not an object",)
        )
    fields = {str(key).lower(): value for key, value in body.items()}
    notes: list[str] = []

    success = fields.get("issuccess")
    if isinstance(success, str) and success.lower() in ("true", "false"):
        success = success.lower() == "true"
    if not isinstance(success, bool):
        notes.append("isSuccess is missing or not true/false")
        success = None

    request_id = fields.get("requestid")
    request_id_text = str(request_id)[:100] if isinstance(request_id, str | int) else ""

    raw_errors = fields.get("errors")
    if raw_errors is None:
        items: list[Any] = []
    elif isinstance(raw_errors, list):
        items = raw_errors
    else:
        notes.append(f"errors is a {type(raw_errors).__name__}, not a list")
        items = [raw_errors]
    if len(items) > MAX_REJECTIONS_PER_CALLBACK:
        notes.append(f"only the first {MAX_REJECTIONS_PER_CALLBACK} of {len(items)} errors were recorded")
        items = items[:MAX_REJECTIONS_PER_CALLBACK]
    errors = [_error_of(item) for item in items]
    if success is False and not errors:
        errors.append(CallbackError("", "Optimove reported the update failed without naming customers"))
    return body, ParsedCallback(success, request_id_text, tuple(errors), tuple(notes))


def _error_of(item: Any) -> CallbackError:
    if isinstance(item, str):
        match = _CUSTOMER_IN_TEXT.search(item)
        return CallbackError(match.group(1) if match else "", item[:REASON_MAX_CHARS])
    if isinstance(item, dict):
        fields = {str(key).lower(): value for key, value in item.items()}
        customer = next((fields[key] for key in _CUSTOMER_KEYS if isinstance(fields.get(key), str | int)), "")
        reason = next((fields[key] for key in _REASON_KEYS if isinstance(fields.get(key), str)), None)
        text = reason if reason is not None else json.dumps(item, sort_keys=True, default=str)
        customer_text = "" if isinstance(customer, bool) else str(customer).strip()[:128]
        return CallbackError(customer_text, text[:REASON_MAX_CHARS])
    return CallbackError("", json.dumps(item, default=str)[:REASON_MAX_CHARS])


def _storable(body: Any, raw: bytes) -> Any:
    if body is None:
        return {"unreadable": raw[:2000].decode("utf-8", errors="replace")}
    text = json.dumps(body, default=str)
    if len(text) <= _STORED_BODY_MAX_CHARS:
        return body
    return {"cut_to_chars": _STORED_BODY_MAX_CHARS, "head": text[:_STORED_BODY_MAX_CHARS]}


# ---------------------------------------------------------------------------------------------------
# Recording it
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackOutcome:
    found: bool  # False: the (correctly signed) call no longer exists
    repeated: bool = False  # a callback for this call was recorded before: nothing new was recorded
    rejected: int = 0
    reopened: int = 0  # subscriptions put back to "not accepted" by this callback


def attribute_callback_record(*, call_id: int, raw: bytes, now: datetime | None = None) -> CallbackOutcome:
    """Records Optimove's answer to one UpdateCustomerAttributes call: the callback on the call row,
    one ConsentSyncRejection per error, and (once the call's acceptance is recorded) the rejected
    customers' states re-opened. A repeat of the callback records nothing more."""
    now = now or timezone.now()
    body, parsed = attribute_callback_parse(raw)
    with transaction.atomic():
        # The sync records the call's acceptance under the same row lock: whichever comes second sees
        # what the other did, so a callback that overtakes the call's answer is not lost.
        call = ConsentSyncCall.objects.select_for_update().filter(pk=call_id).first()
        if call is None:
            return CallbackOutcome(found=False)
        if call.callback_received_at is not None:
            return CallbackOutcome(found=True, repeated=True)
        named = {error.customer_id for error in parsed.errors if error.customer_id}
        subscription_ids = dict(
            Subscription.objects.filter(channel_id=call.channel_id, customer_id__in=named).values_list(
                "customer_id", "pk"
            )
        )
        ConsentSyncRejection.objects.bulk_create(
            [
                ConsentSyncRejection(
                    client_id=call.client_id,
                    channel_id=call.channel_id,
                    subscription_id=subscription_ids.get(error.customer_id),
                    call=call,
                    customer_id=error.customer_id,
                    reason=error.reason,
                    received_at=now,
                )
                for error in parsed.errors
            ],
            batch_size=1000,
        )
        call.callback_received_at = now
        call.callback_success = parsed.success
        call.callback_request_id = parsed.request_id
        call.callback_body = _storable(body, raw)
        call.callback_note = "; ".join(parsed.notes)[:500]
        call.rejected = len(parsed.errors)
        call.save(
            update_fields=[
                "callback_received_at",
                "callback_success",
                "callback_request_id",
                "callback_body",
                "callback_note",
                "rejected",
            ]
        )
        reopened = 0
        if call.state == ConsentSyncCallState.ACCEPTED:
            reopened = rejections_reopen(call=call)
    if parsed.notes:
        logger.warning(
            "consent sync: callback of call %s had an unexpected shape: %s",
            call_id,
            "; ".join(parsed.notes),
            extra={"consent_sync_call": call_id},
        )
    return CallbackOutcome(found=True, rejected=len(parsed.errors), reopened=reopened)


_REOPEN = """
UPDATE subscriptions_subscription AS s
SET synced_version = v.version - 1, sync_error = v.reason
FROM unnest(%(customer_ids)s::text[], %(versions)s::int[], %(reasons)s::text[])
     AS v(customer_id, version, reason)
WHERE s.channel_id = %(channel_id)s AND s.customer_id = v.customer_id
  AND s.sync_version = v.version AND s.synced_version = v.version
"""


def rejections_reopen(*, call: ConsentSyncCall) -> int:
    """Puts each customer the call's callback rejected back to "not accepted", with the reason, when
    the version the call sent is still the current and accepted one (a later change is pushed anyway).
    Call it inside a transaction holding the call row's lock, once both the call's acceptance and its
    callback are recorded."""
    reasons: dict[str, str] = {}
    for customer_id, reason in (
        ConsentSyncRejection.objects.filter(call=call)
        .exclude(customer_id="")
        .values_list("customer_id", "reason")
    ):
        if customer_id in call.versions and customer_id not in reasons:
            reasons[customer_id] = (
                f"Optimove rejected this state (UpdateCustomerAttributes callback): {reason}"[
                    :REASON_MAX_CHARS
                ]
            )
    if not reasons:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            _REOPEN,
            {
                "customer_ids": list(reasons),
                "versions": [int(call.versions[customer_id]) for customer_id in reasons],
                "reasons": list(reasons.values()),
                "channel_id": call.channel_id,
            },
        )
        return cursor.rowcount
