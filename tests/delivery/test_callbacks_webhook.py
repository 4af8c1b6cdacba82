"""Delivery receipts from a webhook channel's receiver, signed like our own requests, through the real
URL: matched by the Idempotency-Key within the channel, stored once, forward only, forgeries refused."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.channels.signatures import webhook_signature
from apps.clients.models import Channel, ChannelKind, Client
from apps.delivery.models import DeliveryEvent
from tests.delivery.callbacks_support import fixture, make_client, sent_message, snapshot, state

SECRET = "hook-signing-secret-41"
PATH = "/delivery/acme/510/webhook/"


def hook_channel(client: Client, channel_id: int = 510, secret: str = SECRET) -> Channel:
    return Channel.objects.create(
        client=client,
        name="Hook",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=channel_id,
        provider="webhook",
        provider_options={"url": "https://hooks.example.test/deliver"},
        provider_secrets={"signing_secret": secret},
    )


@pytest.fixture
def hook(acme: Client) -> Channel:
    return hook_channel(acme)


def receipt_body(name: str, key: str) -> bytes:
    """A recorded receipt about the message with Idempotency-Key `key`."""
    return json.dumps(fixture(name)).replace("{key}", key).encode()


def post_receipt(
    http: HttpClient,
    body: bytes,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    path: str = PATH,
    signed: bool = True,
) -> Any:
    ts = int(time.time()) if timestamp is None else timestamp
    headers = (
        {"HTTP_X_PARTNER_TIMESTAMP": str(ts), "HTTP_X_PARTNER_SIGNATURE": webhook_signature(secret, ts, body)}
        if signed
        else {}
    )
    return http.post(path, data=body, content_type="application/json", **headers)


def accepted(stored: int, duplicates: int = 0) -> dict[str, Any]:
    return {"status": "accepted", "stored": stored, "duplicates": duplicates, "ignored": 0}


def test_receipts_find_their_message_by_key_and_move_it_forward_once(
    client: HttpClient, hook: Channel
) -> None:
    message = sent_message(hook, customer="c1", key="k-c1", provider_id="receiver-id-1")

    delivered = post_receipt(client, receipt_body("webhook/receipt_delivered.json", "k-c1"))
    assert (delivered.status_code, delivered.json()) == (200, accepted(1))
    assert post_receipt(client, receipt_body("webhook/receipt_delivered.json", "k-c1")).json() == accepted(
        0, 1
    )
    both = post_receipt(client, receipt_body("webhook/receipts_opened_clicked.json", "k-c1"))
    assert both.json() == accepted(2)

    assert state(message) == {
        "delivery_state": "clicked",
        "delivered_at": datetime(2026, 3, 2, 9, 3, tzinfo=UTC),  # the open (09:03Z) proves an earlier one
        "opened_at": datetime(2026, 3, 2, 9, 3, tzinfo=UTC),
        "clicked_at": datetime(2026, 3, 2, 9, 4, tzinfo=UTC),
        "bounced_at": None,
        "complained_at": None,
        "unsubscribed_at": None,
        "status": "sent",
    }
    click = DeliveryEvent.objects.get(event="clicked")
    assert (click.message, click.channel, click.provider, click.provider_message_id, click.url) == (
        message,
        hook,
        "webhook",
        "k-c1",
        "https://shop.example/sale",
    )


def test_unknown_keys_and_other_channels_keys_are_kept_unmatched(
    client: HttpClient, hook: Channel, acme: Client
) -> None:
    other_channel = hook_channel(acme, channel_id=511, secret="other-secret")
    # Sent by the other channel, whose receiver reported our own key back as its id.
    elsewhere = sent_message(other_channel, customer="c1", key="k-other", provider_id="k-other")

    unknown = post_receipt(client, receipt_body("webhook/receipt_delivered.json", "k-nobody"))
    named_elsewhere = post_receipt(client, receipt_body("webhook/receipt_delivered.json", "k-other"))

    assert (unknown.json(), named_elsewhere.json()) == (accepted(1), accepted(1))
    assert list(
        DeliveryEvent.objects.order_by("pk").values_list("provider_message_id", "message", "channel")
    ) == [
        ("k-nobody", None, hook.pk),
        ("k-other", None, hook.pk),
    ]
    assert state(elsewhere)["delivery_state"] == ""


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "the body must be JSON"),
        (b"[]", "the list of receipts is empty"),
        (
            b'{"id": "k-c1", "event": "read", "occurred_at": "2026-03-02T10:00:05Z"}',
            "event must be one of delivered, opened, clicked, bounced, complained, unsubscribed, undelivered",
        ),
        (
            b'{"id": "k-c1", "event": "delivered", "occurred_at": "2026-03-02T10:00:05"}',
            "occurred_at needs a time zone (Z or +hh:mm)",
        ),
        (
            b'{"id": "k-c1", "event": "delivered", "occurred_at": "yesterday"}',
            "occurred_at must be an ISO 8601 time, e.g. 2026-03-02T10:00:00Z",
        ),
        (
            b'{"id": "k-c1", "event": "delivered", "occurred_at": "2999-01-01T00:00:00Z"}',
            "occurred_at is in the future",
        ),
        (
            b'{"event": "delivered", "occurred_at": "2026-03-02T10:00:05Z"}',
            "id must be the Idempotency-Key of the message (a string of 1 to 64 characters)",
        ),
        (
            b'[{"id": "k-c1", "event": "delivered", "occurred_at": "2026-03-02T10:00:05Z"}, '
            b'{"id": "k-c1", "event": "opened", "occurred_at": 5}]',
            "receipt 1: occurred_at must be an ISO 8601 time, e.g. 2026-03-02T10:00:00Z",
        ),
    ],
)
def test_a_bad_receipt_is_a_400_naming_the_problem_and_stores_nothing(
    client: HttpClient, hook: Channel, body: bytes, error: str
) -> None:
    sent_message(hook, customer="c1", key="k-c1")
    before = snapshot()

    response = post_receipt(client, body)

    assert (response.status_code, response.json()) == (400, {"error": error})
    assert snapshot() == before  # in a list, the good first receipt is not stored either


def test_forged_receipts_are_refused_and_change_nothing(client: HttpClient, hook: Channel) -> None:
    beta = make_client("beta")
    hook_channel(beta, secret="beta-secret")
    sent_message(hook, customer="c1", key="k-c1")
    body = receipt_body("webhook/receipt_delivered.json", "k-c1")
    before = snapshot()

    unsigned = post_receipt(client, body, signed=False)
    assert (unsigned.status_code, unsigned.json()) == (
        401,
        {"error": "X-Partner-Timestamp and X-Partner-Signature are required"},
    )
    wrong = post_receipt(client, body, secret="guessed")
    assert (wrong.status_code, wrong.json()) == (
        403,
        {"error": "X-Partner-Signature does not match, or X-Partner-Timestamp is not within 5 minutes"},
    )
    assert post_receipt(client, body, timestamp=int(time.time()) - 3600).status_code == 403  # a replay
    assert post_receipt(client, body, secret="beta-secret").status_code == 403  # Beta's secret, Acme's URL
    assert post_receipt(client, body, path="/delivery/beta/510/webhook/").status_code == 403  # and back
    ts = int(time.time())
    swapped = client.post(  # a genuine signature over another body
        PATH,
        data=body.replace(b"delivered", b"clicked"),
        content_type="application/json",
        HTTP_X_PARTNER_TIMESTAMP=str(ts),
        HTTP_X_PARTNER_SIGNATURE=webhook_signature(SECRET, ts, body),
    )
    assert swapped.status_code == 403
    assert post_receipt(client, body, path="/delivery/acme/999/webhook/").status_code == 404

    assert snapshot() == before


def test_a_channel_without_a_signing_secret_cannot_check_receipts(client: HttpClient, hook: Channel) -> None:
    hook.provider_secrets = {}
    hook.save()
    sent_message(hook, customer="c1", key="k-c1")
    before = snapshot()

    response = post_receipt(client, receipt_body("webhook/receipt_delivered.json", "k-c1"))

    assert (response.status_code, response.json()) == (
        503,
        {"error": "the channel has no secret signing_secret to check receipts with"},
    )
    assert snapshot() == before
