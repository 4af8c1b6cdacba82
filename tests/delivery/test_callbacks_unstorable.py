"""Authenticated provider callbacks carrying what PostgreSQL cannot store or Python cannot read (huge
numbers, deep nesting, NaN, NUL, lone surrogates, times past the calendar) are a 400 naming the
problem, and store nothing; these used to be 500s. Mailgun's deep body is refused before its
signature is even checked (anymail parses first)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone
from twilio.request_validator import RequestValidator

from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunState
from apps.channels.signatures import webhook_signature
from apps.clients.models import Channel, ChannelKind, Client
from apps.subscriptions.models import SubscriptionChange
from tests.delivery.callbacks_support import snapshot

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

RECEIPT = {"id": "k-510", "event": "delivered", "occurred_at": "2026-03-02T10:00:05Z"}
TWILIO_STATUS = {"AccountSid": TWILIO_ACCOUNT, "MessageSid": "SM1", "MessageStatus": "delivered"}
TWILIO_INBOUND = {"AccountSid": TWILIO_ACCOUNT, "From": "+15551230001", "MessageSid": "SM9", "Body": "STOP"}
POSTMARK = {
    "RecordType": "Delivery",
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
DEEP = b"[" * 5000 + b"]" * 5000


@pytest.fixture
def acme(db: None) -> Client:
    """A client with one channel per provider family, each with a sent message the well-formed
    callbacks above would find (so a stored event or consent change would show in the snapshot)."""
    client = Client.objects.create(slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net")
    channels = [
        (510, "webhook", ChannelKind.WEBHOOK, {"signing_secret": HOOK_SECRET}, "receiver-1"),
        (505, "twilio", ChannelKind.SMS, {"account_sid": TWILIO_ACCOUNT, "auth_token": TWILIO_TOKEN}, "SM1"),
        (
            506,
            "anymail:postmark",
            ChannelKind.EMAIL,
            {"server_token": "t", "webhook_secret": PM_AUTH},
            "pm-0001",
        ),
        (
            507,
            "anymail:mailgun",
            ChannelKind.EMAIL,
            {"api_key": "k", "webhook_signing_key": MG_KEY},
            "<20180812211713.1.DF@example.org>",
        ),
    ]
    sent_at = timezone.now() - timedelta(hours=1)
    for channel_id, provider, kind, secrets, provider_id in channels:
        channel = Channel.objects.create(
            client=client,
            name=provider,
            kind=kind,
            optimove_channel_id=channel_id,
            provider=provider,
            provider_secrets=secrets,
            address_attribute="Mobile" if kind == ChannelKind.SMS else "",
        )
        run = CampaignRun.objects.create(
            client=client, channel=channel, campaign_id=1, state=RunState.SENDING, paging_done=True
        )
        Message.objects.create(
            run=run,
            customer_id="c1",
            template_id=14,
            idempotency_key=f"k-{channel_id}",
            send_at=sent_at,
            due_at=sent_at,
            status=MessageStatus.SENT,
            sent_at=sent_at,
            provider_message_id=provider_id,
            attributes={"Mobile": "+15551230001"},
        )
    return client


@pytest.fixture
def http() -> HttpClient:
    return HttpClient(enforce_csrf_checks=True)


def receipt(**changes: Any) -> bytes:
    return json.dumps({**RECEIPT, **changes}).encode()


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def mailgun_signed(event_data: dict[str, Any]) -> bytes:
    timestamp, token = "1534108637", "651869375b9df3c98fc15c4889b102119add1235c38fc92824"
    digest = hmac.new(MG_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    signature = {"timestamp": timestamp, "token": token, "signature": digest}
    return json.dumps({"signature": signature, "event-data": event_data}).encode()


def post(http: HttpClient, endpoint: str, payload: Any) -> Any:
    if endpoint == "receipts":
        ts = int(time.time())
        return http.generic(
            "POST",
            HOOK_PATH,
            data=payload,
            content_type="application/json",
            HTTP_X_PARTNER_TIMESTAMP=str(ts),
            HTTP_X_PARTNER_SIGNATURE=webhook_signature(HOOK_SECRET, ts, payload),
        )
    if endpoint in ("twilio-status", "twilio-inbound"):
        path = TWILIO_STATUS_PATH if endpoint == "twilio-status" else TWILIO_INBOUND_PATH
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(
            f"{settings.PUBLIC_BASE_URL}{path}", payload
        )
        return http.generic(
            "POST",
            path,
            data=urlencode(payload),
            content_type="application/x-www-form-urlencoded",
            HTTP_X_TWILIO_SIGNATURE=signature,
        )
    if endpoint == "postmark":
        auth = "Basic " + base64.b64encode(PM_AUTH.encode()).decode()
        return http.generic(
            "POST", POSTMARK_PATH, data=payload, content_type="application/json", HTTP_AUTHORIZATION=auth
        )
    assert endpoint == "mailgun"
    return http.generic("POST", MAILGUN_PATH, data=payload, content_type="application/json")


def everything() -> tuple[Any, int]:
    return snapshot(), SubscriptionChange.objects.count()


@pytest.mark.parametrize(
    ("endpoint", "payload", "error"),
    [
        # Signed receipts: json.loads' own limits (ValueError, RecursionError) ...
        ("receipts", b"[" + b"1" * 4301 + b"]", "the body must be JSON with numbers of a readable size"),
        ("receipts", DEEP, "the body must be JSON nested less deeply"),
        # ... nesting the parser reads but we do not keep ...
        ("receipts", receipt(extra=nested(32)), "the body is nested more than 32 levels deep"),
        # ... what the JSON and text columns refuse, in raw and in id / url ...
        (
            "receipts",
            receipt(extra=float("nan")),
            "'extra' holds a number JSON cannot carry (NaN or Infinity)",
        ),
        ("receipts", b'[{"id": "k-510", "x": 1e400}]', "receipt 0: 'x' holds a number JSON cannot carry"),
        ("receipts", receipt(extra="a\x00"), "'extra' holds a NUL character"),
        ("receipts", receipt(extra={"\ud800": 1}), "'extra' holds an unpaired UTF-16 surrogate"),
        ("receipts", receipt(id="k\x00"), "'id' holds a NUL character"),
        ("receipts", receipt(url="https://x.test/\x00"), "'url' holds a NUL character"),
        # ... and times: no such date (parse_datetime's ValueError), or past the calendar in UTC.
        ("receipts", receipt(occurred_at="2026-13-45T00:00:00Z"), "occurred_at must be an ISO 8601 time"),
        (
            "receipts",
            receipt(occurred_at="0001-01-01T00:00:00+05:00"),
            "occurred_at is outside the calendar once converted to UTC",
        ),
        # Twilio's form fields: %00 in the message id, in a field kept as raw, in the sender.
        ("twilio-status", {**TWILIO_STATUS, "MessageSid": "SM\x00"}, "'MessageSid' holds a NUL character"),
        ("twilio-status", {**TWILIO_STATUS, "ErrorCode": "\x00"}, "'ErrorCode' holds a NUL character"),
        ("twilio-inbound", {**TWILIO_INBOUND, "From": "+1555\x00"}, "'From' holds a NUL character"),
        # Postmark (authenticated): the event anymail parsed, and its time.
        (
            "postmark",
            json.dumps({**POSTMARK, "Extra": float("nan")}).encode(),
            "the anymail:postmark event cannot be stored: 'Extra' holds a number JSON cannot carry",
        ),
        (
            "postmark",
            json.dumps({**POSTMARK, "MessageID": "pm\x00"}).encode(),
            "the anymail:postmark event cannot be stored: 'MessageID' holds a NUL character",
        ),
        (
            "postmark",
            json.dumps({**POSTMARK, "Extra": "\udc00"}).encode(),
            "the anymail:postmark event cannot be stored: 'Extra' holds an unpaired UTF-16 surrogate",
        ),
        ("postmark", DEEP, "the body must be JSON nested less deeply"),
        (
            "postmark",
            json.dumps({**POSTMARK, "DeliveredAt": "0001-01-01T00:00:00+05:00"}).encode(),
            "the event's time is outside the calendar once converted to UTC",
        ),
        # Mailgun: anymail's datetime.fromtimestamp() overflows (OverflowError, or OSError for 1e17) ...
        (
            "mailgun",
            mailgun_signed({**MAILGUN_EVENT, "timestamp": 2**63 - 1}),
            "the anymail:mailgun event's time is outside the calendar",
        ),
        (
            "mailgun",
            mailgun_signed({**MAILGUN_EVENT, "timestamp": "Infinity"}),
            "the anymail:mailgun event's time is outside the calendar",
        ),
        (
            "mailgun",
            mailgun_signed({**MAILGUN_EVENT, "timestamp": "1e17"}),
            "the anymail:mailgun event's time is outside the calendar",
        ),
        # ... and a deep body without any signature fails anymail's parse before its signature check.
        ("mailgun", DEEP, "the body must be JSON nested less deeply"),
    ],
)
def test_unstorable_callbacks_are_400_and_store_nothing(
    http: HttpClient, acme: Client, endpoint: str, payload: Any, error: str
) -> None:
    before = everything()
    response = post(http, endpoint, payload)
    assert response.status_code == 400, response.content[:300]
    assert error in response.json()["error"]
    assert everything() == before


def test_the_same_callbacks_well_formed_are_stored(http: HttpClient, acme: Client) -> None:
    """The bodies above start from callbacks that are accepted, so each 400 is the change's doing;
    nesting up to the limit is kept."""
    events_before = len(snapshot()[0])
    assert post(http, "receipts", receipt(extra=nested(31))).json()["stored"] == 1
    assert post(http, "twilio-status", TWILIO_STATUS).json()["stored"] == 1
    assert post(http, "postmark", json.dumps(POSTMARK).encode()).json()["stored"] == 1
    assert post(http, "mailgun", mailgun_signed(MAILGUN_EVENT)).json()["stored"] == 1
    changes_before = SubscriptionChange.objects.count()
    assert post(http, "twilio-inbound", TWILIO_INBOUND).status_code == 200
    assert SubscriptionChange.objects.count() == changes_before + 1  # STOP from the known number
    assert len(snapshot()[0]) == events_before + 4
