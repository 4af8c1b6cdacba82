"""UpdateCustomerAttributes answers on its CallbackURL after the call commits, like Optimove does."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.sandbox.models import SandboxAccount, SandboxAttribute, SandboxAttributeUpdate
from tests.conftest import wait_for
from tests.sandbox.conftest import Recorder
from tools.devservers import free_port


@pytest.fixture
def committed_account(transactional_db: None, redis_client: Any) -> SandboxAccount:
    # transactional_db: the callback is sent only once the call's transaction has committed.
    account = SandboxAccount.objects.create(name="acme", api_key="key-acme")
    SandboxAttribute.objects.create(account=account, name="Tier", type="VARCHAR(10)")
    return account


def _update(client: HttpClient, callback_url: str) -> Any:
    body = {
        "CustomerNewAttributesValuesList": [
            {"CustomerID": "96134", "Attributes": [{"RealFieldName": "Tier", "Value": "gold"}]},
            {"CustomerID": "13482", "Attributes": [{"RealFieldName": "Colour", "Value": "red"}]},
        ],
        "CallbackURL": callback_url,
    }
    return client.post(
        "/current/customers/UpdateCustomerAttributes",
        body,
        content_type="application/json",
        headers={"X-API-KEY": "key-acme"},
    )


def test_callback_reaches_the_url_with_request_id_and_errors(
    client: HttpClient, committed_account: SandboxAccount, recorder: Recorder
) -> None:
    response = _update(client, f"{recorder.url}/attributes/callback?token=abc")

    assert (response.status_code, response.content) == (200, b"")
    assert recorder.arrived.wait(10), "the callback never arrived"
    update = SandboxAttributeUpdate.objects.get()
    assert recorder.received[0].path == "/attributes/callback?token=abc"
    assert recorder.received[0].body == {
        "isSuccess": False,
        "requestId": str(update.request_id),
        "errors": ["CustomerID 13482: unknown attribute 'Colour'"],
    }
    uuid.UUID(recorder.received[0].body["requestId"])
    wait_for(
        lambda: SandboxAttributeUpdate.objects.get().callback_status == "delivered",
        5,
        "the delivery to be recorded",
    )
    assert SandboxAttributeUpdate.objects.get().callback_http_status == 200


def test_a_callback_that_cannot_be_delivered_is_recorded_as_failed(
    client: HttpClient, committed_account: SandboxAccount
) -> None:
    response = _update(client, f"http://127.0.0.1:{free_port()}/cb?token=s3cr3t")

    assert response.status_code == 200
    wait_for(lambda: SandboxAttributeUpdate.objects.get().callback_status == "failed", 10, "the failure")
    update = SandboxAttributeUpdate.objects.get()
    assert update.callback_http_status is None
    assert update.callback_error.startswith("ConnectionError: ")
    assert "s3cr3t" not in update.callback_error
