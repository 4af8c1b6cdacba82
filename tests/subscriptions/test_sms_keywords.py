"""SMS keyword replies through Twilio's incoming-message webhook, signed the way Twilio signs: STOP and
its kin opt the sender out of that SMS channel only, START opts them back in; the sender is found
through the messages we sent to that number; unknown numbers and forged calls change nothing; the
phone number is never logged or kept."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from django.conf import settings
from django.test import Client as HttpClient
from django.utils import timezone
from twilio.request_validator import RequestValidator

from apps.campaigns.models import Message, MessageStatus
from apps.clients.models import Channel, ChannelKind, Client
from apps.delivery.providers import EMPTY_TWIML, twilio_inbound_url
from apps.subscriptions.models import ConsentSource, ConsentStatus, Subscription, SubscriptionChange
from tests.subscriptions.opt_out_support import (
    CUSTOMER,
    PHONE,
    assert_next_send_stopped_on_that_channel_only,
    current,
    email_template,
    history,
    queued_message,
    send,
    send_new,
    sms_template,
)

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token-5e6f7a8b9c"
GATEWAY = "https://sms-gateway.example.com"
MESSAGES_API = f"{GATEWAY}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
PATH = "/delivery/acme/505/twilio/inbound/"


@pytest.fixture
def http() -> HttpClient:
    return HttpClient(enforce_csrf_checks=True)


def twilio_channel(client: Client, *, channel_id: int = 505, token: str = TOKEN) -> Channel:
    return Channel.objects.create(
        client=client,
        name="SMS",
        kind=ChannelKind.SMS,
        optimove_channel_id=channel_id,
        provider="twilio",
        provider_options={"from_": "+15550001000", "base_url": GATEWAY},
        provider_secrets={"account_sid": ACCOUNT, "auth_token": token},
        address_attribute="Mobile",
    )


@pytest.fixture
def twilio(acme: Client) -> Channel:
    return twilio_channel(acme)


def sent_to(channel: Channel, *, customer_id: str, number: str = PHONE, days_ago: float = 0) -> Message:
    """A message we sent to `number` (what the send path leaves behind)."""
    message = queued_message(channel, campaign_id=9, customer_id=customer_id, attributes={"Mobile": number})
    at = timezone.now() - timedelta(days=days_ago)
    Message.objects.filter(pk=message.pk).update(status=MessageStatus.SENT, sent_at=at)
    return message


def reply(body: str, *, sender: str = PHONE, **extra: str) -> dict[str, str]:
    """An incoming message as Twilio posts it (form fields)."""
    return {
        "ToCountry": "US",
        "SmsMessageSid": "SM1f0e1d2c3b4a5968778695a4b3c2d1e0",
        "NumMedia": "0",
        "SmsSid": "SM1f0e1d2c3b4a5968778695a4b3c2d1e0",
        "SmsStatus": "received",
        "Body": body,
        "To": "+15550001000",
        "NumSegments": "1",
        "MessageSid": "SM1f0e1d2c3b4a5968778695a4b3c2d1e0",
        "AccountSid": ACCOUNT,
        "From": sender,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def post(http: HttpClient, fields: dict[str, str], *, token: str = TOKEN, path: str = PATH) -> Any:
    signature = RequestValidator(token).compute_signature(f"{settings.PUBLIC_BASE_URL}{path}", fields)
    return http.post(path, data=fields, HTTP_X_TWILIO_SIGNATURE=signature)


def assert_acknowledged(response: Any) -> None:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml; charset=utf-8"
    assert response.content.decode() == EMPTY_TWIML


@responses.activate
def test_stop_opts_the_sender_out_of_that_sms_channel_only(
    http: HttpClient, twilio: Channel, email: Channel, redis_client: Any, caplog: Any
) -> None:
    sms_template(twilio)
    email_template(email)
    responses.post(MESSAGES_API, status=201, json={"sid": "SM01", "status": "queued", "account_sid": ACCOUNT})
    first = send(queued_message(twilio, campaign_id=1))
    assert first.status == "sent"
    # SMS gets no unsubscribe link: the body goes out as the template has it.
    assert parse_qs(responses.calls[0].request.body)["Body"] == ["Sale today"]

    # The URL to set at Twilio for the channel's number is the one Twilio then signs and posts to.
    assert twilio_inbound_url(channel=twilio) == f"{settings.PUBLIC_BASE_URL}{PATH}"
    with caplog.at_level(logging.DEBUG):
        assert_acknowledged(post(http, reply("Stop")))

    assert current(twilio) == (ConsentStatus.OPTED_OUT, ConsentSource.SMS_KEYWORD)
    assert history(twilio) == [(ConsentStatus.OPTED_OUT, ConsentSource.SMS_KEYWORD, "STOP")]
    # Twilio may deliver the webhook twice: nothing more is recorded.
    assert_acknowledged(post(http, reply("STOP")))
    assert len(history(twilio)) == 1
    # The number is in no log line and in no stored change.
    digits = PHONE.lstrip("+")
    logged = [f"{r.getMessage()} {vars(r)}" for r in caplog.records]
    assert any(r.getMessage() == "sms reply" and r.keyword == "STOP" and r.matched for r in caplog.records)
    assert [line for line in logged if digits in line] == []

    assert_next_send_stopped_on_that_channel_only(opted_out=twilio, other=email, campaign_id=2)
    assert len(responses.calls) == 1  # the skipped SMS never reached Twilio


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", "STOP"),
        ("  stop \n", "STOP"),
        ("Stop!", "STOP"),
        ("stop all", "STOPALL"),
        ("StopAll", "STOPALL"),
        ("Unsubscribe", "UNSUBSCRIBE"),
        ("cancel", "CANCEL"),
        ("End.", "END"),
        ("QUIT", "QUIT"),
    ],
)
def test_every_opt_out_keyword_whatever_its_case_and_spacing(
    http: HttpClient, twilio: Channel, body: str, keyword: str
) -> None:
    sent_to(twilio, customer_id=CUSTOMER)
    assert_acknowledged(post(http, reply(body)))
    assert history(twilio) == [(ConsentStatus.OPTED_OUT, ConsentSource.SMS_KEYWORD, keyword)]


@pytest.mark.parametrize("body", ["Thanks!", "HELP", "stop sending me these", "yes please", "", "STOP 2"])
def test_other_replies_change_nothing(http: HttpClient, twilio: Channel, body: str) -> None:
    sent_to(twilio, customer_id=CUSTOMER)
    assert_acknowledged(post(http, reply(body)))
    assert Subscription.objects.count() == 0


@responses.activate
@pytest.mark.parametrize("word", ["START", "unstop", "Yes"])
def test_start_unstop_or_yes_opts_back_in_and_sending_resumes(
    http: HttpClient, twilio: Channel, redis_client: Any, word: str
) -> None:
    sms_template(twilio)
    responses.post(MESSAGES_API, status=201, json={"sid": "SM01", "status": "queued", "account_sid": ACCOUNT})
    sent_to(twilio, customer_id=CUSTOMER)
    assert_acknowledged(post(http, reply("STOP")))
    assert send_new(twilio, campaign_id=2).status == MessageStatus.SKIPPED

    assert_acknowledged(post(http, reply(word)))

    assert current(twilio) == (ConsentStatus.OPTED_IN, ConsentSource.SMS_KEYWORD)
    assert history(twilio) == [
        (ConsentStatus.OPTED_OUT, ConsentSource.SMS_KEYWORD, "STOP"),
        (ConsentStatus.OPTED_IN, ConsentSource.SMS_KEYWORD, word.upper()),
    ]
    assert send_new(twilio, campaign_id=3).status == MessageStatus.SENT


def test_twilio_opt_out_type_covers_the_clients_own_keywords(http: HttpClient, twilio: Channel) -> None:
    sent_to(twilio, customer_id=CUSTOMER)
    # A keyword the client set up at Twilio (Advanced Opt-Out): the reply's text is not kept.
    assert_acknowledged(post(http, reply("ARRET", OptOutType="STOP")))
    assert_acknowledged(post(http, reply("Encore", OptOutType="START")))
    assert_acknowledged(post(http, reply("INFO", OptOutType="HELP")))
    assert history(twilio) == [
        (ConsentStatus.OPTED_OUT, ConsentSource.SMS_KEYWORD, "OptOutType=STOP"),
        (ConsentStatus.OPTED_IN, ConsentSource.SMS_KEYWORD, "OptOutType=START"),
    ]


def test_the_most_recent_message_to_the_number_names_the_customer(http: HttpClient, twilio: Channel) -> None:
    # A shared or reassigned number: the customer we last texted at it is the one replying.
    sent_to(twilio, customer_id="old-owner", days_ago=3)
    sent_to(twilio, customer_id="new-owner", days_ago=1)
    # Attributes may leave out the "+"; Twilio always reports E.164.
    sent_to(twilio, customer_id="other", number="15559990000")

    assert_acknowledged(post(http, reply("STOP")))
    assert_acknowledged(post(http, reply("STOP", sender="+15559990000")))

    assert dict(Subscription.objects.values_list("customer_id", "status")) == {
        "new-owner": ConsentStatus.OPTED_OUT,
        "other": ConsentStatus.OPTED_OUT,
    }


def test_unknown_numbers_are_acknowledged_and_change_nothing(
    http: HttpClient, acme: Client, twilio: Channel
) -> None:
    beta = Client.objects.create(slug="beta", name="Beta", optimove_base_url="https://api5.optimove.net")
    # Texted by another client, on another channel of this client, or longer ago than the retention
    # period keeps numbers: none of these is this channel's customer.
    sent_to(twilio_channel(beta), customer_id="beta-customer")
    sent_to(twilio_channel(acme, channel_id=506), customer_id="acme-other-channel")
    sent_to(twilio, customer_id="long-ago", days_ago=acme.personal_data_retention_days + 1)
    queued_message(twilio, campaign_id=3, customer_id="never-sent", attributes={"Mobile": PHONE})

    assert_acknowledged(post(http, reply("STOP")))
    assert_acknowledged(post(http, reply("STOP", sender="+15550000000")))

    assert Subscription.objects.count() == 0
    assert SubscriptionChange.objects.count() == 0


def test_forged_or_misdirected_webhooks_are_refused_and_change_nothing(
    http: HttpClient, acme: Client, twilio: Channel, email: Channel
) -> None:
    sent_to(twilio, customer_id=CUSTOMER)
    fields = reply("STOP")

    unsigned = http.post(PATH, data=fields)
    assert (unsigned.status_code, unsigned.json()) == (401, {"error": "X-Twilio-Signature is missing"})
    wrong = post(http, fields, token="a-guessed-token")
    assert (wrong.status_code, wrong.json()) == (
        403,
        {"error": "X-Twilio-Signature does not match this channel's auth token"},
    )
    # Signed with this channel's token, but about another Twilio account.
    other_account = post(http, {**fields, "AccountSid": "AC" + "f" * 32})
    assert (other_account.status_code, other_account.json()) == (
        403,
        {"error": "the callback is for another Twilio account than this channel's"},
    )
    unknown = post(http, fields, path="/delivery/acme/599/twilio/inbound/")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "no channel 599 for client 'acme'"})
    not_twilio = post(http, fields, path="/delivery/acme/504/twilio/inbound/")
    assert (not_twilio.status_code, not_twilio.json()) == (
        404,
        {"error": "channel 504 of 'acme' does not send through twilio"},
    )
    without_sender = post(http, {k: v for k, v in fields.items() if k != "From"})
    assert (without_sender.status_code, without_sender.json()) == (
        400,
        {"error": "a Twilio incoming message needs From and MessageSid"},
    )
    assert http.get(PATH).status_code == 405

    assert Subscription.objects.count() == 0
