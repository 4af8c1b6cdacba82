"""Helpers for the Optimove client tests: Optimove itself is replaced by `responses`; Redis is real."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

from apps.clients.models import Channel, ChannelKind, Client
from apps.optimove.client import OptimoveClient
from apps.optimove.types import Credentials
from tests.tenants import console_email_channel

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "optimove"
BASE = "https://api5.optimove.test/partner-prefix"
API_KEY = "key-Zq81-secret"
# A limit high enough that tests making many calls never wait; the limiter has its own tests.
UNLIMITED = (100_000, 10.0)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def url(path: str) -> str:
    return f"{BASE}/{path}"


def request_query(request: Any) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))


def query(call: Any) -> dict[str, str]:
    return request_query(call.request)


def path_of(call: Any) -> str:
    return urlsplit(call.request.url).path


def body(call: Any) -> Any:
    return json.loads(call.request.body)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def api(redis_client: Any) -> OptimoveClient:
    return OptimoveClient(
        Credentials(base_url=BASE + "/", api_key=API_KEY), redis=redis_client, rate_limit=UNLIMITED
    )


# The listener tests' client: an email channel (504) and an SMS channel (505), both console.
@pytest.fixture
def acme(db: None) -> Client:
    client = Client.objects.create(
        slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net", optimove_api_key="k"
    )
    console_email_channel(client)
    Channel.objects.create(
        client=client,
        name="SMS",
        kind=ChannelKind.SMS,
        optimove_channel_id=505,
        provider="console",
        address_attribute="Phone",
    )
    return client
