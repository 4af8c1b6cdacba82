"""Optimove's listener notifications: tolerant parsing and what each event type does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from apps.campaigns import services as campaigns
from apps.campaigns.services import RealtimeTrigger, TriggerReceipt
from apps.clients.models import Channel, Client
from apps.core.jsonsafe import MAX_JSON_DEPTH, unstorable_problem
from apps.core.logging import REDACTED
from apps.core.rows import row_insert, row_insert_values, row_inserted
from apps.optimove.models import Notification
from apps.optimove.types import EventType

SCHEDULED_START_TYPES = {EventType.CAMPAIGN_PROCESSED, EventType.CAMPAIGN_EXECUTED_ON_CHANNEL}
NEEDS_CAMPAIGN = SCHEDULED_START_TYPES | {
    EventType.CAMPAIGN_CANCELLED,
    EventType.CONDITIONAL_PROMOTION,
    EventType.REALTIME_TRIGGER,
}
# A trigger's own fields; every other field is a trigger-event parameter and becomes a merge attribute.
TRIGGER_FIELDS = frozenset(
    {"eventtypeid", "timestamp", "campaignid", "channelid", "templateid", "customerid", "promocode"}
)
MAX_CUSTOMER_ID_LENGTH = 128
# The columns the ids land in: EventTypeID an integer, the others bigints. A larger number is refused
# here rather than failing the insert.
MAX_EVENT_TYPE_ID = 2**31 - 1
MAX_ID = 2**63 - 1
# A notification is a flat object with the odd personalization object inside; anything much deeper is
# refused (apps.core.jsonsafe).
MAX_BODY_DEPTH = MAX_JSON_DEPTH


class NotificationInvalid(ValueError):
    """The body cannot be a notification; the message says why, for a 400."""


@dataclass(frozen=True, slots=True)
class ParsedNotification:
    event_type_id: int
    campaign_id: int | None
    channel_id: int | None
    clearance_required_by: datetime | None
    fields: dict[str, Any]  # every field, keys lower-cased
    body: dict[str, Any]  # as received, but its secrets (SECRET_FIELDS) redacted: this is what is stored
    trigger: RealtimeTrigger | None = None


def parse_optimove_time(value: Any, *, field: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise NotificationInvalid(f"{field} must be a date and time like '2026-03-02 12:00:00'")
    text = value.strip().replace("T", " ").removesuffix("Z")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)  # Optimove's times are UTC
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(value.strip())
        # Converting 0001-01-01 at +01:00 (or 9999-12-31 at -01:00) to UTC leaves the calendar.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise NotificationInvalid(f"{field} must be a date and time like '2026-03-02 12:00:00'") from None


def _ascii_int(text: str) -> int | None:
    """An optionally signed run of ASCII digits, else None. str.isdigit() also accepts digits int()
    refuses ("²") or reads as another script's numerals, and int() refuses over 4300 digits."""
    digits = text.removeprefix("-")
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > 4000:
        return None
    return int(text)


def _int_field(fields: dict[str, Any], name: str, *, required: bool, maximum: int = MAX_ID) -> int | None:
    value = fields.get(name.lower())
    if value is None or value == "":
        if required:
            raise NotificationInvalid(f"{name} is required")
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        number = _ascii_int(value.strip())
    if number is None:
        raise NotificationInvalid(f"{name} must be an integer")
    if not -maximum - 1 <= number <= maximum:
        raise NotificationInvalid(f"{name} is out of range (at most {maximum})")
    return number


# Fields (lower-cased) whose values are secrets. EventTypeID 14 (the file-based flow, not acted on here)
# carries the key to its customer files; the stored body keeps that it was there, not the key.
SECRET_FIELDS = frozenset({"decryptionkey"})


def _secrets_redacted(body: dict[str, Any]) -> dict[str, Any]:
    if not any(str(key).lower() in SECRET_FIELDS for key in body):
        return body
    return {key: REDACTED if str(key).lower() in SECRET_FIELDS else value for key, value in body.items()}


def notification_parse(body: Any) -> ParsedNotification:
    """Field names in any case (Optimove mixes PascalCase and camelCase)."""
    if not isinstance(body, dict):
        raise NotificationInvalid("the body must be a JSON object")
    problem = unstorable_problem(body, max_depth=MAX_BODY_DEPTH)
    if problem:
        raise NotificationInvalid(problem)
    fields = {str(key).lower(): value for key, value in body.items()}
    event_type_id = _int_field(fields, "EventTypeID", required=True, maximum=MAX_EVENT_TYPE_ID)
    assert event_type_id is not None
    campaign_id = _int_field(fields, "CampaignID", required=event_type_id in NEEDS_CAMPAIGN)
    channel_id = _int_field(fields, "ChannelID", required=False)
    clearance = None
    if event_type_id == EventType.CONDITIONAL_PROMOTION:
        clearance = parse_optimove_time(fields.get("clearancerequiredby"), field="ClearanceRequiredBy")
    trigger = None
    if event_type_id == EventType.REALTIME_TRIGGER:
        assert campaign_id is not None
        trigger = _parse_trigger(body, fields, campaign_id=campaign_id)
    return ParsedNotification(
        event_type_id, campaign_id, channel_id, clearance, fields, _secrets_redacted(body), trigger
    )


def _parse_trigger(body: dict[str, Any], fields: dict[str, Any], *, campaign_id: int) -> RealtimeTrigger:
    """EventTypeID 11, camelCase or PascalCase. The merge attributes are the trigger event's parameters
    (any other top-level field, and the fields of any object such as `personalization`), with the
    personalization object winning a clash, plus `promo_code` (a string, or a list joined with commas)."""
    template_id = _int_field(fields, "TemplateID", required=True)
    assert template_id is not None
    customer_id = fields.get("customerid")
    if isinstance(customer_id, int) and not isinstance(customer_id, bool):
        customer_id = str(customer_id)
    if not isinstance(customer_id, str) or not customer_id.strip():
        raise NotificationInvalid("CustomerID is required")
    if len(customer_id.strip()) > MAX_CUSTOMER_ID_LENGTH:
        raise NotificationInvalid(f"CustomerID is longer than {MAX_CUSTOMER_ID_LENGTH} characters")
    timestamp = parse_optimove_time(fields.get("timestamp"), field="TimeStamp")
    parameters: dict[str, str] = {}
    objects: list[tuple[str, dict[str, Any]]] = []
    for key, value in body.items():
        if str(key).lower() in TRIGGER_FIELDS:
            continue
        if isinstance(value, dict):
            objects.append((str(key), value))
        else:
            parameters[str(key)] = _attribute_text(value)
    # Personalization last, so a marketer's chosen field wins over an event parameter of the same name.
    objects.sort(key=lambda item: item[0].lower() == "personalization")
    for _, values in objects:
        parameters.update({str(k): _attribute_text(v) for k, v in values.items()})
    promo = fields.get("promocode")
    if promo is not None:
        if isinstance(promo, list):
            parameters["promo_code"] = ",".join(_attribute_text(p) for p in promo)
        elif isinstance(promo, str | int) and not isinstance(promo, bool):
            parameters["promo_code"] = str(promo)
        else:
            raise NotificationInvalid("PromoCode must be a string or a list of strings")
    return RealtimeTrigger(
        campaign_id=campaign_id,
        template_id=template_id,
        customer_id=customer_id.strip(),
        timestamp=timestamp,
        attributes=parameters,
    )


def _attribute_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def url_channel_id(url_channel: str) -> int | None:
    """The ChannelID a listener URL names (`.../listener/<client>/<channel>/`), or None ("client")."""
    channel_id = _ascii_int(url_channel)
    return channel_id if channel_id is not None and 0 <= channel_id <= MAX_ID else None


def notification_receive(
    *, client: Client, channel: Channel | None, url_channel: str, parsed: ParsedNotification
) -> Notification:
    """Records the notification and acts on it; `channel` is the client's channel the notification
    names (its ChannelID, else the URL's), if any. Raises NotificationInvalid (nothing recorded) for a
    bad URL. Paging and cancellation work is enqueued after commit; this answers in milliseconds."""
    if "\x00" in url_channel:  # %00 in the URL; the text column cannot hold it
        raise NotificationInvalid("the channel in the URL holds a NUL character")
    notification = Notification(
        client=client,
        channel=channel,
        url_channel=url_channel[:32],
        event_type_id=parsed.event_type_id,
        campaign_id=parsed.campaign_id,
        body=parsed.body,
    )
    if parsed.trigger is not None:
        _trigger_receive(notification, client=client, channel=channel, trigger=parsed.trigger)
        return notification
    with transaction.atomic():
        _act(notification, client=client, channel=channel, parsed=parsed)
        row_insert(notification)
    return notification


NOT_ACTED = "not acted on: "
# Filled in by the trigger's statement (campaigns.TriggerReceipt).
_RECEIPT_FILLED = ("run", "acted", "outcome")


def _trigger_receive(
    notification: Notification, *, client: Client, channel: Channel | None, trigger: RealtimeTrigger
) -> None:
    """EventTypeID 11, Optimove's busiest notification: the trigger's message and this record are one
    statement, with no transaction around it (campaigns.TriggerReceipt)."""
    notification.outcome = _channel_refusal(channel, realtime=True)
    if notification.outcome:
        row_insert(notification)
        return
    assert channel is not None
    outcome = campaigns.realtime_trigger_receive(
        client=client,
        channel=channel,
        trigger=trigger,
        receipt=TriggerReceipt(
            table=Notification._meta.db_table,
            values=row_insert_values(notification, skip=_RECEIPT_FILLED),
            refusal_prefix=NOT_ACTED,
        ),
    )
    notification.run_id = outcome.run_id
    notification.acted = outcome.acted
    notification.outcome = outcome.reason if outcome.acted else f"{NOT_ACTED}{outcome.reason}"
    row_inserted(notification, outcome.receipt_id)


def _channel_refusal(channel: Channel | None, *, realtime: bool) -> str:
    """Why a campaign notification cannot act on this channel, or "" if it can."""
    if channel is None:
        return f"{NOT_ACTED}the notification names no channel of this client"
    if not channel.is_active:
        return f"{NOT_ACTED}channel {channel.optimove_channel_id} is inactive"
    if channel.is_realtime != realtime:
        return f"{NOT_ACTED}channel {channel.optimove_channel_id} is {'not ' if realtime else ''}real-time"
    return ""


def _act(
    notification: Notification, *, client: Client, channel: Channel | None, parsed: ParsedNotification
) -> None:
    event = parsed.event_type_id
    if event in SCHEDULED_START_TYPES:
        assert parsed.campaign_id is not None
        notification.outcome = _channel_refusal(channel, realtime=False)
        if notification.outcome:
            return
        assert channel is not None
        run, created = campaigns.campaign_run_start(
            client=client, channel=channel, campaign_id=parsed.campaign_id, event_type_id=event
        )
        notification.run = run
        notification.acted = True
        notification.outcome = "run started" if created else "repeat: the run already exists"
    elif event == EventType.CAMPAIGN_CANCELLED:
        assert parsed.campaign_id is not None
        result = campaigns.campaign_cancel(client=client, campaign_id=parsed.campaign_id)
        notification.acted = True
        notification.outcome = f"cancelled {result.messages_cancelled} pending messages on {result.runs} runs"
    elif event == EventType.CONDITIONAL_PROMOTION:
        assert parsed.campaign_id is not None
        assert parsed.clearance_required_by is not None
        runs = campaigns.campaign_hold(
            client=client, campaign_id=parsed.campaign_id, hold_until=parsed.clearance_required_by
        )
        notification.acted = True
        notification.outcome = f"held {len(runs)} runs until {parsed.clearance_required_by.isoformat()}"
    else:
        name = (
            EventType(event).name.lower().replace("_", " ")
            if event in EventType._value2member_map_
            else "unknown"
        )
        notification.outcome = f"{NOT_ACTED}event type {event} ({name})"
