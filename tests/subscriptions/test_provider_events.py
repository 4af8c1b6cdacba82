"""Providers' unsubscribe and complaint events, through the real callback URLs with the providers'
recorded bodies: each opts the message's customer out of the message's channel, once, with the
event as evidence; every other event, and events about messages we cannot find, change no consent."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
import responses
from django.test import Client as HttpClient

from apps.channels.signatures import webhook_signature
from apps.clients.models import Channel, ChannelKind, Client
from apps.delivery.models import DeliveryEvent
from apps.message_templates.models import MessageTemplate
from apps.subscriptions.models import ConsentSource, ConsentStatus, Subscription
from tests.delivery.callbacks_support import fixture
from tests.subscriptions.opt_out_support import (
    CUSTOMER,
    assert_next_send_stopped_on_that_channel_only,
    current,
    email_template,
    history,
    queued_message,
    send,
    sms_template,
)

POSTMARK_API = "https://api.postmarkapp.com/email"
POSTMARK_HOOK_AUTH = "pm-hook:Quartz-Lantern-77"
MAILGUN_SIGNING_KEY = "mg-signing-key-8c1d2e"
HOOK_URL = "https://hooks.example.test/deliver"
HOOK_SECRET = "hook-signing-secret-41"


@pytest.fixture
def http() -> HttpClient:
    return HttpClient(enforce_csrf_checks=True)


@pytest.fixture
def postmark(acme: Client, redis_client: Any) -> Channel:
    channel = Channel.objects.create(
        client=acme,
        name="Email",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=504,
        provider="anymail:postmark",
        provider_options={"from_email": "Shop <news@shop.example>"},
        provider_secrets={"server_token": "pm-server-token", "webhook_secret": POSTMARK_HOOK_AUTH},
        address_attribute="Email",
    )
    email_template(channel)
    return channel


@pytest.fixture
def other(sms: Channel) -> Channel:
    sms_template(sms)
    return sms


def send_over_postmark(channel: Channel, *, campaign_id: int, postmark_id: str) -> tuple[int, dict[str, Any]]:
    """Sends one email through the send path; returns our message id and the metadata Postmark got."""
    responses.post(
        POSTMARK_API,
        json={"To": "jane@mail.example", "MessageID": postmark_id, "ErrorCode": 0, "Message": "OK"},
    )
    message = send(queued_message(channel, campaign_id=campaign_id))
    assert message.status == "sent"
    return message.pk, json.loads(responses.calls[-1].request.body)["Metadata"]


def post_postmark(http: HttpClient, body: dict[str, Any]) -> Any:
    auth = "Basic " + base64.b64encode(POSTMARK_HOOK_AUTH.encode()).decode()
    return http.post(
        "/delivery/acme/504/anymail/postmark/tracking/",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )


def postmark_event(name: str, *, metadata: dict[str, Any], postmark_id: str) -> dict[str, Any]:
    """A recorded Postmark body about our email: Postmark echoes the metadata we sent."""
    body = copy.deepcopy(fixture(f"postmark/{name}.json"))
    body["Metadata"] = metadata
    body["MessageID"] = postmark_id
    return body


@responses.activate
def test_a_postmark_unsubscribe_opts_out_of_that_email_channel_only(
    http: HttpClient, postmark: Channel, other: Channel
) -> None:
    message_id, metadata = send_over_postmark(postmark, campaign_id=1, postmark_id="pm-0001")
    body = postmark_event("subscription_change", metadata=metadata, postmark_id="pm-0001")

    assert post_postmark(http, body).status_code == 200

    event = DeliveryEvent.objects.get(event="unsubscribed")
    assert event.message_id == message_id
    assert current(postmark) == (ConsentStatus.OPTED_OUT, ConsentSource.PROVIDER_UNSUBSCRIBE)
    # Postmark gives subscription changes no id of their own: the stored event is the evidence.
    assert history(postmark) == [
        (ConsentStatus.OPTED_OUT, ConsentSource.PROVIDER_UNSUBSCRIBE, f"delivery event {event.pk}")
    ]
    # Postmark retries a callback it thinks failed: stored once, consent changed once.
    assert post_postmark(http, body).json()["duplicates"] == 1
    assert len(history(postmark)) == 1

    assert_next_send_stopped_on_that_channel_only(opted_out=postmark, other=other, campaign_id=2)
    assert len(responses.calls) == 1  # the skipped email never reached Postmark


@responses.activate
def test_a_postmark_spam_complaint_opts_out_with_the_event_id_as_evidence(
    http: HttpClient, postmark: Channel, other: Channel
) -> None:
    _, metadata = send_over_postmark(postmark, campaign_id=1, postmark_id="pm-0002")
    body = postmark_event("spam_complaint", metadata=metadata, postmark_id="pm-0002")

    assert post_postmark(http, body).status_code == 200

    assert current(postmark) == (ConsentStatus.OPTED_OUT, ConsentSource.PROVIDER_COMPLAINT)
    assert history(postmark) == [(ConsentStatus.OPTED_OUT, ConsentSource.PROVIDER_COMPLAINT, "901542551")]
    assert_next_send_stopped_on_that_channel_only(opted_out=postmark, other=other, campaign_id=2)


@responses.activate
def test_delivery_bounce_and_open_events_or_events_about_unknown_messages_change_no_consent(
    http: HttpClient, postmark: Channel
) -> None:
    _, metadata = send_over_postmark(postmark, campaign_id=1, postmark_id="pm-0003")
    for name in ("delivery", "open", "click", "bounce"):
        assert (
            post_postmark(http, postmark_event(name, metadata=metadata, postmark_id="pm-0003")).status_code
            == 200
        )
    # A complaint about a message that is not ours (or no longer findable) is stored for the admin only.
    stranger = postmark_event("spam_complaint", metadata={}, postmark_id="not-ours")
    stranger["ID"] = 77
    assert post_postmark(http, stranger).status_code == 200

    assert DeliveryEvent.objects.filter(event="complained", message=None).count() == 1
    assert Subscription.objects.count() == 0
    assert send(queued_message(postmark, campaign_id=2)).status == "sent"


def mailgun_signed(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    block = body["signature"]
    block["signature"] = hmac.new(
        MAILGUN_SIGNING_KEY.encode(), f"{block['timestamp']}{block['token']}".encode(), hashlib.sha256
    ).hexdigest()
    return body


def test_a_mailgun_complaint_names_its_message_through_our_metadata(
    http: HttpClient, acme: Client, other: Channel, redis_client: Any
) -> None:
    mailgun = Channel.objects.create(
        client=acme,
        name="Email (Mailgun)",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=506,
        provider="anymail:mailgun",
        provider_options={"from_email": "Shop <news@shop.example>"},
        provider_secrets={"api_key": "mg-api-key", "webhook_signing_key": MAILGUN_SIGNING_KEY},
        address_attribute="Email",
    )
    email_template(mailgun)
    message = queued_message(mailgun, campaign_id=1)
    message.status = "sent"
    message.save()
    body = fixture("mailgun/complained.json")
    body["event-data"]["user-variables"] = {"message_id": str(message.pk)}  # our metadata, echoed

    response = http.post(
        "/delivery/acme/506/anymail/mailgun/tracking/",
        data=json.dumps(mailgun_signed(body)),
        content_type="application/json",
    )

    assert response.status_code == 200
    assert history(mailgun) == [
        (ConsentStatus.OPTED_OUT, ConsentSource.PROVIDER_COMPLAINT, "ncV2XwymRUKbPek_MIM-Gw")
    ]
    assert_next_send_stopped_on_that_channel_only(opted_out=mailgun, other=other, campaign_id=2)


@responses.activate
def test_an_unsubscribed_receipt_from_a_webhook_receiver_opts_out_of_that_channel(
    http: HttpClient, acme: Client, other: Channel, redis_client: Any
) -> None:
    hook = Channel.objects.create(
        client=acme,
        name="Hook",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=510,
        provider="webhook",
        provider_options={"url": HOOK_URL},
        provider_secrets={"signing_secret": HOOK_SECRET},
    )
    MessageTemplate.objects.create(
        client=acme, channel=hook, template_id=14, name="Sale", payload={"text": "Sale today"}
    )
    responses.post(HOOK_URL, json={})
    message = send(queued_message(hook, campaign_id=1))
    assert message.status == "sent"
    receipt = json.dumps(
        {
            "id": message.idempotency_key,
            "event": "unsubscribed",
            "occurred_at": "2026-03-02T10:00:05Z",
            "event_id": "u-1",
        }
    ).encode()
    ts = int(time.time())

    response = http.post(
        "/delivery/acme/510/webhook/",
        data=receipt,
        content_type="application/json",
        HTTP_X_PARTNER_TIMESTAMP=str(ts),
        HTTP_X_PARTNER_SIGNATURE=webhook_signature(HOOK_SECRET, ts, receipt),
    )

    assert response.status_code == 200
    assert history(hook) == [
        (ConsentStatus.OPTED_OUT, ConsentSource.PROVIDER_UNSUBSCRIBE, f"{message.idempotency_key}:u-1")
    ]
    assert current(hook, CUSTOMER) == (ConsentStatus.OPTED_OUT, ConsentSource.PROVIDER_UNSUBSCRIBE)
    assert_next_send_stopped_on_that_channel_only(opted_out=hook, other=other, campaign_id=2)
    assert len(responses.calls) == 1


def test_a_customer_id_the_consent_store_refuses_does_not_fail_the_callback(
    http: HttpClient, postmark: Channel, caplog: Any
) -> None:
    message = queued_message(postmark, campaign_id=1, customer_id=" padded ")
    body = postmark_event("spam_complaint", metadata={"message_id": str(message.pk)}, postmark_id="pm-9")

    response = post_postmark(http, body)

    # The event is kept (the provider would otherwise retry the whole callback for ever); consent is not.
    assert response.status_code == 200
    assert DeliveryEvent.objects.get(event="complained").message_id == message.pk
    assert Subscription.objects.count() == 0
    assert f"complained event of message {message.pk} not applied to consent" in caplog.text
