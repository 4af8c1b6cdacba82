"""Input validation of the client API. Messages name the field (the views prefix its path, such as
`updates[17].status`) and say what is allowed."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.subscriptions.models import ConsentStatus
from apps.subscriptions.services import CUSTOMER_ID_MAX_LENGTH

BULK_MAX_UPDATES = 10_000
STATUSES = ", ".join(ConsentStatus.values)


class CustomerIdField(serializers.CharField):
    """A customer id exactly as Optimove knows it: a string, not a number, kept as given."""

    default_error_messages = {
        "required": "is required",
        "null": "must be a string, not null",
        "invalid": "must be a string",
        "blank": "must not be empty",
        "max_length": "must be at most {max_length} characters",
        "spaces": "must not start or end with spaces",
        "control": "must not hold control characters",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=CUSTOMER_ID_MAX_LENGTH, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):  # CharField would turn 12 into "12" and 1.0 into "1.0"
            self.fail("invalid")
        value = str(super().to_internal_value(data))
        if value != value.strip():
            self.fail("spaces")
        if not value.isprintable():
            self.fail("control")
        return value


class StatusField(serializers.ChoiceField):
    default_error_messages = {
        "required": "is required",
        "null": f"must be one of {STATUSES}, not null",
        "invalid_choice": f"must be one of {STATUSES}, not {{input!r}}",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=ConsentStatus.values, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):  # ChoiceField compares str(data): 1 would not be refused clearly
            self.fail("invalid_choice", input=data)
        return str(super().to_internal_value(data))


class _StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo ("Status") is an error rather than ignored."""

    default_error_messages = {"invalid": "must be a JSON object, not {datatype}"}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                allowed = ", ".join(self.fields)
                raise serializers.ValidationError(
                    {name: [f"is not a known field (expected {allowed})"] for name in unknown}
                )
        return super().to_internal_value(data)


class ConsentSetSerializer(_StrictSerializer):
    """PUT .../subscriptions/<customer_id>"""

    status = StatusField()


class _UpdateListSerializer(serializers.ListSerializer):
    default_error_messages = {
        "required": "is required",
        "null": "must be a list of {{customer_id, status}} objects, not null",
        "not_a_list": "must be a list of {{customer_id, status}} objects, not {input_type}",
        "empty": "must hold at least one update",
        "max_length": "holds at most {max_length} updates per request; split the list",
        "min_length": "must hold at least {min_length} update",
    }


class ConsentUpdateSerializer(_StrictSerializer):
    customer_id = CustomerIdField()
    status = StatusField()


class ConsentBulkSerializer(_StrictSerializer):
    """POST .../subscriptions/bulk"""

    # The length is checked before any item is, so 10,001 items cost nothing to refuse.
    updates = _UpdateListSerializer(
        child=ConsentUpdateSerializer(), allow_empty=False, max_length=BULK_MAX_UPDATES
    )
