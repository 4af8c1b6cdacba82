"""Reading Optimove-shaped input: case-insensitive names, typed values, 400 messages naming the field.

Optimove's API is lenient about the casing of parameter and field names, so the sandbox is too; it is
strict about types and limits, since those are what a client gets wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import urlsplit

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class BadRequest(Exception):
    """A missing or bad parameter; the message is the 400 body and names the parameter."""


def parse_json_body(raw: bytes) -> Any:
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON body is required")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("The request body is not valid JSON") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Fields:
    """Typed, case-insensitive access to one JSON object or to the query string.

    `where` prefixes messages ("item 3: TemplateID ..."); `from_query` parses ints from strings.
    """

    def __init__(self, data: Mapping[str, Any], *, where: str = "", from_query: bool = False) -> None:
        self._data = {str(key).lower(): value for key, value in data.items()}
        self._where = where
        self._from_query = from_query

    @classmethod
    def of_object(cls, value: Any, *, where: str) -> Fields:
        if not isinstance(value, dict):
            raise BadRequest(f"{where} must be a JSON object")
        return cls(value, where=f"{where}: ")

    def _fail(self, message: str) -> BadRequest:
        return BadRequest(f"{self._where}{message}")

    def has(self, name: str) -> bool:
        return self._data.get(name.lower()) not in (None, "")

    def _raw(self, name: str) -> Any:
        value = self._data.get(name.lower())
        if value is None or value == "":
            raise self._fail(f"{name} is required")
        return value

    def required_int(self, name: str, *, minimum: int = 0, maximum: int | None = None) -> int:
        value = self._raw(name)
        if self._from_query and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise self._fail(f"{name} must be an integer, got {value[:40]!r}") from None
        if not _is_int(value):
            raise self._fail(f"{name} must be an integer")
        if value < minimum:
            raise self._fail(f"{name} must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise self._fail(f"{name} must be at most {maximum}")
        return int(value)

    def optional_int(self, name: str, *, minimum: int = 0, maximum: int | None = None) -> int | None:
        return self.required_int(name, minimum=minimum, maximum=maximum) if self.has(name) else None

    def required_str(self, name: str, *, max_length: int = 500) -> str:
        value = self._raw(name)
        if _is_int(value) and not self._from_query:
            value = str(value)  # ids such as CustomerID and AppID arrive as numbers from some clients
        if not isinstance(value, str) or not value.strip():
            raise self._fail(f"{name} must be a non-empty string")
        if len(value) > max_length:
            raise self._fail(f"{name} must be at most {max_length} characters")
        return value

    def optional_str(self, name: str, *, max_length: int = 500) -> str | None:
        return self.required_str(name, max_length=max_length) if self.has(name) else None

    def optional_scalar_as_str(self, name: str, *, max_length: int = 500) -> str:
        value = self._data.get(name.lower())
        if value is None:
            return ""
        if isinstance(value, dict | list):
            raise self._fail(f"{name} must be a string or a number")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if len(text) > max_length:
            raise self._fail(f"{name} must be at most {max_length} characters")
        return text

    def required_url(self, name: str) -> str:
        value = self.required_str(name, max_length=2000)
        # Not Django's URLValidator: it refuses single-label hosts such as docker-compose's `web`.
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
            raise self._fail(f"{name} must be an http or https URL")
        return value

    def optional_url(self, name: str) -> str:
        return self.required_url(name) if self.has(name) else ""

    def required_date(self, name: str) -> date:
        value = self.required_str(name, max_length=40)
        try:
            if not _DATE.fullmatch(value):
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError:
            raise self._fail(f"{name} must be a date as YYYY-MM-DD, got {value[:40]!r}") from None

    def required_list(self, name: str, *, max_items: int, allow_empty: bool = False) -> list[Any]:
        value = self._data.get(name.lower())
        if value is None:
            raise self._fail(f"{name} is required")
        if not isinstance(value, list):
            raise self._fail(f"{name} must be an array")
        if not value and not allow_empty:
            raise self._fail(f"{name} must not be empty")
        if len(value) > max_items:
            raise self._fail(f"{name} has {len(value)} items; at most {max_items} are allowed")
        return value


def body_array(body: Any, *, max_items: int) -> list[Any]:
    if not isinstance(body, list):
        raise BadRequest("The request body must be a JSON array")
    if not body:
        raise BadRequest("The request body must not be an empty array")
    if len(body) > max_items:
        raise BadRequest(f"The request body has {len(body)} items; at most {max_items} are allowed")
    return body


def body_object(body: Any) -> Fields:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    return Fields(body)


def customer_ids(values: list[Any], *, name: str = "CustomerIDs") -> list[str]:
    result: list[str] = []
    for position, value in enumerate(values):
        if _is_int(value):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise BadRequest(f"{name}[{position}] must be a non-empty string")
        result.append(value)
    return result
