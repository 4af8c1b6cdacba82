"""`anymail:<esp>` through a real django-anymail ESP backend (Postmark), its HTTP API mocked."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses

from apps.channels.backends.email import AnymailBackend
from apps.channels.base import ChannelConfigError, SendResult, SendStatus
from apps.channels.registry import backend_class
from apps.message_templates.types import RenderedMessage
from tests.channels.helpers import outbound

POSTMARK = "https://api.postmarkapp.com/email"
TOKEN = "pm-server-token-xyz"


def make_backend(**options: Any) -> AnymailBackend:
    cls = backend_class("anymail:postmark")
    backend = cls(
        options={"from_email": "Shop <news@shop.example>", **options},
        secrets={"server_token": TOKEN},
        timeout=3.0,
    )
    assert isinstance(backend, AnymailBackend)
    return backend


def ok(address: str, message_id: str) -> dict[str, Any]:
    return {
        "json": {
            "To": address,
            "SubmittedAt": "2026-11-23T10:00:00Z",
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }
    }


@responses.activate
def test_sends_text_html_message_id_headers_and_metadata_with_the_token() -> None:
    responses.post(POSTMARK, **ok("jane@mail.example", "pm-0001"))
    message = outbound(
        41,
        "jane@mail.example",
        content=RenderedMessage(subject="Hi Jane", text="Plain", html="<b>Rich</b>"),
        key="run9-c41-t12",
    )
    with make_backend(reply_to=["help@shop.example"], headers={"X-Campaign": "7001"}) as backend:
        results = backend.send_batch([message])

    assert results == [SendResult(41, SendStatus.SENT, provider_message_id="pm-0001")]
    [call] = responses.calls
    assert call.request.headers["X-Postmark-Server-Token"] == TOKEN
    payload = json.loads(call.request.body)
    assert payload["From"] == "Shop <news@shop.example>"
    assert payload["To"] == "jane@mail.example"
    assert payload["ReplyTo"] == "help@shop.example"
    assert payload["Subject"] == "Hi Jane"
    assert payload["TextBody"] == "Plain"
    assert payload["HtmlBody"] == "<b>Rich</b>"
    assert {h["Name"]: h["Value"] for h in payload["Headers"]} == {
        "X-Campaign": "7001",
        "Message-ID": "<run9-c41-t12@shop.example>",
    }
    assert payload["Metadata"] == {
        "campaign_id": "7001",
        "channel_id": "505",
        "template_id": "12",
        "message_id": "41",
    }


@responses.activate
def test_error_table_one_result_per_message_in_order() -> None:
    answers: list[dict[str, Any]] = [
        ok("a1@mail.example", "pm-1"),
        {
            "status": 429,
            "headers": {"Retry-After": "30"},
            "json": {"ErrorCode": 429, "Message": "Rate limit"},
        },
        {"status": 500, "json": {"ErrorCode": 1, "Message": "Internal error"}},
        {"status": 503, "body": "unavailable"},
        {
            "status": 422,
            "json": {"ErrorCode": 300, "Message": "Invalid 'To' address: 'a5@mail.example'."},
        },
        {
            "status": 422,
            "json": {
                "ErrorCode": 406,
                "Message": "You tried to send to a recipient that has been marked as inactive.\n"
                "Found inactive addresses: a6@mail.example.\nInactive recipients are ones that have "
                "generated a hard bounce or a spam complaint. ",
            },
        },
        {"status": 401, "json": {"ErrorCode": 10, "Message": "Bad or missing Server API token."}},
        {"status": 404, "body": "not found"},
        {"body": requests.ConnectionError("refused")},
        {"body": requests.ReadTimeout("slow")},
        ok("a11@mail.example", "pm-11"),
    ]
    for answer in answers:
        responses.post(POSTMARK, **answer)
    messages = [outbound(i, f"a{i}@mail.example") for i in range(1, len(answers) + 1)]

    with make_backend() as backend:
        results = backend.send_batch(messages)

    assert [(r.message_id, r.status, r.error, r.retry_after) for r in results] == [
        (1, SendStatus.SENT, "", None),
        (2, SendStatus.RETRY, 'the ESP answered HTTP 429: {"ErrorCode": 429, "Message": "Rate limit"}', 30.0),
        (
            3,
            SendStatus.RETRY,
            'the ESP answered HTTP 500: {"ErrorCode": 1, "Message": "Internal error"}',
            None,
        ),
        (4, SendStatus.RETRY, "the ESP answered HTTP 503: unavailable", None),
        (5, SendStatus.FAILED, "the ESP refused the recipient (anymail:postmark)", None),
        (6, SendStatus.FAILED, "the ESP refused the recipient (anymail:postmark)", None),
        (
            7,
            SendStatus.FAILED,
            'the ESP answered HTTP 401: {"ErrorCode": 10, "Message": "Bad or missing Server API token."}',
            None,
        ),
        (8, SendStatus.FAILED, "the ESP answered HTTP 404: not found", None),
        (9, SendStatus.RETRY, "could not reach the ESP (anymail:postmark)", None),
        (10, SendStatus.RETRY, "could not reach the ESP (anymail:postmark)", None),
        (11, SendStatus.SENT, "", None),
    ]
    assert [r.provider_message_id for r in results if r.status == SendStatus.SENT] == ["pm-1", "pm-11"]
    assert len(responses.calls) == len(answers)
    assert all(TOKEN not in r.error for r in results)


def test_an_invalid_address_fails_before_any_call() -> None:
    with responses.RequestsMock() as mock, make_backend() as backend:
        [result] = backend.send_batch([outbound(1, "jane at mail dot example")])
        assert len(mock.calls) == 0
    assert (result.status, result.error) == (SendStatus.FAILED, "invalid email address")


def test_registry_builds_one_class_per_esp_and_checks_its_settings() -> None:
    postmark = backend_class("anymail:postmark")
    assert postmark is backend_class("anymail:postmark")
    assert postmark.name == "anymail:postmark"
    assert backend_class("anymail:mailgun").name == "anymail:mailgun"
    assert postmark.config_errors(options={"from_email": "news@shop.example"}, secrets={}) == [
        "anymail:postmark needs server_token: give it as a secret (or in option esp_settings)"
    ]
    assert (
        postmark.config_errors(options={"from_email": "news@shop.example"}, secrets={"server_token": "t"})
        == []
    )
    assert backend_class("anymail:mailgun").config_errors(options={"from_email": "x"}, secrets={}) == [
        "option from_email is required, e.g. 'Shop <news@shop.example>'",
        "anymail:mailgun needs api_key: give it as a secret (or in option esp_settings)",
    ]
    with pytest.raises(
        ChannelConfigError, match=r"^provider anymail:postmark: anymail:postmark needs server_token"
    ):
        postmark(options={"from_email": "news@shop.example"}, secrets={})


@responses.activate
def test_esp_settings_option_reaches_the_anymail_backend() -> None:
    responses.post("https://postmark.proxy.example/email", **ok("a@mail.example", "pm-proxy"))
    backend = make_backend(esp_settings={"api_url": "https://postmark.proxy.example/"})
    [result] = backend.send_batch([outbound(1, "a@mail.example")])
    backend.close()
    assert result == SendResult(1, SendStatus.SENT, provider_message_id="pm-proxy")
    assert responses.calls[0].request.url == "https://postmark.proxy.example/email"
