"""Model fields whose values are encrypted in the database and plain in Python."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.db import models

from apps.clients import crypto


class EncryptedTextField(models.TextField):
    """A string stored as a Fernet token. The empty string is stored as is (nothing to hide)."""

    description = "Text encrypted at rest"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return crypto.encrypt(str(value))


class EncryptedJSONField(models.TextField):
    """A JSON object stored as one Fernet token."""

    description = "JSON encrypted at rest"

    if TYPE_CHECKING:
        # A TextField in the database, a dict in Python: tell django-stubs the Python side.
        _pyi_private_set_type: dict[str, Any]  # type: ignore[assignment]
        _pyi_private_get_type: dict[str, Any]  # type: ignore[assignment]

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if value == "":
            return {}
        return json.loads(crypto.decrypt(value))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value else {}
        return value

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        return crypto.encrypt(json.dumps(value, sort_keys=True))

    def value_to_string(self, obj: models.Model) -> str:
        return json.dumps(self.value_from_object(obj))
