"""JSON log lines with the request or task id, with secrets and personal data redacted.

Optimove sends no headers of ours, so the listener token travels in the URL's query string; anything
that logs a URL (our request log, a library's debug line) goes through `redact` before it is written.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from apps.core import context

_SECRET_QUERY = re.compile(
    r"(?i)\b(token|api[_-]?key|password|secret|authorization(?:-token)?|x-api-key|signature)"
    r"(\"?\s*[=:]\s*\"?)([^&\s\"',;}]+)"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# International numbers (+44 7700 900123), runs of 9 to 15 digits, and North American 555-123-4567;
# not dates and times, whose short digit groups stay readable.
_PHONE = re.compile(
    r"(?<![\w+])\+\d[\d\s().-]{6,}\d(?![\w-])"
    r"|(?<![\w.-])\d{9,15}(?![\w.-])"
    r"|(?<![\w.-])\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?![\w.-])"
)

REDACTED = "[redacted]"


def redact(text: str) -> str:
    text = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _EMAIL.sub("[email]", text)
    return _PHONE.sub("[phone]", text)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = context.request_id.get()
        record.task_id = context.task_id.get()
        record.task_name = context.task_name.get()
        return True


class RedactingFilter(logging.Filter):
    """Rewrites the message (with its arguments merged) so no handler ever sees the raw text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a badly formatted record is still logged, just not merged
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "task_id",
    "task_name",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "task_id", "task_name"):
            value = getattr(record, key, None)
            if value:
                payload[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value if isinstance(value, int | float | bool | None) else redact(str(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            payload["exc"] = record.exc_text
        return json.dumps(payload, default=str)
