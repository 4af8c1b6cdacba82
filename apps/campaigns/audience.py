"""What campaigns need from an audience source, in campaigns' own terms (no Optimove names)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AudienceRow:
    customer_id: str
    template_id: int
    send_at: datetime | None
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class AudiencePage:
    skip: int
    rows: tuple[AudienceRow, ...]
