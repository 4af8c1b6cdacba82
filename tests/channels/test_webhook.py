"""The signed webhook backend: exact request, signature, connection reuse, and the error table."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import responses

from apps.channels.backends.webhook import WebhookBackend
from apps.channels.base import ChannelConfigError, SendResult, SendStatus
from apps.channels.signatures import webhook_signature, webhook_verify
from apps.message_templates.types import RenderedMessage
from tests.channels.helpers import Recorder, closed_port, outbound, silent_server, statuses

SECRET = "whsec-test-0123456789"
URL = "https://hooks.example.com/partner"


def make_backend(**options: Any) -> WebhookBackend:
    return WebhookBackend(options={"url": URL, **options}, secrets={"signing_secret": SECRET}, timeout=2.0)


# Signing ------------------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":"k1"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhook_signature(SECRET, 1700000000, body) == f"v1={expected}"


def test_verify_accepts_ours_and_rejects_any_change() -> None:
    now = 1_700_000_000
    body = b'{"id":"k1","content":{"text":"hi"}}'
    signature = webhook_signature(SECRET, now, body)

    assert webhook_verify(SECRET, now, body, signature, now=now) is True
    assert webhook_verify(SECRET, str(now), body.decode(), signature, now=now + 10) is True
    assert webhook_verify(SECRET, now, body + b" ", signature, now=now) is False
    assert webhook_verify(SECRET, now + 1, body, signature, now=now) is False
    assert webhook_verify("another-secret", now, body, signature, now=now) is False
    assert webhook_verify(SECRET, now, body, signature.replace("v1=", "v2="), now=now) is False
    assert webhook_verify(SECRET, now, body, "", now=now) is False
    assert webhook_verify(SECRET, "not-a-number", body, signature, now=now) is False


def test_verify_rejects_timestamps_beyond_the_tolerance_either_side() -> None:
    now = 1_700_000_000
    body = b"{}"
    old, future = now - 301, now + 301
    assert webhook_verify(SECRET, old, body, webhook_signature(SECRET, old, body), now=now) is False
    assert webhook_verify(SECRET, future, body, webhook_signature(SECRET, future, body), now=now) is False
    edge = now - 300
    assert webhook_verify(SECRET, edge, body, webhook_signature(SECRET, edge, body), now=now) is True
    assert webhook_verify(SECRET, old, body, webhook_signature(SECRET, old, body), tolerance=400, now=now)


def test_verify_uses_the_clock_by_default() -> None:
    body = b"{}"
    fresh = int(time.time())
    assert webhook_verify(SECRET, fresh, body, webhook_signature(SECRET, fresh, body)) is True
    stale = fresh - 3600
    assert webhook_verify(SECRET, stale, body, webhook_signature(SECRET, stale, body)) is False


def test_verify_accepts_any_of_several_signatures_during_rotation() -> None:
    now = 1_700_000_000
    body = b"{}"
    both = f"{webhook_signature('old', now, body)}, {webhook_signature(SECRET, now, body)}"
    assert webhook_verify(SECRET, now, body, both, now=now) is True
    assert webhook_verify("third", now, body, both, now=now) is False


# Success path -------------------------------------------------------------------------------------


@responses.activate
def test_posts_signed_json_with_idempotency_key_and_reads_the_receivers_id() -> None:
    responses.post(URL, json={"id": "rcv-77"}, status=202)
    message = outbound(
        1,
        "customer-1-address",
        content=RenderedMessage(text="fallback", payload={"offer": "10% off", "items": [1, 2]}),
        key="run9-cust1-tpl12",
    )
    before = int(time.time())

    [result] = make_backend(headers={"X-Tenant": "shop"}).send_batch([message])

    assert result == SendResult(1, SendStatus.SENT, provider_message_id="rcv-77")
    [call] = responses.calls
    request = call.request
    body = request.body
    assert isinstance(body, bytes)
    assert json.loads(body) == {
        "id": "run9-cust1-tpl12",
        "customer_id": "cust1",
        "to": "customer-1-address",
        "metadata": {"campaign_id": "7001", "channel_id": "505", "template_id": "12"},
        "content": {"offer": "10% off", "items": [1, 2]},
    }
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "run9-cust1-tpl12"
    assert headers["X-Tenant"] == "shop"
    timestamp = int(headers["X-Partner-Timestamp"])
    assert before <= timestamp <= int(time.time())
    assert headers["X-Partner-Signature"] == webhook_signature(SECRET, timestamp, body)
    assert webhook_verify(SECRET, timestamp, body, headers["X-Partner-Signature"])


@responses.activate
def test_text_only_content_and_url_taken_from_the_address() -> None:
    personal = "https://customer.example.net/inbox/42"
    responses.post(personal, body="accepted", status=200)  # no JSON id: our key is the provider id
    message = outbound(2, personal, content=RenderedMessage(text="Hi there"), key="key-2")

    [result] = make_backend().send_batch([message])

    assert result == SendResult(2, SendStatus.SENT, provider_message_id="key-2")
    [call] = responses.calls
    assert call.request.url == personal
    assert json.loads(call.request.body)["content"] == {"text": "Hi there"}


def test_a_resend_carries_the_same_idempotency_key_and_body() -> None:
    message = outbound(3, "x", key="stable-key")
    with responses.RequestsMock() as mock:
        mock.post(URL, json={"id": "a"})
        mock.post(URL, json={"id": "a"})
        make_backend().send_batch([message])
        make_backend().send_batch([message])
        first, second = (c.request for c in mock.calls)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == "stable-key"
    assert first.body == second.body


# One connection per batch ---------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a client that reuses its connection can
    recorder: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.recorder.add((self.client_address[1], dict(self.headers), body))
        answer = json.dumps({"id": f"srv-{len(self.recorder.items)}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    handler = type("Handler", (_Receiver,), {"recorder": recorder})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", recorder
    finally:
        server.shutdown()
        server.server_close()


def test_a_batch_reuses_one_connection_and_each_request_verifies(receiver: tuple[str, Recorder]) -> None:
    url, recorder = receiver
    messages = [outbound(i, "not-a-url") for i in range(1, 6)]
    options = {"url": url, "concurrency": 1}
    with WebhookBackend(options=options, secrets={"signing_secret": SECRET}, timeout=2.0) as backend:
        results = backend.send_batch(messages)

    assert [(r.message_id, r.status, r.provider_message_id) for r in results] == [
        (i, SendStatus.SENT, f"srv-{i}") for i in range(1, 6)
    ]
    ports = {port for port, _, _ in recorder.items}
    assert len(recorder.items) == 5
    assert len(ports) == 1, f"expected one keep-alive connection, saw client ports {ports}"
    for _, headers, body in recorder.items:
        assert webhook_verify(SECRET, headers["X-Partner-Timestamp"], body, headers["X-Partner-Signature"])
    assert [json.loads(body)["id"] for _, _, body in recorder.items] == [m.idempotency_key for m in messages]


def test_concurrent_sends_keep_one_result_per_message_in_order(receiver: tuple[str, Recorder]) -> None:
    url, recorder = receiver
    messages = [outbound(i, "not-a-url") for i in range(1, 41)]
    options = {"url": url, "concurrency": 4}
    with WebhookBackend(options=options, secrets={"signing_secret": SECRET}, timeout=2.0) as backend:
        results = backend.send_batch(messages)

    assert [(r.message_id, r.status) for r in results] == [(i, SendStatus.SENT) for i in range(1, 41)]
    assert sorted(json.loads(body)["id"] for _, _, body in recorder.items) == sorted(
        m.idempotency_key for m in messages
    )
    # Connections are pooled: at most one per concurrent sender, whatever the batch size.
    assert 1 <= len({port for port, _, _ in recorder.items}) <= 4


def test_concurrency_must_be_a_sensible_whole_number() -> None:
    for bad in (0, 65, "8", 2.5, True):
        errors = WebhookBackend.config_errors(options={"concurrency": bad}, secrets={"signing_secret": "s"})
        assert errors == ["option concurrency must be a whole number from 1 to 64"], bad


# Errors -------------------------------------------------------------------------------------------


@responses.activate
def test_error_table_one_result_per_message_in_order() -> None:
    answers: list[dict[str, Any]] = [
        {"status": 429, "headers": {"Retry-After": "12"}, "body": "slow down"},
        {"status": 500, "body": "boom"},
        {"status": 503, "body": ""},
        {"status": 400, "json": {"error": "bad field", "email": "jane.doe@example.com"}},
        {"status": 404, "body": "no such hook"},
        {"body": requests.ConnectionError("refused")},
        {"body": requests.ReadTimeout("slow")},
        {"status": 301, "headers": {"Location": "https://elsewhere.example.com"}},
        {"status": 200, "json": {"id": 991}},
    ]
    for answer in answers:
        responses.post(URL, **answer)
    messages = [outbound(i, "plain-address") for i in range(1, len(answers) + 1)]

    # One request at a time: `responses` hands out the answers in the order requests arrive.
    results = make_backend(concurrency=1).send_batch(messages)

    assert [(r.message_id, r.status, r.error, r.retry_after) for r in results] == [
        (1, SendStatus.RETRY, "webhook answered HTTP 429: slow down", 12.0),
        (2, SendStatus.RETRY, "webhook answered HTTP 500: boom", None),
        (3, SendStatus.RETRY, "webhook answered HTTP 503", None),
        (4, SendStatus.FAILED, 'webhook answered HTTP 400: {"error": "bad field", "email": "[email]"}', None),
        (5, SendStatus.FAILED, "webhook answered HTTP 404: no such hook", None),
        (6, SendStatus.RETRY, "webhook connection failed", None),
        (7, SendStatus.RETRY, "webhook timed out after 2s", None),
        (8, SendStatus.FAILED, "webhook answered HTTP 301", None),
        (9, SendStatus.SENT, "", None),
    ]
    assert results[8].provider_message_id == "991"
    assert len(responses.calls) == len(answers)  # redirects are not followed


def test_real_connection_refused_and_real_timeout_are_retried() -> None:
    refused_url = f"http://127.0.0.1:{closed_port()}/hook"
    with silent_server() as port:
        backend = WebhookBackend(options={}, secrets={"signing_secret": SECRET}, timeout=0.3)
        started = time.monotonic()
        results = backend.send_batch([outbound(1, refused_url), outbound(2, f"http://127.0.0.1:{port}/hook")])
        elapsed = time.monotonic() - started
    assert [(r.status, r.error) for r in results] == [
        (SendStatus.RETRY, "webhook connection failed"),
        (SendStatus.RETRY, "webhook timed out after 0.3s"),
    ]
    assert elapsed < 3


def test_no_url_anywhere_fails_without_a_request() -> None:
    backend = WebhookBackend(options={}, secrets={"signing_secret": SECRET})
    with responses.RequestsMock() as mock:
        [result] = backend.send_batch([outbound(1, "ftp://files.example.com/x")])
        assert len(mock.calls) == 0
    assert result == SendResult(
        1,
        SendStatus.FAILED,
        error="no webhook URL: the address is not an http(s) URL and option url is empty",
    )


def test_payload_that_is_not_json_fails_that_message_only() -> None:
    with responses.RequestsMock() as mock:
        mock.post(URL, json={})
        results = make_backend().send_batch(
            [outbound(1, "a", content=RenderedMessage(payload={1, 2})), outbound(2, "b")]
        )
    assert statuses(results) == [(1, SendStatus.FAILED), (2, SendStatus.SENT)]
    assert results[0].error.startswith("payload is not JSON")


def test_reason_never_holds_the_address() -> None:
    address = "https://hooks.example.com/partner?customer=jane"
    with responses.RequestsMock() as mock:
        mock.post(address, status=400, body=f"unknown target {address}")
        [result] = make_backend().send_batch([outbound(1, address)])
    assert result.status == SendStatus.FAILED
    assert address not in result.error
    assert result.error == "webhook answered HTTP 400: unknown target [address]"


def test_config_errors() -> None:
    assert WebhookBackend.config_errors(options={}, secrets={}) == ["secret signing_secret is required"]
    assert WebhookBackend.config_errors(
        options={"url": "ftp://x", "headers": {"Idempotency-Key": "x"}}, secrets={"signing_secret": "s"}
    ) == ["option url must be an http(s) URL", "option headers may not set Idempotency-Key"]
    with pytest.raises(ChannelConfigError, match=r"^provider webhook: secret signing_secret is required$"):
        WebhookBackend(options={}, secrets={})
