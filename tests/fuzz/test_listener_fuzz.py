"""The Optimove listener under generated hostile requests, through the real URL and the Django test
client: every answer is 2xx or 4xx, a refused body stores nothing, an accepted one stores exactly its
notification (as sent) and at most one message, and a wrong token or unknown client stores nothing.

The test client re-raises an exception from the view, so a 5xx shows up as that exception's traceback
with the example hypothesis shrank it to."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection
from django.test import Client as HttpClient
from hypothesis import example, given
from hypothesis import strategies as st

from apps.campaigns.models import CampaignCancellation, CampaignHold, CampaignRun, Message
from apps.clients.models import Channel, ChannelKind, Client
from apps.optimove.models import Notification
from apps.optimove.views import MAX_BODY_BYTES
from tests.fuzz import strategies as hs
from tests.fuzz.conftest import fuzz, tally
from tests.tenants import console_email_channel

# A property that hangs fails here rather than at the suite-wide 300 s.
pytestmark = [pytest.mark.django_db, pytest.mark.timeout(120)]

# Valid notifications of every kind, as Optimove sends them (tests/fixtures/optimove), for the URL of
# channel 504 (scheduled email) or 505 (real-time webhook).
VALID: dict[str, tuple[str, dict[str, Any]]] = {
    "13": (
        "504",
        {"EventTypeID": 13, "TimeStamp": "2026-03-02 09:00:00", "CampaignID": 1111, "ChannelID": 504},
    ),
    "1": ("504", {"EventTypeID": 1, "TimeStamp": "2026-03-02 09:00:00", "CampaignID": 1113}),
    "11-camel": (
        "505",
        {
            "eventTypeID": 11,
            "timeStamp": "2026-03-02 10:15:42",
            "campaignID": 2001,
            "channelID": 505,
            "templateID": 7,
            "customerID": "A8272",
            "promoCode": "SAVE10,FREESHIP",
            "event_device_type": "mobile",
            "personalization": {"FirstName": "Ada", "Country": "UK"},
        },
    ),
    "11-pascal": (
        "505",
        {
            "EventTypeID": 11,
            "TimeStamp": "2026-03-02 10:15:42",
            "CampaignID": 2001,
            "ChannelID": 505,
            "TemplateID": 7,
            "CustomerID": "A8272",
            "PromoCode": ["SAVE10"],
            "Personalization": {"FirstName": "Ada"},
        },
    ),
    "4": ("client", {"EventTypeID": 4, "TimeStamp": "2026-03-02 09:30:00", "CampaignID": 1111}),
    "5": (
        "client",
        {
            "EventTypeID": 5,
            "TimeStamp": "2026-03-02 08:00:00",
            "CampaignID": 1112,
            "ClearanceRequiredBy": "2026-03-02 12:00:00",
        },
    ),
    "14": (
        "504",
        {"EventTypeID": 14, "TimeStamp": "2026-03-02 09:00:00", "ChannelID": 504, "FileName": "x.csv"},
    ),
    "15": ("504", {"EventTypeID": 15, "CampaignID": 9}),
    "unknown": ("504", {"EventTypeID": 4242, "Whatever": [1, {"a": None}]}),
}
URL_CHANNELS = ("504", "505", "506", "client", "all", "0", "-1", "99999999999999999999999", "²", "٣")
EVENT_TYPES = (11, 13, 1, 14, 15, 4, 5, 2, 3, 0, -1, 99, 2**31 - 1, 2**31, "13", " 11 ", "٣", "²", 13.0, True)


@dataclass(frozen=True)
class Counts:
    notifications: int
    runs: int
    messages: int
    holds: int
    cancellations: int


_COUNTED = (Notification, CampaignRun, Message, CampaignHold, CampaignCancellation)
# One round trip for all five (this runs twice per example); the table names come from the models.
_SUBQUERIES = [f"(SELECT count(*) FROM {model._meta.db_table})" for model in _COUNTED]  # noqa: S608
_COUNTS_SQL = "SELECT " + ", ".join(_SUBQUERIES)


def counts() -> Counts:
    with connection.cursor() as cursor:
        cursor.execute(_COUNTS_SQL)
        return Counts(*cursor.fetchone())


@pytest.fixture
def acme(db: None) -> Client:
    client = Client.objects.create(
        slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net", optimove_api_key="k"
    )
    console_email_channel(client)
    Channel.objects.create(
        client=client,
        name="Real-time hook",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=505,
        provider="webhook",
        provider_options={"url": "https://hooks.example.test/realtime"},
        provider_secrets={"signing_secret": "s3cret"},
        is_realtime=True,
    )
    Channel.objects.create(
        client=client,
        name="Old SMS",
        kind=ChannelKind.SMS,
        optimove_channel_id=506,
        provider="console",
        address_attribute="Phone",
        is_active=False,
    )
    return client


def escaped(text: str) -> str:
    """Percent-escaped for a URL, lone surrogates included (as the invalid bytes a client could send)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def listener_path(client: Client, channel: str, token: str | None = None, slug: str | None = None) -> str:
    token = client.listener_token if token is None else token
    slug = client.slug if slug is None else slug
    return f"/optimove/listener/{escaped(slug)}/{escaped(channel)}/?token={escaped(token)}"


def post(
    http: HttpClient, client: Client, channel: str, raw: bytes, content_type: str = "application/json"
) -> Any:
    # generic(), not post(): post() re-encodes a body whose content type names a charset.
    return http.generic("POST", listener_path(client, channel), data=raw, content_type=content_type)


def assert_answer(response: Any, before: Counts, *, sent: bytes) -> None:
    """The properties every listener answer keeps."""
    tally(f"answered {response.status_code}")
    assert response.status_code < 500, response.content[:300]
    after = counts()
    if response.status_code >= 400:
        assert 400 <= response.status_code < 500
        assert after == before, f"a refused body ({response.status_code}) changed the database"
        error = response.json()["error"]
        assert isinstance(error, str)
        assert error.strip()
        return
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    assert after.notifications == before.notifications + 1
    assert after.messages - before.messages <= 1, "one notification made more than one message"
    # What is recorded is what was sent, value for value.
    stored = Notification.objects.order_by("-pk").values_list("body", flat=True).first()
    assert hs.json_numbers_exact(stored) == hs.json_numbers_exact(json.loads(sent.decode("utf-8")))


# --------------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------------


@fuzz(150)
@given(value=hs.json_values(), ascii_only=st.booleans(), channel=st.sampled_from(URL_CHANNELS))
def test_any_json_value_is_answered_2xx_or_4xx(
    client: HttpClient, acme: Client, value: Any, ascii_only: bool, channel: str
) -> None:
    raw = hs.encoded(value, ascii_only=ascii_only)
    before = counts()
    response = post(client, acme, channel, raw)
    assert_answer(response, before, sent=raw)
    if not isinstance(value, dict):
        assert response.status_code == 400


@st.composite
def one_field_mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid notification with one thing wrong: a field's value replaced by a hostile one (or the
    field removed, or its key mangled), or a hostile extra field."""
    channel, body = copy.deepcopy(VALID[draw(st.sampled_from(sorted(VALID)))])
    keys = sorted(body)
    how = draw(st.sampled_from(("replace", "replace", "replace", "remove", "rekey", "extra", "nested")))
    if how == "replace":
        key = draw(st.sampled_from(keys))
        body[key] = draw(st.one_of(st.sampled_from(EVENT_TYPES), hs.scalars, hs.json_values(6)))
    elif how == "remove":
        del body[draw(st.sampled_from(keys))]
    elif how == "rekey":
        key = draw(st.sampled_from(keys))
        body[draw(st.sampled_from((key.upper(), key.lower(), key + " ", key + "\x00", "\ud800" + key)))] = (
            body.pop(key)
        )
    elif how == "extra":
        body[draw(hs.nasty_text)] = draw(hs.json_values(6))
    else:
        body["personalization"] = draw(st.dictionaries(hs.nasty_text, hs.json_values(4), max_size=4))
    return channel, body


@fuzz(150)
@given(case=one_field_mutated(), ascii_only=st.booleans())
@example(case=("505", {**VALID["11-pascal"][1], "CustomerID": "A\x00"}), ascii_only=True)
@example(case=("504", {**VALID["13"][1], "CampaignID": 2**63}), ascii_only=True)
@example(case=("504", {**VALID["13"][1], "CampaignID": "²"}), ascii_only=True)
@example(
    case=("client", {**VALID["5"][1], "ClearanceRequiredBy": "0001-01-01T00:00:00+01:00"}), ascii_only=True
)
@example(case=("504", {**VALID["14"][1], "FileName": float("nan")}), ascii_only=True)
def test_a_valid_notification_with_one_field_wrong_is_2xx_or_4xx(
    client: HttpClient, acme: Client, case: tuple[str, dict[str, Any]], ascii_only: bool
) -> None:
    channel, body = case
    raw = hs.encoded(body, ascii_only=ascii_only)
    before = counts()
    response = post(client, acme, channel, raw)
    assert_answer(response, before, sent=raw)


@fuzz(150)
@given(
    event=st.sampled_from(EVENT_TYPES),
    fields=st.dictionaries(
        st.sampled_from(
            (
                "CampaignID",
                "campaignId",
                "ChannelID",
                "TemplateID",
                "CustomerID",
                "TimeStamp",
                "ClearanceRequiredBy",
                "PromoCode",
                "Personalization",
            )
        ),
        st.one_of(
            st.integers(1, 3), st.just("2026-03-02 10:00:00"), st.just("C1"), hs.scalars, hs.json_values(4)
        ),
        max_size=9,
    ),
    channel=st.sampled_from(URL_CHANNELS),
)
def test_every_event_type_with_random_fields_is_2xx_or_4xx(
    client: HttpClient, acme: Client, event: Any, fields: dict[str, Any], channel: str
) -> None:
    raw = hs.encoded({"EventTypeID": event, **fields}, ascii_only=True)
    before = counts()
    response = post(client, acme, channel, raw)
    assert_answer(response, before, sent=raw)


@fuzz(150)
@given(name=st.sampled_from(sorted(VALID)), data=st.data(), content_type=hs.content_types)
def test_spoiled_bytes_and_content_types_are_2xx_or_4xx(
    client: HttpClient, acme: Client, name: str, data: st.DataObject, content_type: str
) -> None:
    channel, body = VALID[name]
    raw = data.draw(hs.spoiled(json.dumps(body).encode()))
    before = counts()
    response = post(client, acme, channel, raw, content_type=content_type)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert counts() == before
        assert response.json()["error"]
    else:
        # Some spoilings still leave valid JSON (a body cut right after its last field is not one).
        assert_answer(response, before, sent=raw)


def test_the_valid_notifications_are_accepted(client: HttpClient, acme: Client) -> None:
    """The fuzzed bodies start from notifications the listener accepts (else every mutation would be
    refused for the same dull reason)."""
    for name, (channel, body) in VALID.items():
        raw = json.dumps(body).encode()
        before = counts()
        response = post(client, acme, channel, raw)
        assert response.status_code == 200, (name, response.content)
        assert_answer(response, before, sent=raw)
    # The two spellings of the same trigger (same campaign, customer, template and time) are one message.
    assert Message.objects.count() == 1


# The bodies these properties found answered with a 500 are pinned one by one in
# tests/optimove/test_listener_unstorable.py.


@fuzz(30)
@given(extra=st.integers(1, 4096), filler=st.sampled_from((b" ", b"y", b"\xff")))
def test_a_body_over_the_size_cap_is_400_and_stores_nothing(
    client: HttpClient, acme: Client, extra: int, filler: bytes
) -> None:
    # Otherwise a valid notification: the size alone refuses it.
    head, tail = b'{"EventTypeID": 14, "Padding": "', b'"}'
    raw = head + filler * (MAX_BODY_BYTES + extra - len(head) - len(tail)) + tail
    before = counts()
    response = post(client, acme, "504", raw)
    assert (response.status_code, counts()) == (400, before)
    assert response.json() == {"error": "the body is too large for a notification"}


def test_a_body_over_djangos_upload_limit_is_400(client: HttpClient, acme: Client, settings: Any) -> None:
    # Reading request.body past DATA_UPLOAD_MAX_MEMORY_SIZE raises inside Django: still a 400.
    before = counts()
    response = post(client, acme, "504", b"{" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1))
    assert (response.status_code, counts()) == (400, before)


# --------------------------------------------------------------------------------------------------
# Tokens, clients, channels in the URL
# --------------------------------------------------------------------------------------------------

VALID_13 = json.dumps(VALID["13"][1]).encode()


@fuzz(150)
@given(token=st.one_of(hs.nasty_text, st.text(max_size=60)), drop=st.booleans())
def test_a_wrong_or_missing_token_is_403_and_stores_nothing(
    client: HttpClient, acme: Client, token: str, drop: bool
) -> None:
    if token == acme.listener_token:
        return
    before = counts()
    path = listener_path(acme, "504", token)
    if drop:
        path = path.split("?", 1)[0]
    response = client.post(path, data=VALID_13, content_type="application/json")
    assert (response.status_code, counts()) == (403, before)
    assert response.json() == {"error": "wrong listener token"}


@fuzz(100)
@given(slug=st.one_of(st.from_regex(r"[-a-zA-Z0-9_]{1,70}", fullmatch=True), hs.nasty_text))
def test_an_unknown_client_is_404_and_stores_nothing(client: HttpClient, acme: Client, slug: str) -> None:
    if slug == acme.slug:
        return
    before = counts()
    response = client.post(
        listener_path(acme, "504", slug=slug), data=VALID_13, content_type="application/json"
    )
    assert (response.status_code, counts()) == (404, before)


def test_an_inactive_client_is_404_and_stores_nothing(client: HttpClient, acme: Client) -> None:
    Client.objects.filter(pk=acme.pk).update(is_active=False)
    before = counts()
    response = client.post(listener_path(acme, "504"), data=VALID_13, content_type="application/json")
    assert (response.status_code, counts(), response.json()) == (404, before, {"error": "unknown client"})


@fuzz(100)
@given(channel=st.one_of(st.sampled_from(URL_CHANNELS), hs.nasty_text.filter(bool)))
def test_any_channel_in_the_url_is_2xx_or_4xx(client: HttpClient, acme: Client, channel: str) -> None:
    # EventTypeID 1 carries no ChannelID: the URL's channel decides.
    raw = json.dumps(VALID["1"][1]).encode()
    before = counts()
    response = post(client, acme, channel, raw)
    if response.status_code == 404 and response.get("Content-Type", "").startswith("text/html"):
        # A "channel" the URL pattern cannot match (one holding "/" once decoded, for one) is Django's
        # own 404, before the view.
        assert counts() == before
        return
    assert_answer(response, before, sent=raw)
    if response.status_code == 200:
        names_504 = channel.isascii() and channel.isdigit() and int(channel) == 504
        assert response.json()["acted"] is names_504
