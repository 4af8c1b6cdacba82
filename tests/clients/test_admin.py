"""The admin's write-only secret inputs and the listener-token action, through real admin requests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client as HttpClient

from apps.clients import services
from apps.clients.models import Channel, Client
from tests.clients.conftest import (
    API_KEY,
    SENDGRID_TOKEN,
    SMTP_PASSWORD,
    acme_document,
    channel_form_data,
    client_form_data,
    snapshot,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("acme_env")]


@pytest.fixture
def acme() -> Client:
    services.client_apply(document=acme_document())
    return Client.objects.get(slug="acme")


@pytest.fixture
def superuser_client(client: HttpClient) -> HttpClient:
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def change_url(obj: Any) -> str:
    return f"/admin/clients/{obj._meta.model_name}/{obj.pk}/change/"


def test_an_empty_secret_input_keeps_the_stored_value(superuser_client: HttpClient, acme: Client) -> None:
    response = superuser_client.post(change_url(acme), client_form_data(acme, name="Acme Two"))

    assert response.status_code == 302, response.content.decode()[:2000]
    acme.refresh_from_db()
    assert (acme.name, acme.optimove_api_key, acme.optimove_password) == ("Acme Two", API_KEY, "")


def test_a_typed_secret_replaces_the_stored_one_and_clear_removes_it(
    superuser_client: HttpClient, acme: Client
) -> None:
    response = superuser_client.post(
        change_url(acme),
        client_form_data(acme, new_optimove_api_key="  opt-live-from-admin-42  ", optimove_username="legacy"),
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.optimove_api_key == "opt-live-from-admin-42"  # surrounding spaces are a paste accident

    response = superuser_client.post(
        change_url(acme), client_form_data(acme, clear_optimove_api_key="on", new_optimove_password="p w 1")
    )
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.optimove_api_key, acme.optimove_password) == ("", "p w 1")


def test_typing_a_secret_and_ticking_clear_is_refused_and_changes_nothing(
    superuser_client: HttpClient, acme: Client
) -> None:
    before = snapshot()

    response = superuser_client.post(
        change_url(acme),
        client_form_data(acme, new_optimove_api_key="opt-live-typed-77", clear_optimove_api_key="on"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "clear_optimove_api_key": ["Either type a new value or remove the stored one, not both."]
    }
    assert "opt-live-typed-77" not in response.content.decode()
    assert snapshot() == before


def test_provider_secrets_json_merges_per_key_and_null_removes(
    superuser_client: HttpClient, acme: Client
) -> None:
    email = acme.channels.get(optimove_channel_id=504)
    update = json.dumps({"password": "smtp-from-admin", "api_token": None, "webhook_key": "wk-1"})

    response = superuser_client.post(
        change_url(email), channel_form_data(email, provider_secrets_update=update)
    )

    assert response.status_code == 302
    email.refresh_from_db()
    assert email.provider_secrets == {"password": "smtp-from-admin", "webhook_key": "wk-1"}

    response = superuser_client.post(change_url(email), channel_form_data(email, name="Newsletter"))
    assert response.status_code == 302
    email.refresh_from_db()
    assert (email.name, email.provider_secrets) == (
        "Newsletter",
        {"password": "smtp-from-admin", "webhook_key": "wk-1"},
    )

    response = superuser_client.post(
        change_url(email),
        channel_form_data(email, clear_provider_secrets="on", provider_secrets_update='{"token": "t-9"}'),
    )
    assert response.status_code == 302
    email.refresh_from_db()
    assert email.provider_secrets == {"token": "t-9"}


@pytest.mark.parametrize(
    ("update", "error"),
    [
        (
            '{"password": "smtp-half-typed',
            "Not valid JSON: Unterminated string starting at (line 1, column 14); nothing was changed.",
        ),
        ('["smtp-in-a-list"]', 'Expected a JSON object such as {"password": "..."}.'),
        ('{"password": 12345}', "'password': expected a non-empty string, or null to remove it."),
    ],
)
def test_bad_provider_secrets_json_is_refused_without_echoing_it(
    superuser_client: HttpClient, acme: Client, update: str, error: str
) -> None:
    email = acme.channels.get(optimove_channel_id=504)
    before = snapshot()

    response = superuser_client.post(
        change_url(email), channel_form_data(email, provider_secrets_update=update)
    )

    assert response.status_code == 200
    [message] = response.context["adminform"].form.errors["provider_secrets_update"]
    assert message == error
    content = response.content.decode()
    assert "smtp-half-typed" not in content
    assert "smtp-in-a-list" not in content
    assert snapshot() == before


def test_the_stored_secret_names_are_shown_never_their_values(
    superuser_client: HttpClient, acme: Client
) -> None:
    email = acme.channels.get(optimove_channel_id=504)

    content = superuser_client.get(change_url(email)).content.decode()

    assert '<div class="readonly">api_token, password</div>' in content
    assert SMTP_PASSWORD not in content
    assert SENDGRID_TOKEN not in content
    client_page = superuser_client.get(change_url(acme)).content.decode()
    assert client_page.count('<div class="readonly">set</div>') == 1  # the API key
    assert '<div class="readonly">not set</div>' in client_page  # the password


def test_a_superuser_regenerates_the_listener_token(superuser_client: HttpClient, acme: Client) -> None:
    old_token = acme.listener_token

    response = superuser_client.post(
        "/admin/clients/client/",
        {"action": "regenerate_listener_token", "_selected_action": [str(acme.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    acme.refresh_from_db()
    assert acme.listener_token != old_token
    assert len(acme.listener_token) >= 40
    assert [str(m) for m in response.context["messages"]] == [
        "New listener token for acme. Listener URLs registered with the old token now fail: "
        "register the event listeners with Optimove again."
    ]


def test_a_staff_user_cannot_regenerate_the_listener_token(client: HttpClient, acme: Client) -> None:
    staff = User.objects.create_user("ops", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=["view_client", "change_client"]))
    acme.admins.add(staff)
    client.force_login(staff)
    old_token = acme.listener_token

    listing = client.get("/admin/clients/client/")
    client.post(
        "/admin/clients/client/", {"action": "regenerate_listener_token", "_selected_action": [str(acme.pk)]}
    )

    assert listing.status_code == 200
    assert "regenerate_listener_token" not in listing.content.decode()
    acme.refresh_from_db()
    assert acme.listener_token == old_token


def test_the_slug_cannot_change_once_listeners_may_use_it(superuser_client: HttpClient, acme: Client) -> None:
    response = superuser_client.post(change_url(acme), client_form_data(acme, slug="acme-renamed"))

    assert response.status_code == 302
    assert Client.objects.get(pk=acme.pk).slug == "acme"


def test_a_new_channel_can_be_added_on_its_own_page(superuser_client: HttpClient, acme: Client) -> None:
    data = channel_form_data(
        Channel(client=acme, optimove_channel_id=506, name="Push", kind="push", provider="fcm"),
        provider_secrets_update='{"service_account": "{\\"type\\": \\"service_account\\"}"}',
    )

    response = superuser_client.post("/admin/clients/channel/add/", data)

    assert response.status_code == 302
    push = acme.channels.get(optimove_channel_id=506)
    assert push.provider_secrets == {"service_account": '{"type": "service_account"}'}


def test_a_channel_syncing_consent_by_attribute_must_name_the_attribute(
    superuser_client: HttpClient, acme: Client
) -> None:
    email = acme.channels.get(optimove_channel_id=504)

    response = superuser_client.post(change_url(email), channel_form_data(email, consent_sync="attribute"))
    assert response.status_code == 200
    assert "Name the customer attribute that consent sync by attribute fills." in response.content.decode()
    email.refresh_from_db()
    assert (email.consent_sync, email.consent_attribute) == ("preference", "")

    response = superuser_client.post(
        change_url(email), channel_form_data(email, consent_sync="attribute", consent_attribute="EmailOptIn")
    )
    assert response.status_code == 302
    email.refresh_from_db()
    assert (email.consent_sync, email.consent_attribute) == ("attribute", "EmailOptIn")
