"""Provider callbacks under /delivery/ (apps/delivery) under generated hostile requests, through the
real URLs: the signed webhook channel's receipts, Twilio's status callbacks and incoming messages,
and anymail's tracking webhooks (Postmark with basic auth, Mailgun with its HMAC signature).

Properties: every answer is 2xx or 4xx, never 5xx; an unauthenticated call (no signature, a forged
one, the wrong secret, a stale timestamp) is 401/403 and stores nothing, whatever its body; an
authenticated but unreadable body is 4xx and stores nothing; an accepted one stores at most the events
it carries, and the messages' delivery states only move forward.

Inputs that used to answer 500 (unstorable values, deep nesting, times past the calendar) are pinned
at the end, each answered 400 with nothing stored; the generated bodies still mostly keep to storable
values (`hs.storable_*`) so the properties explore the accepting paths."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client as HttpClient
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunState
from apps.channels.signatures import webhook_signature
from apps.clients.models import Channel, ChannelKind, Client
from apps.delivery.models import DeliveryEvent
from apps.delivery.services import STATE_RANK
from apps.subscriptions.models import Subscription, SubscriptionChange
from tests.fuzz import strategies as hs
from tests.fuzz.conftest import fuzz, tally

# A property that hangs fails here rather than at the suite-wide 300 s.
pytestmark = [pytest.mark.django_db, pytest.mark.timeout(120)]

HOOK_SECRET = "hook-signing-secret-41"
TWILIO_ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "twilio-auth-token-5e6f7a8b9c"
PM_AUTH = "pm-hook:Quartz-Lantern-77"
MG_KEY = "mg-signing-key-8c1d2e"

HOOK_PATH = "/delivery/acme/510/webhook/"
TWILIO_STATUS_PATH = "/delivery/acme/505/twilio/"
TWILIO_INBOUND_PATH = "/delivery/acme/505/twilio/inbound/"
POSTMARK_PATH = "/delivery/acme/506/anymail/postmark/tracking/"
MAILGUN_PATH = "/delivery/acme/507/anymail/mailgun/tracking/"

DELIVERY_COLUMNS = (
    "delivered_at",
    "opened_at",
    "clicked_at",
    "bounced_at",
    "complained_at",
    "unsubscribed_at",
)


@dataclass(frozen=True)
class Stored:
    events: int
    subscriptions: int
    subscription_changes: int
    messages: tuple[tuple[Any, ...], ...]  # (pk, delivery_state, *first-time columns) of each message


_TABLES = (DeliveryEvent, Subscription, SubscriptionChange)
_SUBQUERIES = [f"(SELECT count(*) FROM {model._meta.db_table})" for model in _TABLES]  # noqa: S608


def stored() -> Stored:
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(_SUBQUERIES))
        events, subscriptions, changes = cursor.fetchone()
    messages = tuple(Message.objects.order_by("pk").values_list("pk", "delivery_state", *DELIVERY_COLUMNS))
    return Stored(events, subscriptions, changes, messages)


def assert_only_forward(before: Stored, after: Stored) -> None:
    """Delivery states never step back, and a first-time column once set stays set."""
    for old, new in zip(before.messages, after.messages, strict=True):
        assert STATE_RANK.get(new[1], 0) >= STATE_RANK.get(old[1], 0), (old, new)
        for was, now in zip(old[2:], new[2:], strict=True):
            assert was is None or now is not None, (old, new)


def assert_answer(response: Any, before: Stored, *, at_most: int) -> None:
    """An authenticated call: 2xx stores at most `at_most` events; 4xx stores nothing."""
    tally(f"answered {response.status_code}")
    assert response.status_code < 500, response.content[:300]
    after = stored()
    if response.status_code >= 400:
        assert after == before, f"a refused call ({response.status_code}) changed the database"
        assert response.json()["error"]
        return
    assert response.status_code == 200
    assert 0 <= after.events - before.events <= at_most
    assert_only_forward(before, after)


def assert_refused(response: Any, before: Stored, *, statuses: tuple[int, ...] = (401, 403)) -> None:
    """An unauthenticated call: refused, and nothing stored."""
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    assert stored() == before
    assert response.json()["error"]


@pytest.fixture
def http() -> HttpClient:
    """Providers post without a CSRF token: the callbacks must not need one."""
    return HttpClient(enforce_csrf_checks=True)


@pytest.fixture
def acme(db: None) -> Client:
    client = Client.objects.create(slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net")
    channels = [
        Channel.objects.create(
            client=client,
            name="Hook",
            kind=ChannelKind.WEBHOOK,
            optimove_channel_id=510,
            provider="webhook",
            provider_options={"url": "https://hooks.example.test/deliver"},
            provider_secrets={"signing_secret": HOOK_SECRET},
        ),
        Channel.objects.create(
            client=client,
            name="SMS",
            kind=ChannelKind.SMS,
            optimove_channel_id=505,
            provider="twilio",
            provider_options={"from_": "+15550001000"},
            provider_secrets={"account_sid": TWILIO_ACCOUNT, "auth_token": TWILIO_TOKEN},
            address_attribute="Mobile",
        ),
        Channel.objects.create(
            client=client,
            name="Email",
            kind=ChannelKind.EMAIL,
            optimove_channel_id=506,
            provider="anymail:postmark",
            provider_options={"from_email": "news@shop.example"},
            provider_secrets={"server_token": "pm-server-token", "webhook_secret": PM_AUTH},
        ),
        Channel.objects.create(
            client=client,
            name="Email (Mailgun)",
            kind=ChannelKind.EMAIL,
            optimove_channel_id=507,
            provider="anymail:mailgun",
            provider_options={"from_email": "news@shop.example"},
            provider_secrets={"api_key": "mg-api-key", "webhook_signing_key": MG_KEY},
        ),
    ]
    # One sent message per channel, which well-formed callbacks find: key k-1, Twilio SID, Postmark id.
    provider_ids = {510: "receiver-1", 505: "SM1", 506: "pm-0001", 507: "<20180812211713.1.DF@example.org>"}
    sent_at = timezone.now() - timedelta(hours=1)  # within the retention period an SMS reply looks in
    for channel in channels:
        run = CampaignRun.objects.create(
            client=client, channel=channel, campaign_id=1, state=RunState.SENDING, paging_done=True
        )
        Message.objects.create(
            run=run,
            customer_id="c1",
            template_id=14,
            idempotency_key=f"k-{channel.optimove_channel_id}",
            send_at=sent_at,
            due_at=sent_at,
            status=MessageStatus.SENT,
            sent_at=sent_at,
            provider_message_id=provider_ids[channel.optimove_channel_id],
            attributes={"Mobile": "+15551230001"},
        )
    return client


# --------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------


def post_receipts(http: HttpClient, body: bytes, *, secret: str = HOOK_SECRET, ts: int | None = None) -> Any:
    ts = int(time.time()) if ts is None else ts
    return http.generic(
        "POST",
        HOOK_PATH,
        data=body,
        content_type="application/json",
        HTTP_X_PARTNER_TIMESTAMP=str(ts),
        HTTP_X_PARTNER_SIGNATURE=webhook_signature(secret, ts, body),
    )


def post_twilio(
    http: HttpClient,
    path: str,
    fields: dict[str, str],
    *,
    token: str = TWILIO_TOKEN,
    signature: str | None = None,
) -> Any:
    """Form-encoded as Twilio posts, signed over the public URL as Twilio signs it."""
    if signature is None:
        signature = RequestValidator(token).compute_signature(f"{settings.PUBLIC_BASE_URL}{path}", fields)
    return http.generic(
        "POST",
        path,
        data=urlencode(fields),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
    )


def basic(auth: str) -> str:
    return "Basic " + base64.b64encode(auth.encode()).decode()


def post_postmark(http: HttpClient, body: bytes, *, auth: str | None = PM_AUTH) -> Any:
    headers = {"HTTP_AUTHORIZATION": basic(auth)} if auth is not None else {}
    return http.generic("POST", POSTMARK_PATH, data=body, content_type="application/json", **headers)


def mailgun_signed(event_data: Any, *, key: str = MG_KEY) -> bytes:
    timestamp, token = "1534108637", "651869375b9df3c98fc15c4889b102119add1235c38fc92824"
    digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    body = {
        "signature": {"timestamp": timestamp, "token": token, "signature": digest},
        "event-data": event_data,
    }
    return hs.encoded(body, ascii_only=True)


def post_mailgun(http: HttpClient, body: bytes) -> Any:
    return http.generic("POST", MAILGUN_PATH, data=body, content_type="application/json")


# Well-formed bodies the mutations start from (tests/fixtures/providers).
RECEIPT = {"id": "k-510", "event": "delivered", "occurred_at": "2026-03-02T10:00:05Z"}
TWILIO_STATUS = {
    "ApiVersion": "2010-04-01",
    "AccountSid": TWILIO_ACCOUNT,
    "From": "+15550001000",
    "To": "+15551230001",
    "MessageSid": "SM1",
    "MessageStatus": "delivered",
    "RawDlrDoneDate": "2603021015",
}
TWILIO_INBOUND = {"AccountSid": TWILIO_ACCOUNT, "From": "+15551230001", "MessageSid": "SM9", "Body": "STOP"}
POSTMARK = {
    "RecordType": "Delivery",
    "ServerId": 23,
    "MessageID": "pm-0001",
    "Recipient": "recipient@example.com",
    "DeliveredAt": "2026-03-02T10:28:10.2735393-04:00",
}
MAILGUN_EVENT = {
    "event": "delivered",
    "timestamp": 1534108637.153125,
    "id": "hTWCTD81RtiDN",
    "recipient": "recipient@example.com",
    "message": {"headers": {"message-id": "20180812211713.1.DF@example.org"}},
}


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any], values: st.SearchStrategy[Any]) -> dict[str, Any]:
    """`valid` with one field replaced by `values`, removed, or a hostile field added."""
    body = dict(valid)
    how = draw(st.sampled_from(("replace", "replace", "remove", "extra")))
    key = draw(st.sampled_from(sorted(body)))
    if how == "replace":
        body[key] = draw(values)
    elif how == "remove":
        del body[key]
    else:
        body[draw(hs.storable_text)] = draw(values)
    return body


storable_json = hs.storable_json_values(10)
form_text = st.one_of(
    hs.storable_text, st.sampled_from(("delivered", "read", "failed", "STOP", "START", "SM1"))
)


# --------------------------------------------------------------------------------------------------
# The signed webhook channel's receipts
# --------------------------------------------------------------------------------------------------


@fuzz(80)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        storable_json.map(lambda value: hs.encoded(value, ascii_only=True)),
        st.lists(mutated(RECEIPT, storable_json), min_size=1, max_size=3).map(
            lambda items: hs.encoded(items, ascii_only=False)
        ),
        mutated(RECEIPT, storable_json).map(lambda item: hs.encoded(item, ascii_only=True)),
    )
)
def test_signed_receipts_of_any_shape_are_2xx_or_4xx(http: HttpClient, acme: Client, body: bytes) -> None:
    before = stored()
    response = post_receipts(http, body)
    try:
        items = json.loads(body)
    except ValueError:
        items = None
    assert_answer(response, before, at_most=len(items) if isinstance(items, list) else 1)


@fuzz(70)
@given(
    body=st.one_of(st.binary(max_size=200), st.just(json.dumps(RECEIPT).encode())),
    how=st.sampled_from(
        ("no-signature", "no-timestamp", "forged", "wrong-secret", "stale", "future", "garbage-ts")
    ),
    forged=hs.nasty_text.filter(lambda text: "\x00" not in text and text.isascii()),
)
def test_unsigned_or_forged_receipts_are_refused_and_store_nothing(
    http: HttpClient, acme: Client, body: bytes, how: str, forged: str
) -> None:
    ts = int(time.time())
    headers = {
        "HTTP_X_PARTNER_TIMESTAMP": str(ts),
        "HTTP_X_PARTNER_SIGNATURE": webhook_signature(HOOK_SECRET, ts, body),
    }
    if how == "no-signature":
        del headers["HTTP_X_PARTNER_SIGNATURE"]
    elif how == "no-timestamp":
        del headers["HTTP_X_PARTNER_TIMESTAMP"]
    elif how == "forged":
        headers["HTTP_X_PARTNER_SIGNATURE"] = forged or "v1=0"
    elif how == "wrong-secret":
        headers["HTTP_X_PARTNER_SIGNATURE"] = webhook_signature(HOOK_SECRET + "x", ts, body)
    elif how in ("stale", "future"):
        # Well past the 300 s tolerance: a timestamp 301 s ahead came within it when the clock ticked
        # over a second between here and the server's check.
        moved = ts - 330 if how == "stale" else ts + 330
        headers.update(
            HTTP_X_PARTNER_TIMESTAMP=str(moved),
            HTTP_X_PARTNER_SIGNATURE=webhook_signature(HOOK_SECRET, moved, body),
        )
    else:
        headers["HTTP_X_PARTNER_TIMESTAMP"] = forged or "x"
    before = stored()
    response = http.generic("POST", HOOK_PATH, data=body, content_type="application/json", **headers)
    assert_refused(response, before)


# --------------------------------------------------------------------------------------------------
# Twilio: status callbacks and incoming messages
# --------------------------------------------------------------------------------------------------


@fuzz(70)
@given(
    path=st.sampled_from((TWILIO_STATUS_PATH, TWILIO_INBOUND_PATH)),
    fields=st.one_of(
        st.dictionaries(form_text, form_text, max_size=8),
        mutated(TWILIO_STATUS, form_text),
        mutated(TWILIO_INBOUND, form_text),
    ),
)
def test_signed_twilio_callbacks_with_any_fields_are_2xx_or_4xx(
    http: HttpClient, acme: Client, path: str, fields: dict[str, str]
) -> None:
    before = stored()
    response = post_twilio(http, path, fields)
    assert response.status_code < 500, response.content[:300]
    if path == TWILIO_INBOUND_PATH and response.status_code == 200:
        # TwiML, not JSON; an incoming message records no delivery event, at most one consent change.
        assert response["Content-Type"].startswith("text/xml")
        after = stored()
        assert after.events == before.events
        assert after.subscription_changes - before.subscription_changes <= 1
        return
    assert_answer(response, before, at_most=1)


@fuzz(70)
@given(
    path=st.sampled_from((TWILIO_STATUS_PATH, TWILIO_INBOUND_PATH)),
    fields=st.one_of(st.just(TWILIO_STATUS), st.just(TWILIO_INBOUND), st.dictionaries(form_text, form_text)),
    how=st.sampled_from(("missing", "forged", "wrong-token", "other-url", "other-fields")),
    forged=st.text(st.characters(codec="ascii", exclude_characters="\x00\r\n"), max_size=40),
)
def test_unsigned_or_forged_twilio_callbacks_are_refused_and_store_nothing(
    http: HttpClient, acme: Client, path: str, fields: dict[str, str], how: str, forged: str
) -> None:
    before = stored()
    url = f"{settings.PUBLIC_BASE_URL}{path}"
    if how == "missing":
        response = http.generic(
            "POST", path, data=urlencode(fields), content_type="application/x-www-form-urlencoded"
        )
    elif how == "forged":
        response = post_twilio(http, path, fields, signature=forged or "x")
    elif how == "wrong-token":
        response = post_twilio(http, path, fields, token=TWILIO_TOKEN + "x")
    elif how == "other-url":  # a signature for another endpoint or client, replayed here
        other = path.replace("/acme/", "/beta/")
        response = post_twilio(
            http,
            path,
            fields,
            signature=RequestValidator(TWILIO_TOKEN).compute_signature(
                f"{settings.PUBLIC_BASE_URL}{other}", fields
            ),
        )
    else:  # signed over other fields than those sent
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, {**fields, "Extra": "1"})
        response = post_twilio(http, path, fields, signature=signature)
    assert_refused(response, before)


# --------------------------------------------------------------------------------------------------
# anymail: Postmark (basic auth) and Mailgun (HMAC in the body)
# --------------------------------------------------------------------------------------------------


@fuzz(70)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        storable_json.map(lambda value: hs.encoded(value, ascii_only=True)),
        mutated(POSTMARK, storable_json).map(lambda value: hs.encoded(value, ascii_only=False)),
    )
)
def test_authenticated_postmark_bodies_of_any_shape_are_2xx_or_4xx(
    http: HttpClient, acme: Client, body: bytes
) -> None:
    before = stored()
    response = post_postmark(http, body)
    assert_answer(response, before, at_most=1)


@fuzz(70)
@given(
    event_data=st.one_of(storable_json, mutated(MAILGUN_EVENT, storable_json)),
)
def test_signed_mailgun_bodies_of_any_shape_are_2xx_or_4xx(
    http: HttpClient, acme: Client, event_data: Any
) -> None:
    before = stored()
    response = post_mailgun(http, mailgun_signed(event_data))
    assert_answer(response, before, at_most=1)


@fuzz(70)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        storable_json.map(lambda value: hs.encoded(value, ascii_only=True)),
        st.just(hs.encoded(POSTMARK, ascii_only=True)),
    ),
    auth=st.one_of(st.none(), st.text(st.characters(codec="latin-1"), max_size=30)),
    mailgun_key=st.text(st.characters(codec="ascii"), max_size=20),
)
def test_anymail_calls_without_the_channels_secret_are_refused_and_store_nothing(
    http: HttpClient, acme: Client, body: bytes, auth: str | None, mailgun_key: str
) -> None:
    if auth == PM_AUTH or mailgun_key == MG_KEY:
        return
    before = stored()
    response = post_postmark(http, body, auth=auth)
    assert_refused(response, before)
    # Mailgun: the body's own signature made with another key (or no signature block at all).
    response = post_mailgun(http, mailgun_signed(MAILGUN_EVENT, key=mailgun_key))
    assert_refused(response, before)


def test_the_starting_bodies_are_accepted(http: HttpClient, acme: Client) -> None:
    """The mutations start from callbacks the endpoints accept and store."""
    before = stored()
    assert post_receipts(http, json.dumps(RECEIPT).encode()).json()["stored"] == 1
    assert post_twilio(http, TWILIO_STATUS_PATH, TWILIO_STATUS).json()["stored"] == 1
    assert post_postmark(http, json.dumps(POSTMARK).encode()).json()["stored"] == 1
    assert post_mailgun(http, mailgun_signed(MAILGUN_EVENT)).json()["stored"] == 1
    inbound = post_twilio(http, TWILIO_INBOUND_PATH, TWILIO_INBOUND)
    assert inbound.status_code == 200
    after = stored()
    assert after.events == before.events + 4
    assert after.subscription_changes == before.subscription_changes + 1  # STOP from a known number
    assert all(row[1] == "delivered" for row in after.messages)


@fuzz(60)
@given(
    slug=st.from_regex(r"[a-z0-9_-]{1,20}", fullmatch=True),
    channel_id=st.integers(0, 10**12),
    endpoint=st.sampled_from(("webhook/", "twilio/", "twilio/inbound/", "anymail/postmark/tracking/")),
)
def test_unknown_clients_and_channels_are_404_and_store_nothing(
    http: HttpClient, acme: Client, slug: str, channel_id: int, endpoint: str
) -> None:
    known = {"webhook/": 510, "twilio/": 505, "twilio/inbound/": 505, "anymail/postmark/tracking/": 506}
    if slug == "acme" and channel_id == known[endpoint]:
        return
    before = stored()
    response = http.post(
        f"/delivery/{slug}/{channel_id}/{endpoint}", data=b"{}", content_type="application/json"
    )
    assert_refused(response, before, statuses=(404,))


# --------------------------------------------------------------------------------------------------
# Inputs that once answered 500 in apps/delivery: each is an authenticated call (for Mailgun's deep
# body an unauthenticated one, which anymail parses before it checks the signature), now a 400 that
# stores nothing.
# --------------------------------------------------------------------------------------------------


def _receipt_bytes(**changes: Any) -> bytes:
    return json.dumps({**RECEIPT, **changes}).encode()


DEEP = b"[" * 5000 + b"]" * 5000
FORMERLY_500 = [
    # json.loads: int() refuses 4301 digits (ValueError); 5,000 "[" exhaust the parser (RecursionError).
    pytest.param("receipts", b"[" + b"1" * 4301 + b"]", id="receipt-huge-int"),
    pytest.param("receipts", DEEP, id="receipt-deep"),
    # What PostgreSQL cannot store (DataError): NaN, NUL and lone surrogates, in raw or in text columns.
    pytest.param("receipts", _receipt_bytes(extra=float("nan")), id="receipt-nan"),
    pytest.param("receipts", _receipt_bytes(extra="a\x00"), id="receipt-nul-in-raw"),
    pytest.param("receipts", _receipt_bytes(extra="\ud800"), id="receipt-surrogate"),
    pytest.param("receipts", _receipt_bytes(id="k\x00"), id="receipt-nul-in-id"),
    pytest.param("receipts", _receipt_bytes(url="https://x.test/\x00"), id="receipt-nul-in-url"),
    # parse_datetime raises ValueError for month 13; year 1 at +05:00 overflows in UTC.
    pytest.param("receipts", _receipt_bytes(occurred_at="2026-13-45T00:00:00Z"), id="receipt-month-13"),
    pytest.param("receipts", _receipt_bytes(occurred_at="0001-01-01T00:00:00+05:00"), id="receipt-year-1"),
    pytest.param("twilio-status", {**TWILIO_STATUS, "MessageSid": "SM\x00"}, id="twilio-nul-sid"),
    pytest.param("twilio-status", {**TWILIO_STATUS, "ErrorCode": "\x00"}, id="twilio-nul-raw"),
    pytest.param("twilio-inbound", {**TWILIO_INBOUND, "From": "+1555\x00"}, id="twilio-inbound-nul-from"),
    pytest.param("postmark", json.dumps({**POSTMARK, "Extra": float("nan")}).encode(), id="postmark-nan"),
    pytest.param("postmark", json.dumps({**POSTMARK, "MessageID": "pm\x00"}).encode(), id="postmark-nul-id"),
    pytest.param("postmark", json.dumps({**POSTMARK, "Extra": "\udc00"}).encode(), id="postmark-surrogate"),
    pytest.param("postmark", DEEP, id="postmark-deep"),
    pytest.param(
        "postmark",
        json.dumps({**POSTMARK, "DeliveredAt": "0001-01-01T00:00:00+05:00"}).encode(),
        id="postmark-year-1",
    ),
    # datetime.fromtimestamp() in anymail's Mailgun view: OverflowError, or OSError for 1e17.
    pytest.param(
        "mailgun", mailgun_signed({**MAILGUN_EVENT, "timestamp": 2**63 - 1}), id="mailgun-huge-timestamp"
    ),
    pytest.param(
        "mailgun", mailgun_signed({**MAILGUN_EVENT, "timestamp": "Infinity"}), id="mailgun-inf-timestamp"
    ),
    pytest.param(
        "mailgun", mailgun_signed({**MAILGUN_EVENT, "timestamp": "1e17"}), id="mailgun-1e17-timestamp"
    ),
    pytest.param("mailgun", DEEP, id="mailgun-deep-unauthenticated"),
]


@pytest.mark.parametrize(("endpoint", "payload"), FORMERLY_500)
def test_formerly_500_inputs_are_400_and_store_nothing(
    http: HttpClient, acme: Client, endpoint: str, payload: Any
) -> None:
    before = stored()
    if endpoint == "receipts":
        response = post_receipts(http, payload)
    elif endpoint == "twilio-status":
        response = post_twilio(http, TWILIO_STATUS_PATH, payload)
    elif endpoint == "twilio-inbound":
        response = post_twilio(http, TWILIO_INBOUND_PATH, payload)
    elif endpoint == "postmark":
        response = post_postmark(http, payload)
    else:
        response = post_mailgun(http, payload)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]
    assert stored() == before
