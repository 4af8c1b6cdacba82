"""Frozen dataclasses that cross the Optimove edge. No raw dicts go past the client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum


class EventType(IntEnum):
    CAMPAIGN_PROCESSED = 1
    ALL_CAMPAIGNS_PROCESSED = 2
    DATA_UPDATE_FINISHED = 3
    CAMPAIGN_CANCELLED = 4
    CONDITIONAL_PROMOTION = 5
    REALTIME_TRIGGER = 11
    CAMPAIGN_EXECUTED_ON_CHANNEL = 13
    FILE_FLOW = 14


class MetricID(IntEnum):
    SENT = 0
    DELIVERED = 1
    OPENED = 2
    CLICKED = 3
    UNSUBSCRIBED = 4
    DROPPED = 5
    SPAM_REPORT = 6
    BOUNCED = 9


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to reach one client's Optimove: an API key, or the legacy user name and password."""

    base_url: str
    api_key: str = ""
    username: str = ""
    password: str = field(default="", repr=False)

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(base_url={self.base_url!r}, api_key={'***' if self.api_key else ''!r})"

    @property
    def rate_limit_key(self) -> str:
        """Identifies the API key (or legacy user) for the shared limiter, without revealing it."""
        import hashlib

        material = self.api_key or f"{self.base_url}|{self.username}"
        return hashlib.sha256(material.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class EventListener:
    event_type_id: int
    listener_url: str
    channel_id: int | None = None


@dataclass(frozen=True, slots=True)
class CustomerSendDetail:
    """One customer of a campaign page. `attributes` maps each requested name to its value."""

    customer_id: str
    template_id: int
    scheduled_time: datetime | None
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class SendDetailsPage:
    skip: int
    top: int
    rows: tuple[CustomerSendDetail, ...]

    @property
    def next_skip(self) -> int:
        return self.skip + len(self.rows)


@dataclass(frozen=True, slots=True)
class CanceledCustomer:
    customer_id: str
    action_id: str = ""
    promo_code: str = ""


@dataclass(frozen=True, slots=True)
class CampaignDetails:
    campaign_id: int
    target_group_id: int | None = None
    campaign_type: str = ""
    duration: int | None = None
    lead_time: int | None = None
    notes: str = ""
    is_multi_channel: bool = False
    is_recurrence: bool = False
    status: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class ChannelTemplate:
    template_id: int
    template_name: str


@dataclass(frozen=True, slots=True)
class ChannelApp:
    app_id: str
    app_name: str


@dataclass(frozen=True, slots=True)
class CampaignMetric:
    channel_id: int
    campaign_id: int
    template_id: int
    metric_id: int
    metric_value: int


@dataclass(frozen=True, slots=True)
class CampaignInteractions:
    campaign_id: int
    channel_id: int
    interaction_date: date
    template_id: int
    event_id: int
    customer_ids: tuple[str, ...]
    recipient_group_id: int = 1
    app_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttributeValue:
    real_field_name: str
    value: str


@dataclass(frozen=True, slots=True)
class CustomerAttributeUpdate:
    customer_id: str
    attributes: tuple[AttributeValue, ...]
