"""`manage.py optimove_check SLUG`: plain OK / FAILED lines and the exit status."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
import requests
import responses
from django.core.management import CommandError, call_command

from apps.clients.models import Client
from tests.optimove.conftest import fixture

BASE = "https://api5.optimove.test"
LISTENERS = f"{BASE}/current/general/GetRegisteredEventListeners"


@pytest.fixture
def acme(db: None, redis_client: Any) -> Client:
    return Client.objects.create(
        slug="acme", name="Acme", optimove_base_url=BASE, optimove_api_key="key-acme-Secret"
    )


def run(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("optimove_check", *args, stdout=out)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_ok_counts_the_listeners_and_names_the_auth(acme: Client, mocked: responses.RequestsMock) -> None:
    mocked.get(LISTENERS, json=fixture("registered_event_listeners.json"))

    status, output = run("acme")

    assert status == 0
    assert output == f"OK: {BASE} answered; auth by API key; 3 listeners registered.\n"
    assert mocked.calls[0].request.headers["X-API-KEY"] == "key-acme-Secret"


def test_ok_with_the_legacy_login(db: None, redis_client: Any, mocked: responses.RequestsMock) -> None:
    Client.objects.create(
        slug="old", name="Old", optimove_base_url=BASE, optimove_username="u", optimove_password="p"
    )
    mocked.post(f"{BASE}/current/general/login", json="tok-1")
    mocked.get(LISTENERS, json=[{"EventTypeID": 4, "ListenerURL": "https://p.test/l"}])

    status, output = run("old")

    assert status == 0
    assert output == f"OK: {BASE} answered; auth by legacy login; 1 listener registered.\n"


def test_rejected_credentials_fail_with_exit_status_1(acme: Client, mocked: responses.RequestsMock) -> None:
    mocked.get(LISTENERS, status=401)

    status, output = run("acme")

    assert status == 1
    assert output == f"FAILED: {BASE} rejected the credentials (401).\n"
    assert "key-acme-Secret" not in output


def test_unreachable_optimove_fails_without_retrying(acme: Client, mocked: responses.RequestsMock) -> None:
    mocked.get(LISTENERS, body=requests.exceptions.ConnectTimeout("connect timed out"))

    status, output = run("acme")

    assert status == 1
    assert output == f"FAILED: could not reach {BASE} (timeout)\n"
    assert len(mocked.calls) == 1


def test_server_errors_are_retried_when_asked(acme: Client, mocked: responses.RequestsMock) -> None:
    mocked.get(LISTENERS, status=503)

    status, output = run("acme", "--retries", "2")

    assert status == 1
    assert output == f"FAILED: {BASE} answered 503 to GetRegisteredEventListeners.\n"
    assert len(mocked.calls) == 3


def test_unknown_slug_is_a_command_error_listing_the_known_ones(acme: Client) -> None:
    with pytest.raises(CommandError, match=r"No client with slug 'acme-typo'. Known slugs: acme."):
        call_command("optimove_check", "acme-typo")
