"""Provider callbacks turned into `ProviderEvent`s: django-anymail's tracking events, Twilio's status
callbacks and the delivery receipts of our signed webhook channel; and Twilio's incoming messages read
for opt-out keywords. Authentication helpers live here too; the views only call them."""

from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, QueryDict
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views import View

from apps.clients.models import Channel
from apps.core.jsonsafe import JsonBodyInvalid, json_body_load, unstorable_problem
from apps.delivery.models import DeliveryEventType
from apps.delivery.services import ProviderEvent
from apps.delivery.tracking import public_url
from apps.subscriptions.models import ConsentStatus
from apps.subscriptions.unsubscribe import SmsKeyword, sms_keyword_parse

MAX_RECEIPTS_PER_CALL = 500
MAX_ID_LENGTH = 64  # an idempotency key is at most 64 characters
# Clocks differ a little; a receipt from further in the future than this is a mistake.
FUTURE_TOLERANCE = timedelta(minutes=10)


class ProviderPayloadInvalid(ValueError):
    """An authenticated callback whose body we cannot read; the message says what is wrong."""


class CallbackNotConfigured(Exception):
    """The channel lacks what authenticating its provider's callbacks needs; names the setting."""


# django-anymail
# ------------------------------------------------------------------------------

# anymail's normalised event types to ours. Others (queued, sent, deferred, autoresponded,
# subscribed, unknown) say nothing about delivery or engagement and are acknowledged, not stored.
ANYMAIL_EVENT_TYPES: dict[str, DeliveryEventType] = {
    "delivered": DeliveryEventType.DELIVERED,
    "opened": DeliveryEventType.OPENED,
    "clicked": DeliveryEventType.CLICKED,
    "bounced": DeliveryEventType.BOUNCED,
    "complained": DeliveryEventType.COMPLAINED,
    "unsubscribed": DeliveryEventType.UNSUBSCRIBED,
    "rejected": DeliveryEventType.UNDELIVERED,
    "failed": DeliveryEventType.UNDELIVERED,
}


@dataclass
class AnymailCollected:
    """The events anymail's view signalled during one request to our wrapper view."""

    esp: str
    events: list[tuple[ProviderEvent, int | None]] = field(default_factory=list)
    ignored: int = 0


# Set by the wrapper view for the length of one request: the signal carries no request, and the
# channel the events belong to comes from our URL.
_collecting: ContextVar[AnymailCollected | None] = ContextVar("delivery_anymail_collecting", default=None)


@contextlib.contextmanager
def anymail_events_collected(*, esp: str) -> Iterator[AnymailCollected]:
    collected = AnymailCollected(esp=esp)
    token = _collecting.set(collected)
    try:
        yield collected
    finally:
        _collecting.reset(token)


def anymail_tracking_received(sender: object, event: Any, esp_name: str, **kwargs: Any) -> None:
    """The one receiver of anymail's `tracking` signal (connected in DeliveryConfig.ready). It only
    collects: the wrapper view stores what was collected once anymail's view has finished."""
    collected = _collecting.get()
    if collected is None:
        # anymail's own URLs are not routed, so this only happens if someone sends the signal by hand.
        return
    mapped = anymail_event_map(event, esp=collected.esp)
    if mapped is None:
        collected.ignored += 1
    else:
        collected.events.append(mapped)


def anymail_event_map(event: Any, *, esp: str) -> tuple[ProviderEvent, int | None] | None:
    """An `AnymailTrackingEvent` as our ProviderEvent and our own message id (from the metadata the
    email backend attached), or None for event types we do not record. Raises ProviderPayloadInvalid
    for an event PostgreSQL could not store (the wrapper view answers 400 and stores none of the call's
    events)."""
    kind = ANYMAIL_EVENT_TYPES.get(str(getattr(event, "event_type", "") or ""))
    if kind is None:
        return None
    occurred = getattr(event, "timestamp", None)
    if not isinstance(occurred, datetime):
        occurred = timezone.now()
    elif timezone.is_naive(occurred):
        occurred = timezone.make_aware(occurred, UTC)
    try:
        occurred = occurred.astimezone(UTC)
    except OverflowError:  # year 1 at +05:00 (or 9999-12-31 at -05:00) leaves the calendar in UTC
        raise ProviderPayloadInvalid(
            "the event's time is outside the calendar once converted to UTC"
        ) from None
    metadata = getattr(event, "metadata", None)
    our_id = _message_pk(metadata.get("message_id")) if isinstance(metadata, Mapping) else None
    raw = _jsonable(getattr(event, "esp_event", None))
    provider_message_id = str(getattr(event, "message_id", None) or "")
    url = str(getattr(event, "click_url", None) or "")
    provider_event_id = _stable_event_id(esp, event, raw)
    # Mostly read from the raw event (checked in _jsonable), but anymail may derive them otherwise.
    problem = unstorable_problem(
        {"message_id": provider_message_id, "click_url": url, "event_id": provider_event_id}
    )
    if problem:
        raise ProviderPayloadInvalid(problem)
    provider_event = ProviderEvent(
        provider=f"anymail:{esp}",
        provider_message_id=provider_message_id,
        event=kind,
        occurred_at=occurred,
        provider_event_id=provider_event_id,
        url=url,
        raw=raw,
    )
    return provider_event, our_id


def _stable_event_id(esp: str, event: Any, raw: dict[str, Any]) -> str:
    # anymail gives Mailgun's signature token as the event id; the token is per request, while the
    # event's own id stays the same when Mailgun retries, so that is what finds a repeat.
    if esp == "mailgun":
        event_data = raw.get("event-data")
        if isinstance(event_data, Mapping) and isinstance(event_data.get("id"), str) and event_data["id"]:
            return str(event_data["id"])
    return str(getattr(event, "event_id", None) or "")


def _message_pk(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
        return number if 0 < number < 2**63 else None
    return None


def _jsonable(value: object) -> dict[str, Any]:
    """The provider's raw event as a JSON object for the admin (a form post becomes its fields).
    Raises ProviderPayloadInvalid for what the JSON column cannot store (checked before json.dumps,
    which a deep value would exhaust)."""
    if isinstance(value, QueryDict):
        value = {key: values[0] if len(values) == 1 else values for key, values in value.lists()}
    problem = unstorable_problem(value) if isinstance(value, Mapping | list) else None
    if problem:
        raise ProviderPayloadInvalid(problem)
    if isinstance(value, Mapping):
        loaded = json.loads(json.dumps(value, default=str))
        return loaded if isinstance(loaded, dict) else {}
    if isinstance(value, list):
        return {"events": json.loads(json.dumps(value, default=str))}
    return {}


def anymail_tracking_view_class(esp: str) -> type[View] | None:
    """anymail's own tracking webhook view for the ESP (from anymail's URL table, so every ESP anymail
    supports is supported here), or None."""
    from anymail.urls import urlpatterns

    names = {f"{esp}_tracking_webhook"}
    for pattern in urlpatterns:
        if isinstance(pattern, URLPattern) and pattern.name in names:
            view_class = getattr(pattern.callback, "view_class", None)
            if isinstance(view_class, type) and issubclass(view_class, View):
                return view_class
    return None


def anymail_tracking_view(*, view_class: type[View], channel: Channel) -> View:
    """anymail's view configured for this channel: its settings are the channel's secrets (and option
    esp_settings), under anymail's own names (webhook_secret for basic auth, webhook_signing_key for
    Mailgun, signing_secret for Resend and MailerSend, ...). Raises CallbackNotConfigured when the
    channel's webhooks could not be authenticated."""
    from anymail.exceptions import AnymailConfigurationError

    options = channel.provider_options or {}
    secrets = channel.provider_secrets or {}
    esp_settings = options.get("esp_settings")
    kwargs: dict[str, Any] = {**(esp_settings if isinstance(esp_settings, Mapping) else {}), **secrets}
    # Never anything that would replace one of the view's methods or internals.
    kwargs = {
        key: value
        for key, value in kwargs.items()
        if isinstance(key, str) and not key.startswith("_") and not callable(getattr(view_class, key, None))
    }
    # Explicit, so a global ANYMAIL setting never stands in for a channel's missing secret.
    kwargs.setdefault("webhook_secret", [])
    try:
        with warnings.catch_warnings():
            # Insecure-webhook and deprecation warnings: we refuse unsecured channels ourselves below.
            warnings.simplefilter("ignore")
            view = view_class(**kwargs)
    except AnymailConfigurationError as exc:
        raise CallbackNotConfigured(_anymail_setting_error(str(exc), channel.provider)) from None
    except (TypeError, ValueError) as exc:
        raise CallbackNotConfigured(
            f"{channel.provider} webhook settings cannot be used ({type(exc).__name__})"
        ) from None
    if getattr(view, "warn_if_no_basic_auth", False) and not getattr(view, "basic_auth", None):
        raise CallbackNotConfigured(
            f"{channel.provider} webhooks carry no signature: the channel needs secret webhook_secret "
            "('user:password', given to the ESP in the webhook URL as https://user:password@host/...)"
        )
    return view


def _anymail_setting_error(text: str, provider: str) -> str:
    missing = re.search(r"\{'([A-Z0-9_]+)': \.\.\.\}", text)
    esp = provider.partition(":")[2]
    if missing:
        setting = missing.group(1).lower().removeprefix(f"{esp}_")
        return f"{provider} webhooks need secret {setting} to check their signature"
    return f"{provider} webhook settings are incomplete"


# Twilio
# ------------------------------------------------------------------------------

# Twilio's MessageStatus values we record; queued, accepted, scheduled, sending and sent are steps
# before delivery that the message's own status already covers.
TWILIO_STATUSES: dict[str, DeliveryEventType] = {
    "delivered": DeliveryEventType.DELIVERED,
    "undelivered": DeliveryEventType.UNDELIVERED,
    "failed": DeliveryEventType.UNDELIVERED,
    "read": DeliveryEventType.OPENED,  # WhatsApp and RCS read receipts
}
TWILIO_RAW_FIELDS = (
    "MessageSid",
    "MessageStatus",
    "ErrorCode",
    "AccountSid",
    "MessagingServiceSid",
    "ApiVersion",
    "RawDlrDoneDate",
)


def twilio_signature_valid(*, request: HttpRequest, secrets: Mapping[str, Any]) -> bool:
    """Twilio's X-Twilio-Signature over the URL it called and the posted fields, checked with the
    channel's auth token (or its webhook shared key, when Twilio says it signed with one)."""
    from twilio.request_validator import (
        SIGNATURE_SETTINGS_HEADER,
        RequestValidator,
        get_signature_algorithm,
    )

    signature = request.headers.get("X-Twilio-Signature", "")
    settings_header = request.headers.get(SIGNATURE_SETTINGS_HEADER, "")
    token = secrets.get("webhook_shared_key") if settings_header else None
    token = token or secrets.get("auth_token")
    if not signature or not isinstance(token, str) or not token:
        return False
    validator = RequestValidator(token)
    algorithm = get_signature_algorithm(settings_header)
    # Twilio signs the URL we gave it (built from PUBLIC_BASE_URL); behind a proxy the URL Django
    # sees may differ in scheme or host, so both are tried.
    candidates = dict.fromkeys(
        [f"{settings.PUBLIC_BASE_URL}{request.get_full_path()}", request.build_absolute_uri()]
    )
    return any(validator.validate(url, request.POST, signature, algorithm) for url in candidates)


def _twilio_fields_check(fields: QueryDict) -> None:
    """Form fields can carry NUL (%00), which no text or JSON column holds."""
    problem = unstorable_problem(dict(fields.lists()))
    if problem:
        raise ProviderPayloadInvalid(problem)


def twilio_status_event(fields: QueryDict) -> ProviderEvent | None:
    """The status callback as a ProviderEvent, or None for a status we do not record."""
    _twilio_fields_check(fields)
    sid = fields.get("MessageSid") or fields.get("SmsSid") or ""
    status = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").lower()
    if not sid or not status:
        raise ProviderPayloadInvalid("a Twilio status callback needs MessageSid and MessageStatus")
    kind = TWILIO_STATUSES.get(status)
    if kind is None:
        return None
    return ProviderEvent(
        provider="twilio",
        provider_message_id=sid[:255],
        event=kind,
        # Twilio's callback has no time of its own (RawDlrDoneDate has no time zone): the time it arrived.
        occurred_at=timezone.now(),
        # Each status happens once per message, so the pair finds a repeated callback.
        provider_event_id=f"{sid}:{status}",
        # Only the fields that matter: To and From are phone numbers and stay out of the table.
        raw={key: fields[key] for key in TWILIO_RAW_FIELDS if key in fields},
    )


# Twilio incoming messages (replies such as STOP)
# ------------------------------------------------------------------------------

# Twilio's Advanced Opt-Out reports the keywords it recognised (the client's own ones included) in
# OptOutType; HELP asks for nothing here.
TWILIO_OPT_OUT_TYPES: dict[str, str] = {"STOP": ConsentStatus.OPTED_OUT, "START": ConsentStatus.OPTED_IN}
# What Twilio needs back from an incoming-message webhook: 200 and TwiML; empty means "send no reply".
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def twilio_inbound_url(*, channel: Channel) -> str:
    """The URL to set as the channel's "a message comes in" webhook at Twilio (on its number or
    messaging service): Twilio cannot be told per message, unlike the status callback."""
    return public_url(
        reverse(
            "delivery-twilio-inbound",
            kwargs={"client_slug": channel.client.slug, "channel_id": channel.optimove_channel_id},
        )
    )


@dataclass(frozen=True, slots=True)
class TwilioInbound:
    sender: str  # the customer's phone number: used to find them, never logged or stored
    keyword: SmsKeyword | None  # None: a reply that asks for no change


def twilio_inbound_parse(fields: QueryDict) -> TwilioInbound:
    """An incoming message's sender and the opt-out or opt-in keyword it carries. Twilio's OptOutType
    wins over our own reading of the body: it also covers keywords the client set up at Twilio."""
    _twilio_fields_check(fields)
    sender = (fields.get("From") or "").strip()
    if not sender or not (fields.get("MessageSid") or fields.get("SmsSid")):
        raise ProviderPayloadInvalid("a Twilio incoming message needs From and MessageSid")
    from_body = sms_keyword_parse(fields.get("Body") or "")
    opt_out_type = (fields.get("OptOutType") or "").strip().upper()
    status = TWILIO_OPT_OUT_TYPES.get(opt_out_type)
    if status is None or (from_body is not None and from_body.status == status):
        return TwilioInbound(sender=sender, keyword=from_body)
    # A keyword of the client's own (or in another language): the evidence is Twilio's verdict, not the
    # reply's text, which could hold anything.
    return TwilioInbound(sender=sender, keyword=SmsKeyword(status, f"OptOutType={opt_out_type}"))


# Our signed webhook channel's receipts
# ------------------------------------------------------------------------------


def webhook_receipts_parse(body: bytes) -> list[ProviderEvent]:
    """The receipts in a receipt body (one object, or a list of them), all checked before any is used;
    each event's `provider_message_id` is the Idempotency-Key of the message it is about. Raises
    ProviderPayloadInvalid naming the first problem."""
    try:
        data: Any = json_body_load(body)
    except JsonBodyInvalid as exc:
        raise ProviderPayloadInvalid(str(exc)) from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ProviderPayloadInvalid("the list of receipts is empty")
    if len(items) > MAX_RECEIPTS_PER_CALL:
        raise ProviderPayloadInvalid(f"at most {MAX_RECEIPTS_PER_CALL} receipts per call")
    return [_receipt(item, index if isinstance(data, list) else None) for index, item in enumerate(items)]


def _receipt(item: Any, index: int | None) -> ProviderEvent:
    where = f"receipt {index}: " if index is not None else ""
    if not isinstance(item, dict):
        raise ProviderPayloadInvalid(f"{where}a receipt must be a JSON object")
    # The whole receipt is kept as the event's raw JSON, and id and url land in text columns.
    problem = unstorable_problem(item)
    if problem:
        raise ProviderPayloadInvalid(f"{where}{problem}")
    key = item.get("id")
    if not isinstance(key, str) or not key or len(key) > MAX_ID_LENGTH:
        raise ProviderPayloadInvalid(
            f"{where}id must be the Idempotency-Key of the message "
            f"(a string of 1 to {MAX_ID_LENGTH} characters)"
        )
    choices = [value for value, _ in DeliveryEventType.choices]
    event = item.get("event")
    if event not in choices:
        raise ProviderPayloadInvalid(f"{where}event must be one of {', '.join(choices)}")
    raw_time = item.get("occurred_at")
    try:
        occurred = parse_datetime(raw_time) if isinstance(raw_time, str) else None
    except ValueError:  # well-formed but no such date, e.g. month 13
        occurred = None
    if occurred is None:
        raise ProviderPayloadInvalid(
            f"{where}occurred_at must be an ISO 8601 time, e.g. 2026-03-02T10:00:00Z"
        )
    if timezone.is_naive(occurred):
        raise ProviderPayloadInvalid(f"{where}occurred_at needs a time zone (Z or +hh:mm)")
    try:
        occurred = occurred.astimezone(UTC)
    except OverflowError:  # year 1 at +05:00 leaves the calendar in UTC
        raise ProviderPayloadInvalid(
            f"{where}occurred_at is outside the calendar once converted to UTC"
        ) from None
    if occurred > timezone.now() + FUTURE_TOLERANCE:
        raise ProviderPayloadInvalid(f"{where}occurred_at is in the future")
    url = item.get("url", "")
    if not isinstance(url, str):
        raise ProviderPayloadInvalid(f"{where}url must be a string")
    event_id = item.get("event_id", "")
    if not isinstance(event_id, str) or len(event_id) > 200:
        raise ProviderPayloadInvalid(f"{where}event_id must be a string of at most 200 characters")
    return ProviderEvent(
        provider="webhook",
        provider_message_id=key,
        event=DeliveryEventType(event),
        occurred_at=occurred,
        provider_event_id=f"{key}:{event_id}" if event_id else "",
        url=url,
        raw=item,
    )
