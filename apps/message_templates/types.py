"""What rendering produces and channel backends consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A customer's message after merge tags were applied; which fields are filled depends on the kind.

    email: subject, html, text · sms: text · push: title (in `subject`), text (body), data, deep_link ·
    webhook: payload (any JSON value) and text · console: whatever the template has.
    """

    subject: str = ""
    html: str = ""
    text: str = ""
    data: dict[str, str] = field(default_factory=dict)
    deep_link: str = ""
    payload: Any = None
