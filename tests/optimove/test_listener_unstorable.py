"""Bodies the fuzz tests (tests/fuzz/test_listener_fuzz.py) found answered with a 500: valid JSON, or
close to it, that the parser let through to a column that cannot hold it. Each is now a 400 naming
the problem, and nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.clients.models import Channel, ChannelKind, Client
from tests.optimove.test_listener import snapshot


@pytest.fixture
def acme(db: None) -> Client:
    client = Client.objects.create(
        slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net", optimove_api_key="k"
    )
    Channel.objects.create(
        client=client, name="Email", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="console"
    )
    Channel.objects.create(
        client=client,
        name="Hook",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=505,
        provider="console",
        is_realtime=True,
    )
    return client


TRIGGER = (
    b'{"EventTypeID": 11, "CampaignID": 2001, "ChannelID": 505, "TemplateID": 7, '
    b'"TimeStamp": "2026-03-02 10:15:42", "CustomerID": %s}'
)


def post(http: HttpClient, client: Client, raw: bytes, *, channel: str = "504") -> Any:
    return http.post(
        f"/optimove/listener/{client.slug}/{channel}/?token={client.listener_token}",
        data=raw,
        content_type="application/json",
    )


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        # json.loads: int() refuses more than 4300 digits (a ValueError that is no JSONDecodeError) ...
        (b'{"EventTypeID": ' + b"1" * 4301 + b"}", "the body must be JSON with numbers of a readable size"),
        # ... and 5,000 nested arrays exhaust the parser's recursion.
        (b"[" * 5000 + b"]" * 5000, "the body must be JSON nested less deeply"),
        (
            b'{"EventTypeID": 14'
            + b', "a": {"b": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}',
            "nested more",
        ),
        # The JSON column refuses NaN and Infinity (json.loads reads them, and 1e400 is Infinity) ...
        (b'{"EventTypeID": 14, "Extra": NaN}', "'Extra' holds a number JSON cannot carry (NaN or Infinity)"),
        (
            b'{"EventTypeID": 14, "Extra": 1e400}',
            "'Extra' holds a number JSON cannot carry (NaN or Infinity)",
        ),
        # ... NUL characters, and unpaired surrogates (in keys too).
        (b'{"EventTypeID": 14, "Extra": ["a\\u0000"]}', "'Extra' holds a NUL character"),
        (b'{"EventTypeID": 14, "Extra": "\\ud800"}', "'Extra' holds an unpaired UTF-16 surrogate"),
        (b'{"EventTypeID": 14, "\\udfff": 1}', "holds an unpaired UTF-16 surrogate"),
        # Ids beyond their columns: EventTypeID is an integer, CampaignID a bigint.
        (b'{"EventTypeID": 2147483648}', "EventTypeID is out of range (at most 2147483647)"),
        (
            b'{"EventTypeID": 13, "CampaignID": 9223372036854775808, "ChannelID": 504}',
            "CampaignID is out of range (at most 9223372036854775807)",
        ),
        (b'{"EventTypeID": 13, "CampaignID": "' + b"9" * 25 + b'"}', "CampaignID is out of range"),
        # "²".isdigit() is true, but int("²") fails; other scripts' digits are not ids either.
        ('{"EventTypeID": 13, "CampaignID": "²"}'.encode(), "CampaignID must be an integer"),
        ('{"EventTypeID": "٣", "CampaignID": 1}'.encode(), "EventTypeID must be an integer"),
        # Converting year 1 at +01:00 to UTC leaves the calendar (OverflowError).
        (
            b'{"EventTypeID": 5, "CampaignID": 3, "ClearanceRequiredBy": "0001-01-01T00:00:00+01:00"}',
            "ClearanceRequiredBy must be a date and time",
        ),
        (
            b'{"EventTypeID": 5, "CampaignID": 3, "ClearanceRequiredBy": "9999-12-31T23:59:59-01:00"}',
            "ClearanceRequiredBy must be a date and time",
        ),
        (TRIGGER % b'"A\\u0000"', "'CustomerID' holds a NUL character"),
        (TRIGGER % b'"A", "TemplateID": 99999999999999999999', "TemplateID is out of range"),
    ],
)
def test_unstorable_bodies_are_400_and_store_nothing(
    client: HttpClient, acme: Client, raw: bytes, error: str
) -> None:
    before = snapshot()
    response = post(client, acme, raw)
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("channel", "status", "error"),
    [
        ("a%00b", 400, "the channel in the URL holds a NUL character"),
        # "²" used to pass str.isdigit() and then fail int(): now it names no channel.
        ("%C2%B2", 200, None),
        ("9" * 30, 200, None),
    ],
)
def test_odd_channels_in_the_url_are_answered_without_a_500(
    client: HttpClient, acme: Client, channel: str, status: int, error: str | None
) -> None:
    before = snapshot()
    response = post(client, acme, b'{"EventTypeID": 1, "CampaignID": 5}', channel=channel)
    assert response.status_code == status
    if error:
        assert response.json() == {"error": error}
        assert snapshot() == before
    else:
        assert response.json()["outcome"] == "not acted on: the notification names no channel of this client"
