"""Customers of a sandbox campaign, generated from (seed, index) on demand and never stored.

Only the requested slice is generated, so a page costs the same whatever the campaign's size, and the
same seed always yields the same customers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

ATTRIBUTE_KINDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "country",
    "device_token",
    "url",
    "number",
    "const:VALUE",
)

_FIRST_NAMES = (
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "Edsger",
    "Radia", "Tim", "Hedy", "John", "Katherine", "Niklaus",
)  # fmt: skip
_LAST_NAMES = (
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson", "Allen",
    "Dijkstra", "Perlman", "Berners-Lee", "Lamarr", "Backus", "Johnson", "Wirth",
)  # fmt: skip
_COUNTRIES = ("US", "GB", "DE", "FR", "IL", "ES", "IT", "NL", "BR", "JP", "AU", "CA")


def attribute_kind_is_known(kind: str) -> bool:
    return kind in ATTRIBUTE_KINDS[:-1] or kind.startswith("const:")


@dataclass(frozen=True, slots=True)
class CampaignShape:
    """Everything the generator needs from a campaign (a plain value, so it is easy to test)."""

    seed: int
    size: int
    template_ids: Sequence[int]
    send_offsets_seconds: Sequence[int]
    attributes: Mapping[str, str]
    base_time: datetime


@dataclass(frozen=True, slots=True)
class GeneratedCustomer:
    index: int
    customer_id: str
    template_id: int
    scheduled_time: datetime
    attribute_values: tuple[str, ...]


def customer_id_for(*, seed: int, index: int) -> str:
    return f"{seed}-{index}"


def _mix(seed: int, index: int) -> int:
    digest = hashlib.blake2b(f"{seed}|{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _attribute_value(*, kind: str | None, name: str, seed: int, index: int, mix: int) -> str:
    if kind == "email":
        return f"customer{index}.{seed}@example.test"
    if kind == "phone":
        # A fictional North American number; distinct for every index of a campaign below 10 million.
        return f"+1555{(seed * 7919 + index) % 10_000_000:07d}"
    if kind == "first_name":
        return _FIRST_NAMES[mix % len(_FIRST_NAMES)]
    if kind == "last_name":
        return _LAST_NAMES[(mix >> 8) % len(_LAST_NAMES)]
    if kind == "country":
        return _COUNTRIES[(mix >> 16) % len(_COUNTRIES)]
    if kind == "device_token":
        return hashlib.blake2b(f"device|{seed}|{index}".encode(), digest_size=32).hexdigest()
    if kind == "url":
        return f"https://hooks.example.test/{seed}/{index}"
    if kind == "number":
        return str((mix >> 24) % 1000)
    if kind is not None and kind.startswith("const:"):
        return kind.removeprefix("const:")
    return f"{name}-{index}"


def generate_customers(
    shape: CampaignShape, *, skip: int, top: int, requested_attributes: Sequence[str]
) -> Iterator[GeneratedCustomer]:
    """Customers `skip` .. `skip + top - 1` (clipped to the campaign), attributes in request order.

    Template and send offset follow a rotation over every (template, offset) pair, shifted by the seed,
    so any run of len(templates) * len(offsets) consecutive customers uses every template and offset.
    A requested name the campaign does not configure gets the fallback value `f"{name}-{index}"`.
    """
    templates = list(shape.template_ids)
    offsets = [timedelta(seconds=s) for s in shape.send_offsets_seconds]
    if not templates or not offsets:
        return
    pairs = len(templates) * len(offsets)
    rotation = _mix(shape.seed, -1) % pairs
    kinds_by_lower = {name.lower(): kind for name, kind in shape.attributes.items()}
    kinds = [shape.attributes.get(name, kinds_by_lower.get(name.lower())) for name in requested_attributes]
    end = min(shape.size, skip + top)
    for index in range(max(skip, 0), end):
        pair = (index + rotation) % pairs
        mix = _mix(shape.seed, index)
        yield GeneratedCustomer(
            index=index,
            customer_id=customer_id_for(seed=shape.seed, index=index),
            template_id=templates[pair % len(templates)],
            scheduled_time=shape.base_time + offsets[pair // len(templates)],
            attribute_values=tuple(
                _attribute_value(kind=kind, name=name, seed=shape.seed, index=index, mix=mix)
                for name, kind in zip(requested_attributes, kinds, strict=True)
            ),
        )
