"""Tolerant parsing of Optimove's answers into the frozen dataclasses of `apps.optimove.types`.

Optimove's casing, number types and attribute formats vary between endpoints, accounts and years
(see OPTIMOVE_API.md), so field names are matched case-insensitively and ids are coerced. What cannot
be read raises `PayloadError`, whose message names the row and field but never a customer's data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from apps.optimove.types import (
    CampaignDetails,
    CanceledCustomer,
    ChannelTemplate,
    CustomerSendDetail,
    EventListener,
)


class PayloadError(ValueError):
    """An Optimove answer we cannot read."""


class _Fields:
    """One JSON object with case-insensitive field access."""

    def __init__(self, obj: Any, where: str) -> None:
        if not isinstance(obj, Mapping):
            raise PayloadError(f"{where}: expected an object, got {type(obj).__name__}")
        self.where = where
        self._values = {str(key).lower(): value for key, value in obj.items()}

    def get(self, *names: str) -> Any:
        for name in names:
            value = self._values.get(name.lower())
            if value is not None:
                return value
        return None


def _as_list(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise PayloadError(f"{where}: expected a list, got {type(data).__name__}")
    return data


def as_int(value: Any, *, field: str, where: str) -> int:
    """Integers may arrive as JSON numbers or strings ("14", 14, 14.0)."""
    if isinstance(value, bool):
        raise PayloadError(f"{where}: {field} is a boolean, not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    if value is None:
        raise PayloadError(f"{where}: {field} is missing")
    raise PayloadError(f"{where}: {field} is not an integer")


def _optional_int(value: Any, *, field: str, where: str) -> int | None:
    if value is None or value == "":
        return None
    return as_int(value, field=field, where=where)


def as_customer_id(value: Any, *, where: str) -> str:
    """CustomerID is a string in our hands, whether Optimove sent "96134" or 96134."""
    if isinstance(value, bool) or value is None:
        raise PayloadError(f"{where}: CustomerID is missing")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, str | int):
        raise PayloadError(f"{where}: CustomerID is not a string or number")
    text = str(value).strip()
    if not text:
        raise PayloadError(f"{where}: CustomerID is empty")
    return text


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes", "y"}
    return bool(value)


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_datetime(value: Any, *, field: str = "time", where: str = "answer") -> datetime | None:
    """'YYYY-MM-DD HH:MM:SS' or ISO 8601 (T or space, Z or offset, any fraction) -> aware UTC.

    Optimove's times are UTC, so a time without an offset is read as UTC. Absent or empty is None.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where}: {field} is not a date-time string")
    text = value.strip()
    if text[-1:] in {"Z", "z"}:
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(r"\1", text)  # .NET sends 7 fraction digits; Python reads at most 6
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{where}: {field} is not a date-time we can read") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _attributes(raw: Any, *, names: Sequence[str], delimiter: str, where: str) -> dict[str, str]:
    if raw is None:
        values: list[str] = []
    elif isinstance(raw, list):
        values = [_as_text(item) for item in raw]
    elif isinstance(raw, str):
        # One old live API joined the values into one string with the delimiter we asked for.
        values = raw.split(delimiter) if raw else []
    else:
        raise PayloadError(f"{where}: CustomerAttributes is neither a list nor a string")
    # Values come back in the order the names were asked for; a missing one is "".
    return {name: (values[index] if index < len(values) else "") for index, name in enumerate(names)}


def parse_send_details(
    data: Any, *, attribute_names: Sequence[str], delimiter: str = ","
) -> tuple[CustomerSendDetail, ...]:
    """GetCustomerSendDetailsByChannel rows, attributes mapped onto `attribute_names` in order."""
    rows = []
    for index, item in enumerate(_as_list(data, "send details")):
        where = f"send details row {index}"
        row = _Fields(item, where)
        rows.append(
            CustomerSendDetail(
                customer_id=as_customer_id(row.get("CustomerID"), where=where),
                template_id=as_int(row.get("TemplateID"), field="TemplateID", where=where),
                scheduled_time=parse_datetime(row.get("ScheduledTime"), field="ScheduledTime", where=where),
                attributes=_attributes(
                    row.get("CustomerAttributes", "CustomerAttribute"),
                    names=attribute_names,
                    delimiter=delimiter,
                    where=where,
                ),
            )
        )
    return tuple(rows)


def parse_event_listeners(data: Any) -> list[EventListener]:
    """The answer's shape is undocumented; we accept any key casing and a missing ChannelID."""
    listeners = []
    for index, item in enumerate(_as_list(data, "listeners")):
        where = f"listener {index}"
        row = _Fields(item, where)
        url = row.get("ListenerURL", "ListenerUrl", "URL")
        if not isinstance(url, str) or not url:
            raise PayloadError(f"{where}: ListenerURL is missing")
        listeners.append(
            EventListener(
                event_type_id=as_int(row.get("EventTypeID"), field="EventTypeID", where=where),
                listener_url=url,
                channel_id=_optional_int(row.get("ChannelID"), field="ChannelID", where=where),
            )
        )
    return listeners


def parse_canceled_customers(data: Any) -> list[CanceledCustomer]:
    customers = []
    for index, item in enumerate(_as_list(data, "canceled customers")):
        where = f"canceled customer {index}"
        row = _Fields(item, where)
        customers.append(
            CanceledCustomer(
                customer_id=as_customer_id(row.get("CustomerID"), where=where),
                action_id=_as_text(row.get("ActionID")),
                promo_code=_as_text(row.get("PromoCode")),
            )
        )
    return customers


def parse_campaign_details(data: Any, *, campaign_id: int) -> CampaignDetails:
    if isinstance(data, list):  # some answers wrap the one object in a list
        if len(data) != 1:
            raise PayloadError(f"campaign details: expected one object, got a list of {len(data)}")
        data = data[0]
    row = _Fields(data, "campaign details")
    where = "campaign details"
    return CampaignDetails(
        campaign_id=_optional_int(row.get("CampaignID"), field="CampaignID", where=where) or campaign_id,
        target_group_id=_optional_int(row.get("TargetGroupID"), field="TargetGroupID", where=where),
        campaign_type=_as_text(row.get("CampaignType")),
        duration=_optional_int(row.get("Duration"), field="Duration", where=where),
        lead_time=_optional_int(row.get("LeadTime"), field="LeadTime", where=where),
        notes=_as_text(row.get("Notes")),
        is_multi_channel=_as_bool(row.get("IsMultiChannel")),
        is_recurrence=_as_bool(row.get("IsRecurrence")),
        status=_as_text(row.get("Status")),
        error=_as_text(row.get("Error")),
    )


def parse_channel_templates(data: Any) -> list[ChannelTemplate]:
    templates = []
    for index, item in enumerate(_as_list(data, "templates")):
        where = f"template {index}"
        row = _Fields(item, where)
        templates.append(
            ChannelTemplate(
                template_id=as_int(row.get("TemplateID"), field="TemplateID", where=where),
                template_name=_as_text(row.get("TemplateName")),
            )
        )
    return templates


def parse_login_token(body: bytes) -> str:
    """The login answer is the token as a JSON string; a bare token in the body is accepted too."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        token = json.loads(text)
    except ValueError:
        token = text
    if not isinstance(token, str) or not token.strip() or any(ch.isspace() for ch in token.strip()):
        raise PayloadError("login: the answer is not a token")
    return token.strip()
