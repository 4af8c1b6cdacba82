"""The FCM push backend: the real firebase-admin SDK against mocked Google OAuth and FCM endpoints."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from firebase_admin import messaging

from apps.channels.backends import push
from apps.channels.backends.push import FcmBackend
from apps.channels.base import ChannelConfigError, SendResult, SendStatus
from apps.message_templates.types import RenderedMessage
from tests.channels.helpers import outbound

PROJECT = "shop-push-test"
TOKEN_URI = "https://oauth2.googleapis.com/token"
FCM_SEND = f"https://fcm.googleapis.com/v1/projects/{PROJECT}/messages:send"
ACCESS_TOKEN = "ya29.test-access-token"


@pytest.fixture(autouse=True)
def _no_regional_access_boundary_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """google-auth, after each token refresh, asks iamcredentials.googleapis.com for the account's
    "regional access boundary" from a background thread that can outlive a test's mock. That call is
    Google's business, not ours, and tests must not reach Google: switch the lookup off."""
    from google.auth.credentials import CredentialsWithRegionalAccessBoundary

    monkeypatch.setattr(
        CredentialsWithRegionalAccessBoundary,
        "_is_regional_access_boundary_lookup_required",
        lambda self: False,
    )


@pytest.fixture(scope="module")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def service_account(private_key_pem: str) -> dict[str, str]:
    # A fresh identity per test, so each test gets its own firebase App and fetches its own token.
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": uuid.uuid4().hex,
        "private_key": private_key_pem,
        "client_email": f"push-{uuid.uuid4().hex[:8]}@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": TOKEN_URI,
    }


def make_backend(service_account: dict[str, str], **options: Any) -> FcmBackend:
    return FcmBackend(options=options, secrets={"service_account": service_account}, timeout=3.0)


def fcm_error(status: int, grpc_status: str, message: str, fcm_code: str | None = None) -> dict[str, Any]:
    details = (
        [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}]
        if fcm_code
        else []
    )
    return {"error": {"code": status, "message": message, "status": grpc_status, "details": details}}


Reply = tuple[int, dict[str, str], str]


def by_token(replies: dict[str, Reply | Exception]) -> Callable[[requests.PreparedRequest], Reply]:
    """FCM answers per device token; send_each posts from several threads, so order is not fixed."""

    def callback(request: requests.PreparedRequest) -> Reply:
        token = json.loads(request.body or b"{}")["message"]["token"]
        reply = replies[token]
        if isinstance(reply, Exception):
            raise reply
        return reply

    return callback


def ok(name: str) -> Reply:
    return 200, {}, json.dumps({"name": f"projects/{PROJECT}/messages/{name}"})


def _text(body: str | bytes | None) -> str:
    return body.decode() if isinstance(body, bytes) else body or ""


def mock_token() -> None:
    responses.post(TOKEN_URI, json={"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"})


@responses.activate
def test_sends_notification_data_and_deep_link_with_an_oauth_token(service_account: dict[str, str]) -> None:
    mock_token()
    responses.add_callback(
        responses.POST, FCM_SEND, callback=by_token({"tok-1": ok("m1"), "tok-2": ok("m2")})
    )
    messages = [
        outbound(
            1,
            "tok-1",
            content=RenderedMessage(
                subject="Sale",
                text="50% off today",
                data={"offer": "A1"},
                deep_link="https://shop.example/a1",
            ),
        ),
        outbound(2, "tok-2", content=RenderedMessage(text="Back in stock", deep_link="shop://item/9")),
    ]

    with make_backend(service_account, android_priority="normal") as backend:
        results = backend.send_batch(messages)

    assert results == [
        SendResult(1, SendStatus.SENT, provider_message_id=f"projects/{PROJECT}/messages/m1"),
        SendResult(2, SendStatus.SENT, provider_message_id=f"projects/{PROJECT}/messages/m2"),
    ]
    token_calls = [c for c in responses.calls if c.request.url == TOKEN_URI]
    assert len(token_calls) == 1
    assert parse_qs(_text(token_calls[0].request.body))["grant_type"] == [
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    ]
    sends = {
        json.loads(c.request.body)["message"]["token"]: c.request
        for c in responses.calls
        if c.request.url == FCM_SEND
    }
    assert set(sends) == {"tok-1", "tok-2"}
    assert all(r.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}" for r in sends.values())
    assert json.loads(sends["tok-1"].body) == {
        "message": {
            "token": "tok-1",
            "notification": {"title": "Sale", "body": "50% off today"},
            "data": {"offer": "A1", "deep_link": "https://shop.example/a1"},
            "android": {"priority": "normal"},
            "webpush": {"fcm_options": {"link": "https://shop.example/a1"}},
        }
    }
    # A non-HTTPS deep link travels in the data only; FCM's web link must be HTTPS.
    assert json.loads(sends["tok-2"].body) == {
        "message": {
            "token": "tok-2",
            "notification": {"body": "Back in stock"},
            "data": {"deep_link": "shop://item/9"},
            "android": {"priority": "normal"},
        }
    }


@responses.activate
def test_error_table_one_result_per_message_in_order(service_account: dict[str, str]) -> None:
    mock_token()
    replies: dict[str, Reply | Exception] = {
        "t1": (
            404,
            {},
            json.dumps(fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")),
        ),
        "t2": (
            400,
            {},
            json.dumps(
                fcm_error(
                    400,
                    "INVALID_ARGUMENT",
                    "The registration token is not a valid FCM registration token",
                    "INVALID_ARGUMENT",
                )
            ),
        ),
        "t3": (
            403,
            {},
            json.dumps(fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")),
        ),
        "t4": (
            429,
            {"Retry-After": "20"},
            json.dumps(fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED")),
        ),
        "t5": (
            503,
            {},
            json.dumps(fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE")),
        ),
        "t6": (500, {}, json.dumps(fcm_error(500, "INTERNAL", "Internal error encountered.", "INTERNAL"))),
        "t7": requests.ConnectionError("refused"),
        "t8": requests.ReadTimeout("slow"),
        "t9": ok("m9"),
    }
    responses.add_callback(responses.POST, FCM_SEND, callback=by_token(replies))
    messages = [outbound(i, f"t{i}", content=RenderedMessage(text=f"m{i}")) for i in range(1, 10)]

    with make_backend(service_account) as backend:
        results = backend.send_batch(messages)

    assert [(r.message_id, r.status, r.error, r.retry_after) for r in results] == [
        (1, SendStatus.FAILED, "FCM UnregisteredError (NOT_FOUND): Requested entity was not found.", None),
        (
            2,
            SendStatus.FAILED,
            "FCM InvalidArgumentError (INVALID_ARGUMENT): The registration token is not a valid FCM "
            "registration token",
            None,
        ),
        (3, SendStatus.FAILED, "FCM SenderIdMismatchError (PERMISSION_DENIED): SenderId mismatch", None),
        (4, SendStatus.RETRY, "FCM QuotaExceededError (RESOURCE_EXHAUSTED): Quota exceeded.", 20.0),
        (
            5,
            SendStatus.RETRY,
            "FCM UnavailableError (UNAVAILABLE): The service is currently unavailable.",
            None,
        ),
        (6, SendStatus.RETRY, "FCM InternalError (INTERNAL): Internal error encountered.", None),
        (
            7,
            SendStatus.RETRY,
            "FCM UnavailableError (UNAVAILABLE): Failed to establish a connection: refused",
            None,
        ),
        (
            8,
            SendStatus.RETRY,
            "FCM DeadlineExceededError (DEADLINE_EXCEEDED): Timed out while making an API call: slow",
            None,
        ),
        (9, SendStatus.SENT, "", None),
    ]
    # One call per message: the SDK's own retries of 500/503 are off; the platform retries.
    assert len([c for c in responses.calls if c.request.url == FCM_SEND]) == 9


@responses.activate
def test_refused_credentials_fail_the_batch_without_calling_fcm(service_account: dict[str, str]) -> None:
    responses.post(
        TOKEN_URI, status=400, json={"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    )
    with make_backend(service_account) as backend:
        results = backend.send_batch([outbound(1, "t1"), outbound(2, "t2")])
    assert [r.status for r in results] == [SendStatus.FAILED, SendStatus.FAILED]
    assert results[0].error.startswith(
        "FCM credentials were refused by Google: ('invalid_grant: Invalid JWT Signature.'"
    )
    assert not [c for c in responses.calls if c.request.url == FCM_SEND]


def test_bad_messages_fail_alone_without_a_call(service_account: dict[str, str]) -> None:
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URI, json={"access_token": ACCESS_TOKEN, "expires_in": 3600})
        mock.add_callback(responses.POST, FCM_SEND, callback=by_token({"ok": ok("m3")}))
        results = make_backend(service_account).send_batch(
            [
                outbound(1, " ", content=RenderedMessage(text="x")),
                outbound(2, "tok", content=RenderedMessage()),
                outbound(3, "ok", content=RenderedMessage(text="fine")),
            ]
        )
        [sent_call] = [c for c in mock.calls if c.request.url == FCM_SEND]
        assert json.loads(sent_call.request.body)["message"]["android"] == {"priority": "high"}  # default
    assert [(r.status, r.error) for r in results] == [
        (SendStatus.FAILED, "no device token"),
        (SendStatus.FAILED, "the rendered push has no title, body or data"),
        (SendStatus.SENT, ""),
    ]


@responses.activate
def test_more_messages_than_one_call_takes_are_sent_in_chunks(
    service_account: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mock_token()
    responses.add_callback(
        responses.POST, FCM_SEND, callback=by_token({f"t{i}": ok(f"m{i}") for i in range(1, 6)})
    )
    monkeypatch.setattr(push, "FCM_MAX_PER_CALL", 2)
    sizes: list[int] = []
    real_send_each = messaging.send_each

    def recording_send_each(batch: list[messaging.Message], **kwargs: Any) -> messaging.BatchResponse:
        sizes.append(len(batch))
        return real_send_each(batch, **kwargs)

    monkeypatch.setattr(messaging, "send_each", recording_send_each)
    results = make_backend(service_account).send_batch([outbound(i, f"t{i}") for i in range(1, 6)])
    assert sizes == [2, 2, 1]
    assert [(r.message_id, r.provider_message_id) for r in results] == [
        (i, f"projects/{PROJECT}/messages/m{i}") for i in range(1, 6)
    ]


@responses.activate
def test_installation_ids_as_addresses(service_account: dict[str, str]) -> None:
    mock_token()
    responses.post(FCM_SEND, body=ok("m1")[2])
    [result] = make_backend(service_account, address_type="fid").send_batch([outbound(1, "fid-123")])
    assert result.status == SendStatus.SENT
    [send] = [c for c in responses.calls if c.request.url == FCM_SEND]
    message = json.loads(send.request.body)["message"]
    assert message["fid"] == "fid-123"
    assert "token" not in message


def test_one_firebase_app_per_credentials_reused_across_batches(service_account: dict[str, str]) -> None:
    first = push.firebase_app_for(service_account, project_id=PROJECT, timeout=3.0)
    again = push.firebase_app_for(dict(service_account), project_id=PROJECT, timeout=3.0)
    rotated = push.firebase_app_for(
        {**service_account, "private_key_id": "new"}, project_id=PROJECT, timeout=3.0
    )
    assert first is again
    assert rotated is not first
    assert first.project_id == PROJECT


def test_service_account_as_json_text_and_config_errors(service_account: dict[str, str]) -> None:
    backend = FcmBackend(options={}, secrets={"service_account": json.dumps(service_account)})
    assert backend.project_id == PROJECT
    assert FcmBackend.config_errors(options={}, secrets={}) == [
        "secret service_account is required: the service account key JSON"
    ]
    assert FcmBackend.config_errors(
        options={"android_priority": "max"},
        secrets={"service_account": {"type": "authorized_user", "client_email": "x@y"}},
    ) == [
        'secret service_account must be a service account key ("type": "service_account")',
        "secret service_account lacks private_key",
        "a project id is required: in the service account key or option project_id",
        'option android_priority must be "high" or "normal"',
    ]
    assert FcmBackend.config_errors(
        options={"address_type": "topic"}, secrets={"service_account": service_account}
    ) == ['option address_type must be "token" (registration token) or "fid" (installation id)']
    broken = {
        **service_account,
        "private_key": "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n",
    }
    with pytest.raises(ChannelConfigError) as raised:
        FcmBackend(options={}, secrets={"service_account": broken})
    assert str(raised.value) == "provider fcm: secret service_account holds a private key that cannot be read"
