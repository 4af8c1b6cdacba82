"""Validated input handed from the sandbox's views and commands to its services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class TemplateInput:
    template_id: int
    template_name: str


@dataclass(frozen=True, slots=True)
class AppInput:
    app_id: str
    app_name: str


@dataclass(frozen=True, slots=True)
class ChannelTemplateRef:
    channel_id: int
    template_id: int


@dataclass(frozen=True, slots=True)
class ChannelAppRef:
    channel_id: int
    app_id: str


@dataclass(frozen=True, slots=True)
class MetricInput:
    channel_id: int
    campaign_id: int
    template_id: int
    metric_id: int
    metric_value: int


@dataclass(frozen=True, slots=True)
class InteractionInput:
    campaign_id: int
    channel_id: int
    interaction_date: date
    template_id: int
    event_id: int
    recipient_group_id: int
    customer_ids: tuple[str, ...]
    app_id: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerAttributesInput:
    customer_id: str
    attributes: tuple[tuple[str, str], ...]  # (RealFieldName, Value) in the order received
