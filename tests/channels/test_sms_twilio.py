"""The Twilio SMS backend: the real twilio-python client against a mocked Twilio API."""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses

from apps.channels.backends.sms import TwilioBackend
from apps.channels.base import ChannelConfigError, SendResult, SendStatus
from apps.message_templates.types import RenderedMessage
from tests.channels.helpers import closed_port, outbound, statuses

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token-secret"
GATEWAY = "https://sms-gateway.example.com"
MESSAGES = f"{GATEWAY}/2010-04-01/Accounts/{SID}/Messages.json"


def make_backend(timeout: float = 3.0, **options: Any) -> TwilioBackend:
    return TwilioBackend(
        options={"from_": "+15550001000", "base_url": GATEWAY, **options},
        secrets={"account_sid": SID, "auth_token": TOKEN},
        timeout=timeout,
    )


def created(sid: str) -> dict[str, Any]:
    return {"status": 201, "json": {"sid": sid, "status": "queued", "account_sid": SID}}


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "status": status,
        "json": {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    }


@responses.activate
def test_sends_through_the_configured_base_url_with_basic_auth() -> None:
    responses.post(MESSAGES, **created("SM0001"))
    responses.post(MESSAGES, **created("SM0002"))
    messages = [
        outbound(1, "+15551230001", content=RenderedMessage(text="Your code is 1234")),
        outbound(2, "+15551230002", content=RenderedMessage(text="Sale today")),
    ]
    with make_backend(status_callback="https://partner.example.com/twilio/status") as backend:
        results = backend.send_batch(messages)

    assert results == [
        SendResult(1, SendStatus.SENT, provider_message_id="SM0001"),
        SendResult(2, SendStatus.SENT, provider_message_id="SM0002"),
    ]
    first = responses.calls[0].request
    assert first.url == MESSAGES
    assert first.headers["Authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert parse_qs(first.body) == {
        "To": ["+15551230001"],
        "From": ["+15550001000"],
        "Body": ["Your code is 1234"],
        "StatusCallback": ["https://partner.example.com/twilio/status"],
    }
    assert parse_qs(responses.calls[1].request.body)["Body"] == ["Sale today"]


@responses.activate
def test_a_gateway_base_url_is_not_rewritten_by_twilio_region_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    responses.post(MESSAGES, **created("SM0004"))
    [result] = make_backend().send_batch([outbound(4, "+15551230004", content=RenderedMessage(text="x"))])
    assert result == SendResult(4, SendStatus.SENT, provider_message_id="SM0004")
    assert responses.calls[0].request.url == MESSAGES


@responses.activate
def test_default_host_and_messaging_service() -> None:
    url = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
    responses.post(url, **created("SM0003"))
    backend = TwilioBackend(
        options={"messaging_service_sid": "MG0001"}, secrets={"account_sid": SID, "auth_token": TOKEN}
    )
    [result] = backend.send_batch([outbound(3, "+15551230003", content=RenderedMessage(text="x"))])
    assert result.provider_message_id == "SM0003"
    assert parse_qs(responses.calls[0].request.body) == {
        "To": ["+15551230003"],
        "MessagingServiceSid": ["MG0001"],
        "Body": ["x"],
    }


@responses.activate
def test_error_table_one_result_per_message_in_order_without_phone_numbers() -> None:
    answers = [
        twilio_error(429, 20429, "Too Many Requests"),
        twilio_error(500, 20500, "Internal Server Error"),
        twilio_error(503, 20503, "Service Unavailable"),
        twilio_error(400, 21211, "The 'To' number +15551230004 is not a valid phone number."),
        twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"),
        twilio_error(404, 20404, "The requested resource was not found"),
        {"body": requests.ConnectionError("refused")},
        {"body": requests.ReadTimeout("slow")},
        created("SM0009"),
    ]
    for answer in answers:
        responses.post(MESSAGES, **answer)
    messages = [
        outbound(i, f"+1555123000{i}", content=RenderedMessage(text=f"m{i}"))
        for i in range(1, len(answers) + 1)
    ]

    with make_backend() as backend:
        results = backend.send_batch(messages)

    assert [(r.message_id, r.status, r.error) for r in results] == [
        (1, SendStatus.RETRY, "Twilio error 20429 (HTTP 429): Too Many Requests"),
        (2, SendStatus.RETRY, "Twilio error 20500 (HTTP 500): Internal Server Error"),
        (3, SendStatus.RETRY, "Twilio error 20503 (HTTP 503): Service Unavailable"),
        (
            4,
            SendStatus.FAILED,
            "Twilio error 21211 (HTTP 400): The 'To' number [address] is not a valid phone number.",
        ),
        (5, SendStatus.FAILED, "Twilio error 21610 (HTTP 400): Attempt to send to unsubscribed recipient"),
        (6, SendStatus.FAILED, "Twilio error 20404 (HTTP 404): The requested resource was not found"),
        (7, SendStatus.RETRY, "Twilio connection failed"),
        (8, SendStatus.RETRY, "Twilio timed out after 3s"),
        (9, SendStatus.SENT, ""),
    ]
    assert all("+1555" not in r.error and TOKEN not in r.error for r in results)


def test_real_connection_refused_is_retried() -> None:
    backend = make_backend(base_url=f"http://127.0.0.1:{closed_port()}", timeout=0.5)
    started = time.monotonic()
    results = backend.send_batch([outbound(1, "+15551230001", content=RenderedMessage(text="x"))])
    assert [(r.status, r.error) for r in results] == [(SendStatus.RETRY, "Twilio connection failed")]
    assert time.monotonic() - started < 2


def test_empty_text_or_number_fails_without_a_call() -> None:
    with responses.RequestsMock() as mock:
        results = make_backend().send_batch(
            [
                outbound(1, "+15551230001", content=RenderedMessage(text="  ")),
                outbound(2, "", content=RenderedMessage(text="hello")),
            ]
        )
        assert len(mock.calls) == 0
    assert [(r.status, r.error) for r in results] == [
        (SendStatus.FAILED, "the rendered SMS has no text"),
        (SendStatus.FAILED, "no phone number"),
    ]
    assert statuses(results) == [(1, SendStatus.FAILED), (2, SendStatus.FAILED)]


def test_config_errors_name_missing_secrets_without_values() -> None:
    assert TwilioBackend.config_errors(options={"from_": "+1555"}, secrets={"account_sid": SID}) == [
        "secret auth_token is required"
    ]
    assert TwilioBackend.config_errors(options={"base_url": "gateway.local"}, secrets={}) == [
        "secret account_sid is required",
        "secret auth_token is required",
        "option from_ or option messaging_service_sid is required",
        "option base_url must be an http(s) URL",
    ]
    with pytest.raises(ChannelConfigError) as raised:
        TwilioBackend(options={"from_": "+1555"}, secrets={"account_sid": "AC-visible-sid", "auth_token": ""})
    assert str(raised.value) == "provider twilio: secret auth_token is required"
