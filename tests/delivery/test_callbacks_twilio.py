"""Twilio status callbacks through the real URL, signed the way Twilio signs them; and the SMS send
path asking Twilio to call that URL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone
from twilio.request_validator import RequestValidator

from apps.campaigns import services
from apps.campaigns.models import Message, MessageStatus
from apps.channels.backends.sms import TwilioBackend
from apps.clients.models import Channel, ChannelKind, Client
from apps.delivery.models import DeliveryEvent
from apps.message_templates.models import MessageTemplate
from tests.delivery.callbacks_support import fixture, make_client, sent_message, snapshot, state

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token-5e6f7a8b9c"
PATH = "/delivery/acme/505/twilio/"
SID = "SM5ab5a1c2d3e4f5a6b7c8d9e0f1a2b3c4"
GATEWAY = "https://sms-gateway.example.com"
MESSAGES_API = f"{GATEWAY}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


@pytest.fixture
def sms(acme: Client) -> Channel:
    return Channel.objects.create(
        client=acme,
        name="SMS",
        kind=ChannelKind.SMS,
        optimove_channel_id=505,
        provider="twilio",
        provider_options={"from_": "+15550001000", "base_url": GATEWAY},
        provider_secrets={"account_sid": ACCOUNT, "auth_token": TOKEN},
        address_attribute="Phone",
    )


def twilio_signature(fields: dict[str, str], *, token: str = TOKEN, path: str = PATH) -> str:
    # Twilio signs the URL we gave it: the public one.
    return RequestValidator(token).compute_signature(f"{settings.PUBLIC_BASE_URL}{path}", fields)


def post_status(
    http: HttpClient, fields: dict[str, str], *, signature: str | None = None, path: str = PATH
) -> Any:
    headers = {"HTTP_X_TWILIO_SIGNATURE": signature} if signature is not None else {}
    return http.post(path, data=fields, **headers)


def post_signed(http: HttpClient, fields: dict[str, str]) -> Any:
    return post_status(http, fields, signature=twilio_signature(fields))


def accepted(stored: int, duplicates: int = 0, ignored: int = 0) -> dict[str, Any]:
    return {"status": "accepted", "stored": stored, "duplicates": duplicates, "ignored": ignored}


def test_status_callbacks_move_messages_forward_once(client: HttpClient, sms: Channel) -> None:
    delivered = sent_message(sms, customer="c1", provider_id=SID)
    failed_sid = "SM00000000000000000000000000000002"
    undelivered = sent_message(sms, customer="c2", provider_id=failed_sid)

    assert post_signed(client, fixture("twilio/status_sent.json")).json() == accepted(0, ignored=1)
    started = timezone.now()
    response = post_signed(client, fixture("twilio/status_delivered.json"))
    assert (response.status_code, response.json()) == (200, accepted(1))
    # Twilio may send a status again; and a late "sent" after "delivered" changes nothing.
    assert post_signed(client, fixture("twilio/status_delivered.json")).json() == accepted(0, duplicates=1)
    assert post_signed(client, fixture("twilio/status_sent.json")).json() == accepted(0, ignored=1)
    undelivered_fields = fixture("twilio/status_undelivered.json") | {"MessageSid": failed_sid}
    assert post_signed(client, undelivered_fields).json() == accepted(1)

    after = state(delivered)
    assert after["delivery_state"] == "delivered"
    assert started <= after["delivered_at"] <= timezone.now()  # Twilio's callback carries no time
    other = state(undelivered)
    assert (other["delivery_state"], other["bounced_at"] is not None) == ("undelivered", True)
    event = DeliveryEvent.objects.get(message=delivered)
    assert (event.provider, event.provider_message_id, event.channel) == ("twilio", SID, sms)
    # The phone numbers stay out of the stored event.
    assert event.raw == {
        "MessageSid": SID,
        "MessageStatus": "delivered",
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "RawDlrDoneDate": "2603021015",
    }
    assert DeliveryEvent.objects.get(message=undelivered).raw["ErrorCode"] == "30003"


def test_a_status_for_an_unknown_sid_is_kept(client: HttpClient, sms: Channel) -> None:
    response = post_signed(client, fixture("twilio/status_failed.json"))
    assert response.json() == accepted(1)
    kept = DeliveryEvent.objects.get()
    assert (kept.message, kept.event, kept.provider_message_id) == (None, "undelivered", SID)


def test_forged_twilio_callbacks_are_refused_and_change_nothing(client: HttpClient, sms: Channel) -> None:
    beta = make_client("beta")
    Channel.objects.create(
        client=beta,
        name="SMS",
        kind=ChannelKind.SMS,
        optimove_channel_id=505,
        provider="twilio",
        provider_options={"from_": "+15550009999"},
        provider_secrets={"account_sid": "AC" + "b" * 32, "auth_token": "beta-token"},
    )
    sent_message(sms, customer="c1", provider_id=SID)
    fields = fixture("twilio/status_delivered.json")
    before = snapshot()

    unsigned = post_status(client, fields)
    assert (unsigned.status_code, unsigned.json()) == (401, {"error": "X-Twilio-Signature is missing"})
    wrong = post_status(client, fields, signature=twilio_signature(fields, token="guessed"))
    assert (wrong.status_code, wrong.json()) == (
        403,
        {"error": "X-Twilio-Signature does not match this channel's auth token"},
    )
    # A genuine signature over other fields: the status was changed on the way.
    tampered = fields | {"MessageStatus": "read"}
    assert post_status(client, tampered, signature=twilio_signature(fields)).status_code == 403
    # Beta's token signing for Acme's URL, and Acme's signature replayed at Beta's URL.
    assert (
        post_status(client, fields, signature=twilio_signature(fields, token="beta-token")).status_code == 403
    )
    beta_path = "/delivery/beta/505/twilio/"
    assert post_status(client, fields, signature=twilio_signature(fields), path=beta_path).status_code == 403
    # Signed with this channel's token but about another Twilio account.
    other_account = fields | {"AccountSid": "AC" + "c" * 32}
    refused = post_signed(client, other_account)
    assert (refused.status_code, refused.json()) == (
        403,
        {"error": "the callback is for another Twilio account than this channel's"},
    )
    nobody = post_status(client, fields, signature="x", path="/delivery/nobody/505/twilio/")
    assert nobody.status_code == 404
    assert client.get(PATH).status_code == 405

    assert snapshot() == before


def test_a_signed_callback_without_a_status_is_a_clear_400(client: HttpClient, sms: Channel) -> None:
    fields = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01"}
    response = post_signed(client, fields)
    assert (response.status_code, response.json()) == (
        400,
        {"error": "a Twilio status callback needs MessageSid and MessageStatus"},
    )
    assert DeliveryEvent.objects.count() == 0


# The send path gives Twilio our callback URL
# ------------------------------------------------------------------------------


def queue_one(channel: Channel, phone: str) -> Message:
    MessageTemplate.objects.create(
        client=channel.client, channel=channel, template_id=14, name="T", text_body="Hi"
    )
    message = sent_message(channel, customer="c1")
    now = datetime.now(UTC)
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.QUEUED,
        sent_at=None,
        provider_message_id="",
        send_at=now,
        due_at=now,
        attributes={"Phone": phone},
    )
    return message


@responses.activate
def test_sms_sends_ask_twilio_to_report_to_our_url_and_the_report_lands(
    client: HttpClient, sms: Channel, redis_client: Any
) -> None:
    responses.post(MESSAGES_API, status=201, json={"sid": SID, "status": "queued", "account_sid": ACCOUNT})
    message = queue_one(sms, "+15551230001")

    outcome = services.message_batch_send(message_ids=[message.pk], sleep=lambda _: None)

    assert outcome.sent == 1
    [call] = responses.calls
    assert parse_qs(call.request.body)["StatusCallback"] == [f"{settings.PUBLIC_BASE_URL}{PATH}"]
    assert state(message)["status"] == "sent"
    # Twilio then calls that URL.
    assert post_signed(client, fixture("twilio/status_delivered.json")).json() == accepted(1)
    assert state(message)["delivery_state"] == "delivered"


@responses.activate
@pytest.mark.parametrize(
    ("option", "expected"),
    [(False, None), ("https://sms-status.example.com/cb", ["https://sms-status.example.com/cb"])],
)
def test_option_status_callback_turns_it_off_or_points_it_elsewhere(
    sms: Channel, redis_client: Any, option: object, expected: list[str] | None
) -> None:
    sms.provider_options = {**sms.provider_options, "status_callback": option}
    sms.save()
    responses.post(MESSAGES_API, status=201, json={"sid": SID, "status": "queued", "account_sid": ACCOUNT})
    message = queue_one(sms, "+15551230001")

    assert services.message_batch_send(message_ids=[message.pk], sleep=lambda _: None).sent == 1

    assert parse_qs(responses.calls[0].request.body).get("StatusCallback") == expected


def test_a_channel_without_an_auth_token_cannot_check_callbacks(client: HttpClient, sms: Channel) -> None:
    sms.provider_secrets = {"account_sid": ACCOUNT}
    sms.save()
    sent_message(sms, customer="c1", provider_id=SID)
    before = snapshot()

    response = post_signed(client, fixture("twilio/status_delivered.json"))

    assert (response.status_code, response.json()) == (
        503,
        {"error": "the channel has no secret auth_token to check Twilio's signature with"},
    )
    assert snapshot() == before


def test_option_status_callback_must_be_a_switch_or_a_url() -> None:
    secrets = {"account_sid": ACCOUNT, "auth_token": TOKEN}
    for good in (True, False, "https://sms-status.example.com/cb"):
        assert (
            TwilioBackend.config_errors(options={"from_": "+1555", "status_callback": good}, secrets=secrets)
            == []
        )
    assert TwilioBackend.config_errors(
        options={"from_": "+1555", "status_callback": "yes"}, secrets=secrets
    ) == ["option status_callback must be true, false or an http(s) URL"]
