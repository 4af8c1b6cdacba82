"""django-anymail tracking webhooks (Postmark, Mailgun) through the real URLs, with the ESPs' recorded
bodies: anymail authenticates and parses, its signal hands the events over, each is stored once on its
message, states only move forward, and forged calls change nothing."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.clients.models import Channel, ChannelKind, Client
from apps.delivery.models import DeliveryEvent
from tests.delivery.callbacks_support import fixture, make_client, sent_message, snapshot, state

PM_HOOK_AUTH = "pm-hook:Quartz-Lantern-77"
BETA_HOOK_AUTH = "beta-hook:Other-Secret-12"
MG_SIGNING_KEY = "mg-signing-key-8c1d2e"


def basic(auth: str) -> str:
    return "Basic " + base64.b64encode(auth.encode()).decode()


@pytest.fixture
def postmark(acme: Client) -> Channel:
    return Channel.objects.create(
        client=acme,
        name="Email",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=504,
        provider="anymail:postmark",
        provider_options={"from_email": "Shop <news@shop.example>"},
        provider_secrets={"server_token": "pm-server-token", "webhook_secret": PM_HOOK_AUTH},
    )


@pytest.fixture
def mailgun(acme: Client) -> Channel:
    return Channel.objects.create(
        client=acme,
        name="Email (Mailgun)",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=506,
        provider="anymail:mailgun",
        provider_options={"from_email": "Shop <news@shop.example>"},
        provider_secrets={"api_key": "mg-api-key", "webhook_signing_key": MG_SIGNING_KEY},
    )


def post_postmark(
    http: HttpClient, body: dict[str, Any], *, auth: str | None = PM_HOOK_AUTH, path: str | None = None
) -> Any:
    headers = {"HTTP_AUTHORIZATION": basic(auth)} if auth else {}
    return http.post(
        path or "/delivery/acme/504/anymail/postmark/tracking/",
        data=json.dumps(body),
        content_type="application/json",
        **headers,
    )


def with_our_id(body: dict[str, Any], message_pk: int) -> dict[str, Any]:
    """The body as Postmark sends it for our mail: the metadata the email backend attached comes back."""
    body = copy.deepcopy(body)
    body["Metadata"] = {
        "campaign_id": "1",
        "channel_id": "504",
        "template_id": "14",
        "message_id": str(message_pk),
    }
    return body


def accepted(stored: int, duplicates: int = 0, ignored: int = 0) -> dict[str, Any]:
    return {"status": "accepted", "stored": stored, "duplicates": duplicates, "ignored": ignored}


# Postmark
# ------------------------------------------------------------------------------


def test_postmark_open_delivery_click_move_the_message_only_forward(
    client: HttpClient, postmark: Channel
) -> None:
    message = sent_message(postmark, customer="c1", provider_id="pm-0001")

    opened = post_postmark(client, with_our_id(fixture("postmark/open.json"), message.pk))
    assert (opened.status_code, opened.json()) == (200, accepted(1))
    assert state(message) == {
        "delivery_state": "opened",
        "delivered_at": datetime(2016, 4, 27, 20, 21, 41, 249368, tzinfo=UTC),  # an open proves delivery
        "opened_at": datetime(2016, 4, 27, 20, 21, 41, 249368, tzinfo=UTC),
        "clicked_at": None,
        "bounced_at": None,
        "complained_at": None,
        "unsubscribed_at": None,
        "status": "sent",
    }

    # The delivery callback arrives late: the state stays "opened", the earlier delivery time is kept.
    late = post_postmark(client, with_our_id(fixture("postmark/delivery.json"), message.pk))
    assert (late.status_code, late.json()) == (200, accepted(1))
    after_late = state(message)
    assert after_late["delivery_state"] == "opened"
    assert after_late["delivered_at"] == datetime(2014, 8, 1, 17, 28, 10, 273539, tzinfo=UTC)

    clicked = post_postmark(client, with_our_id(fixture("postmark/click.json"), message.pk))
    assert (clicked.status_code, clicked.json()) == (200, accepted(1))
    after_click = state(message)
    assert (after_click["delivery_state"], after_click["clicked_at"]) == (
        "clicked",
        datetime(2017, 10, 25, 15, 21, 11, 906561, tzinfo=UTC),
    )
    click = DeliveryEvent.objects.get(event="clicked")
    assert (
        click.client,
        click.channel,
        click.message,
        click.provider,
        click.provider_message_id,
        click.url,
    ) == (
        postmark.client,
        postmark,
        message,
        "anymail:postmark",
        "f4830d10-9c35-4f0c-bca3-3d9b459821f8",
        "https://example.com/click/me",
    )
    assert click.raw == with_our_id(fixture("postmark/click.json"), message.pk)
    assert DeliveryEvent.objects.filter(message=message).count() == 3


def test_postmark_events_find_messages_by_provider_id_and_unknown_ones_are_kept(
    client: HttpClient, postmark: Channel
) -> None:
    delivered = sent_message(postmark, customer="c1", provider_id="883953f4-6105-42a2-a16a-77a8eac79483")
    bystander = sent_message(postmark, customer="c2", provider_id="pm-other")

    response = post_postmark(client, fixture("postmark/delivery.json"))  # its metadata is not ours
    assert (response.status_code, response.json()) == (200, accepted(1))
    assert state(delivered)["delivery_state"] == "delivered"

    unknown = post_postmark(client, fixture("postmark/bounce.json"))
    assert (unknown.status_code, unknown.json()) == (200, accepted(1))
    kept = DeliveryEvent.objects.get(event="bounced")
    assert (kept.message, kept.channel, kept.provider_message_id) == (
        None,
        postmark,
        "2706ee8a-737c-4285-b032-ccd317af53ed",
    )
    assert state(bystander)["delivery_state"] == ""


def test_postmark_bounce_complaint_unsubscribe_and_a_repeat_stored_once(
    client: HttpClient, postmark: Channel
) -> None:
    bounced = sent_message(postmark, customer="c1", provider_id="2706ee8a-737c-4285-b032-ccd317af53ed")
    unsubscribed = sent_message(postmark, customer="c2", provider_id="a4909a96-73d7-4c49-b148-a54522d3f7ac")

    assert post_postmark(client, fixture("postmark/bounce.json")).json() == accepted(1)
    assert post_postmark(client, fixture("postmark/spam_complaint.json")).json() == accepted(1)
    # Postmark retries a callback it thinks failed: the same event changes nothing the second time.
    assert post_postmark(client, fixture("postmark/bounce.json")).json() == accepted(0, duplicates=1)
    assert post_postmark(client, fixture("postmark/subscription_change.json")).json() == accepted(1)
    resubscribe = fixture("postmark/subscription_change.json") | {"SuppressSending": False}
    assert post_postmark(client, resubscribe).json() == accepted(0, ignored=1)  # "subscribed": not ours

    bounce_time = datetime(2016, 4, 27, 20, 28, 50, 396393, tzinfo=UTC)
    after = state(bounced)
    assert (after["delivery_state"], after["bounced_at"], after["complained_at"]) == (
        "bounced",
        bounce_time,
        bounce_time,
    )
    other = state(unsubscribed)
    assert (other["delivery_state"], other["unsubscribed_at"]) == (
        "",
        datetime(2022, 6, 5, 17, 17, 32, tzinfo=UTC),
    )
    assert sorted(DeliveryEvent.objects.values_list("event", flat=True)) == [
        "bounced",
        "complained",
        "unsubscribed",
    ]


def test_forged_or_misdirected_postmark_calls_are_refused_and_change_nothing(
    client: HttpClient, postmark: Channel, acme: Client
) -> None:
    beta = make_client("beta")
    Channel.objects.create(
        client=beta,
        name="Email",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=504,
        provider="anymail:postmark",
        provider_options={"from_email": "b@beta.example"},
        provider_secrets={"server_token": "t", "webhook_secret": BETA_HOOK_AUTH},
    )
    message = sent_message(postmark, customer="c1", provider_id="2706ee8a-737c-4285-b032-ccd317af53ed")
    body = with_our_id(fixture("postmark/bounce.json"), message.pk)
    before = snapshot()

    unsigned = post_postmark(client, body, auth=None)
    assert (unsigned.status_code, unsigned.json()) == (
        401,
        {"error": "Missing or invalid basic auth in Anymail Postmark webhook"},
    )
    assert unsigned["WWW-Authenticate"] == 'Basic realm="delivery webhooks"'
    wrong = post_postmark(client, body, auth="pm-hook:guess")
    assert (wrong.status_code, wrong.json()) == (
        403,
        {"error": "Missing or invalid basic auth in Anymail Postmark webhook"},
    )
    # Beta's valid credentials do not open Acme's URL, nor Acme's Beta's.
    assert post_postmark(client, body, auth=BETA_HOOK_AUTH).status_code == 403
    other_url = post_postmark(client, body, path="/delivery/beta/504/anymail/postmark/tracking/")
    assert other_url.status_code == 403
    nobody = post_postmark(client, body, path="/delivery/nobody/504/anymail/postmark/tracking/")
    assert (nobody.status_code, nobody.json()) == (404, {"error": "no channel 504 for client 'nobody'"})
    no_channel = post_postmark(client, body, path="/delivery/acme/999/anymail/postmark/tracking/")
    assert (no_channel.status_code, no_channel.json()) == (404, {"error": "no channel 999 for client 'acme'"})
    wrong_esp = post_postmark(client, body, path="/delivery/acme/504/anymail/mailgun/tracking/")
    assert (wrong_esp.status_code, wrong_esp.json()) == (
        404,
        {"error": "channel 504 of 'acme' does not send through anymail:mailgun"},
    )
    assert client.get("/delivery/acme/504/anymail/postmark/tracking/").status_code == 405

    assert snapshot() == before
    assert DeliveryEvent.objects.count() == 0


def test_a_channel_whose_esp_does_not_sign_needs_a_webhook_secret(
    client: HttpClient, postmark: Channel
) -> None:
    postmark.provider_secrets = {"server_token": "pm-server-token"}
    postmark.save()
    sent_message(postmark, customer="c1", provider_id="2706ee8a-737c-4285-b032-ccd317af53ed")
    before = snapshot()

    response = post_postmark(client, fixture("postmark/bounce.json"), auth=None)

    assert response.status_code == 503
    assert "needs secret webhook_secret" in response.json()["error"]
    assert snapshot() == before


# Mailgun (signed bodies)
# ------------------------------------------------------------------------------


def signed(body: dict[str, Any], key: str = MG_SIGNING_KEY, *, token: str | None = None) -> dict[str, Any]:
    body = copy.deepcopy(body)
    block = body["signature"]
    if token is not None:
        block["token"] = token
    block["signature"] = hmac.new(
        key.encode(), f"{block['timestamp']}{block['token']}".encode(), hashlib.sha256
    ).hexdigest()
    return body


def post_mailgun(http: HttpClient, body: dict[str, Any], *, channel_id: int = 506, slug: str = "acme") -> Any:
    return http.post(
        f"/delivery/{slug}/{channel_id}/anymail/mailgun/tracking/",
        data=json.dumps(body),
        content_type="application/json",
    )


def test_mailgun_events_through_the_signed_webhook(client: HttpClient, mailgun: Channel) -> None:
    delivered = sent_message(
        mailgun, customer="c1", provider_id="<20180812211713.1.DF5966851B4BAA99@example.org>"
    )
    opened = sent_message(mailgun, customer="c2", provider_id="<mg-not-in-the-event@example.org>")
    bounced = sent_message(
        mailgun, customer="c3", provider_id="<20180812214658.1.0DF563D0B3597700@example.org>"
    )
    open_body = fixture("mailgun/opened.json")
    open_body["event-data"]["user-variables"]["message_id"] = str(opened.pk)  # our metadata, echoed

    assert post_mailgun(client, signed(fixture("mailgun/delivered.json"))).json() == accepted(1)
    assert post_mailgun(client, signed(open_body)).json() == accepted(1)
    assert post_mailgun(client, signed(fixture("mailgun/failed_permanent.json"))).json() == accepted(1)
    # A temporary failure is "deferred" for anymail: nothing to record yet.
    assert post_mailgun(client, signed(fixture("mailgun/failed_temporary.json"))).json() == accepted(
        0, ignored=1
    )
    # Mailgun retries with a fresh token (and so a fresh signature); the event's own id finds the repeat.
    retried = signed(fixture("mailgun/delivered.json"), token="f" * 50)
    assert post_mailgun(client, retried).json() == accepted(0, duplicates=1)
    assert post_mailgun(client, signed(fixture("mailgun/complained.json"))).json() == accepted(1)

    assert (state(delivered)["delivery_state"], state(delivered)["delivered_at"]) == (
        "delivered",
        datetime(2018, 8, 12, 21, 17, 17, 153125, tzinfo=UTC),
    )
    assert (state(opened)["delivery_state"], state(opened)["opened_at"]) == (
        "opened",
        datetime(2018, 8, 12, 21, 33, 20, 89676, tzinfo=UTC),
    )
    assert (state(bounced)["delivery_state"], state(bounced)["bounced_at"]) == (
        "bounced",
        datetime(2018, 8, 12, 21, 47, 2, 389832, tzinfo=UTC),
    )
    complaint = DeliveryEvent.objects.get(event="complained")
    assert (complaint.message, complaint.provider_message_id) == (
        None,
        "<20130718032413.263EE2E0926@example.org>",
    )
    assert DeliveryEvent.objects.count() == 4


def test_forged_mailgun_calls_are_refused_and_change_nothing(client: HttpClient, mailgun: Channel) -> None:
    beta = make_client("beta")
    Channel.objects.create(
        client=beta,
        name="Email",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=506,
        provider="anymail:mailgun",
        provider_secrets={"webhook_signing_key": "beta-signing-key"},
    )
    sent_message(mailgun, customer="c1", provider_id="<20180812211713.1.DF5966851B4BAA99@example.org>")
    body = fixture("mailgun/delivered.json")
    before = snapshot()

    wrong_key = post_mailgun(client, signed(body, "a-guessed-key"))
    assert (wrong_key.status_code, wrong_key.json()) == (
        403,
        {"error": "Mailgun webhook called with incorrect signature"},
    )
    unsigned = post_mailgun(client, body)  # no signature in the block at all
    assert (unsigned.status_code, unsigned.json()) == (
        403,
        {"error": "Mailgun webhook called with invalid payload format"},
    )
    tampered = signed(body)
    tampered["event-data"]["event"] = "opened"  # the signature covers only timestamp and token...
    tampered["signature"]["token"] = "0" * 50  # ...so a replayed block with a new token fails
    assert post_mailgun(client, tampered).status_code == 403
    assert post_mailgun(client, signed(body, "beta-signing-key")).status_code == 403  # Beta's key, Acme's URL
    assert post_mailgun(client, signed(body), slug="beta").status_code == 403  # Acme's key, Beta's URL

    assert snapshot() == before


def test_a_mailgun_channel_without_a_signing_key_refuses_callbacks(
    client: HttpClient, mailgun: Channel
) -> None:
    mailgun.provider_secrets = {}
    mailgun.save()
    before = snapshot()

    response = post_mailgun(client, signed(fixture("mailgun/delivered.json")))

    assert (response.status_code, response.json()) == (
        503,
        {"error": "anymail:mailgun webhooks need secret webhook_signing_key to check their signature"},
    )
    assert snapshot() == before


def test_an_authenticated_body_that_is_no_tracking_event_is_a_clear_400(
    client: HttpClient, postmark: Channel
) -> None:
    before = snapshot()

    inbound = post_postmark(client, {"FromFull": {"Email": "from@example.org"}})  # Postmark's inbound hook
    garbled = client.post(
        "/delivery/acme/504/anymail/postmark/tracking/",
        data=b"{not json",
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(PM_HOOK_AUTH),
    )

    assert (inbound.status_code, inbound.json()) == (
        400,
        {
            "error": "You seem to have set Postmark's *inbound* webhook "
            "to Anymail's Postmark *tracking* webhook URL."
        },
    )
    assert (garbled.status_code, garbled.json()) == (
        400,
        {"error": "the body is not an anymail:postmark tracking event"},
    )
    assert snapshot() == before
