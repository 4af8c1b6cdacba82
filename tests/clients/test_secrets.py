"""Secrets at rest, on admin pages, in logs, and through a key rotation."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client as HttpClient
from django.test import override_settings

from apps.clients import services
from apps.clients.crypto import DecryptionError
from apps.clients.models import Channel, Client
from tests.clients.conftest import (
    ALL_SECRETS,
    API_KEY,
    SENDGRID_TOKEN,
    SMTP_PASSWORD,
    TWILIO_TOKEN,
    acme_document,
    channel_form_data,
    client_form_data,
    snapshot,
)
from tests.core.test_logging import capture_json_log

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("acme_env")]

LEGACY_PASSWORD = "legacy-pw-Ember-Falcon-31"


def raw_columns(table: str, columns: str) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table} ORDER BY id")  # noqa: S608 - fixed names
        return [tuple(row) for row in cursor.fetchall()]


@pytest.fixture
def acme() -> Client:
    services.client_apply(document=acme_document())
    return Client.objects.get(slug="acme")


@pytest.fixture
def legacy() -> Client:
    services.client_apply(
        document={
            "slug": "legacy",
            "name": "Legacy Login Ltd",
            "optimove": {
                "base_url": "https://api4.optimove.net",
                "username": "partner-user",
                "password": LEGACY_PASSWORD,
            },
        }
    )
    return Client.objects.get(slug="legacy")


def test_stored_secrets_are_fernet_tokens_not_plaintext(acme: Client, legacy: Client) -> None:
    fernet = Fernet(settings.FIELD_ENCRYPTION_KEYS[0].encode())
    rows = raw_columns("clients_client", "slug, optimove_api_key, optimove_password, listener_token")
    expected = {
        "acme": (API_KEY, "", acme.listener_token),
        "legacy": ("", LEGACY_PASSWORD, legacy.listener_token),
    }
    for slug, *stored in rows:
        for raw, plain in zip(stored, expected[slug], strict=True):
            if not plain:
                assert raw == ""  # nothing to hide
                continue
            assert plain not in raw
            assert raw.startswith("gAAAAA")  # Fernet's version byte, base64
            assert fernet.decrypt(raw.encode()).decode() == plain

    for channel_id, raw in raw_columns("clients_channel", "optimove_channel_id, provider_secrets"):
        for secret in (*ALL_SECRETS, "password", "auth_token"):
            assert secret not in raw  # not even the names
        assert (
            json.loads(fernet.decrypt(raw.encode()))
            == {
                504: {"api_token": SENDGRID_TOKEN, "password": SMTP_PASSWORD},
                505: {"auth_token": TWILIO_TOKEN},
            }[channel_id]
        )


def test_admin_pages_never_show_a_secret_or_the_listener_token(
    client: HttpClient, acme: Client, legacy: Client
) -> None:
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    email = acme.channels.get(optimove_channel_id=504)
    forbidden = [*ALL_SECRETS, LEGACY_PASSWORD, acme.listener_token, legacy.listener_token]
    forbidden += [
        value
        for row in snapshot()["clients_client"]
        for value in row.values()
        if isinstance(value, str) and value.startswith("gAAAAA")
    ]  # the stored tokens are no business of a page either
    pages = [
        "/admin/clients/client/",
        f"/admin/clients/client/{acme.pk}/change/",
        f"/admin/clients/client/{legacy.pk}/change/",
        f"/admin/clients/client/{acme.pk}/history/",
        f"/admin/clients/client/{acme.pk}/delete/",
        "/admin/clients/client/add/",
        "/admin/clients/channel/",
        f"/admin/clients/channel/{email.pk}/change/",
        "/admin/clients/channel/add/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        content = response.content.decode()
        for secret in forbidden:
            assert secret not in content, (url, secret)

    # A form shown again with an error does not echo what was typed either.
    response = client.post(
        f"/admin/clients/client/{acme.pk}/change/",
        client_form_data(acme, name="", new_optimove_api_key="opt-live-typed-but-invalid"),
    )
    assert response.status_code == 200
    assert "opt-live-typed-but-invalid" not in response.content.decode()
    response = client.post(
        f"/admin/clients/channel/{email.pk}/change/",
        channel_form_data(
            email, kind="fax", provider_secrets_update='{"password": "smtp-typed-but-invalid"}'
        ),
    )
    assert response.status_code == 200
    assert "smtp-typed-but-invalid" not in response.content.decode()


class RawRecords(logging.Handler):
    """Every record as the code logged it, before any redaction (installed ahead of the JSON handler)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        extras = {k: v for k, v in vars(record).items() if k not in ("msg", "args", "exc_info")}
        self.texts.append(f"{record.getMessage()} {extras}")


@pytest.fixture
def raw_records() -> Iterator[RawRecords]:
    root = logging.getLogger()
    handler = RawRecords()
    root.handlers.insert(0, handler)
    try:
        yield handler
    finally:
        root.handlers.remove(handler)


def test_client_apply_and_admin_saves_log_no_secret(
    tmp_path: Path, client: HttpClient, raw_records: RawRecords
) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump(acme_document()))
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))

    with capture_json_log() as json_lines:
        call_command("client_apply", str(path), stdout=io.StringIO())
        acme = Client.objects.get(slug="acme")
        email = acme.channels.get(optimove_channel_id=504)
        saved_client = client.post(
            f"/admin/clients/client/{acme.pk}/change/",
            client_form_data(acme, new_optimove_api_key="opt-live-admin-typed-5"),
        )
        saved_channel = client.post(
            f"/admin/clients/channel/{email.pk}/change/",
            channel_form_data(email, provider_secrets_update='{"password": "smtp-admin-typed-6"}'),
        )
        client.post(
            "/admin/clients/client/",
            {"action": "regenerate_listener_token", "_selected_action": [str(acme.pk)]},
        )

    assert (saved_client.status_code, saved_channel.status_code) == (302, 302)
    acme.refresh_from_db()
    messages = [line["message"] for line in json_lines()]
    assert messages[0].startswith(
        "client_apply acme: client acme created (name, active, personal_data_retention_days, "
        "optimove.base_url"
    )
    assert f"POST /admin/clients/client/{acme.pk}/change/ 302" in messages
    assert f"POST /admin/clients/channel/{email.pk}/change/ 302" in messages
    assert "listener token regenerated for client acme" in messages
    logged = "\n".join([json.dumps(json_lines()), *raw_records.texts])
    assert raw_records.texts  # the raw handler saw the same records
    for secret in (*ALL_SECRETS, "opt-live-admin-typed-5", "smtp-admin-typed-6", acme.listener_token):
        assert secret not in logged


def _raw_secrets() -> list[tuple[Any, ...]]:
    return raw_columns("clients_client", "optimove_api_key, optimove_password, listener_token") + raw_columns(
        "clients_channel", "provider_secrets"
    )


def _read_all() -> list[Any]:
    clients = [
        (c.optimove_api_key, c.optimove_password, c.listener_token) for c in Client.objects.order_by("pk")
    ]
    channels = [c.provider_secrets for c in Channel.objects.order_by("pk")]
    return [*clients, *channels]


def _rotate(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("secrets_rotate", *args, stdout=out)
    return [line for line in out.getvalue().splitlines() if line.startswith(("clients.", "done:"))]


def test_rotation_re_encrypts_every_secret_with_the_newest_key(acme: Client, legacy: Client) -> None:
    key_a = settings.FIELD_ENCRYPTION_KEYS[0]
    out = io.StringIO()
    call_command("secrets_generate_key", stdout=out)
    key_b = out.getvalue().strip()
    Fernet(key_b.encode())  # a usable key
    assert key_b != key_a
    values = _read_all()
    raw_before = _raw_secrets()
    updated_before = [row["updated_at"] for row in snapshot()["clients_client"]]

    with override_settings(FIELD_ENCRYPTION_KEYS=[key_b, key_a]):
        assert _read_all() == values  # the old key still opens everything
        assert _rotate("--batch-size", "1") == [
            "clients.Client (optimove_api_key, optimove_password, listener_token): 2 rows, "
            "4 values re-encrypted, 0 already current",
            "clients.Channel (provider_secrets): 2 rows, 2 values re-encrypted, 0 already current",
            "done: 6 value(s) re-encrypted with the newest key",
        ]
        raw_after = _raw_secrets()
        assert _rotate() == [  # a second run finds nothing to do and writes nothing
            "clients.Client (optimove_api_key, optimove_password, listener_token): 2 rows, "
            "0 values re-encrypted, 4 already current",
            "clients.Channel (provider_secrets): 2 rows, 0 values re-encrypted, 2 already current",
            "done: 0 value(s) re-encrypted with the newest key",
        ]
        assert _raw_secrets() == raw_after

    for before, after in zip(raw_before, raw_after, strict=True):
        for old, new in zip(before, after, strict=True):
            assert (old == "") == (new == "")
            if old:
                assert new != old
                assert Fernet(key_b.encode()).decrypt(new.encode())
    assert [row["updated_at"] for row in snapshot()["clients_client"]] == updated_before
    with override_settings(FIELD_ENCRYPTION_KEYS=[key_b]):
        assert _read_all() == values
    with override_settings(FIELD_ENCRYPTION_KEYS=[key_a]), pytest.raises(DecryptionError):
        Client.objects.get(slug="acme")


def test_rotation_reports_a_value_no_key_opens_and_still_rotates_the_rest(acme: Client) -> None:
    stranger = Fernet(Fernet.generate_key()).encrypt(b"written-with-a-lost-key").decode()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE clients_client SET optimove_password = %s WHERE id = %s", [stranger, acme.pk])
    key_a = settings.FIELD_ENCRYPTION_KEYS[0]
    key_b = Fernet.generate_key().decode()

    with override_settings(FIELD_ENCRYPTION_KEYS=[key_b, key_a]), pytest.raises(CommandError) as raised:
        call_command("secrets_rotate", stdout=io.StringIO())

    assert str(raised.value) == (
        "1 stored value(s) could not be decrypted with any configured key; "
        "they were left as they are (see the lines above)"
    )
    assert raw_columns("clients_client", "optimove_password") == [(stranger,)]
    with override_settings(FIELD_ENCRYPTION_KEYS=[key_b]):
        assert Channel.objects.get(optimove_channel_id=504).provider_secrets["password"] == SMTP_PASSWORD
        [(api_key,)] = raw_columns("clients_client", "optimove_api_key")
        assert Fernet(key_b.encode()).decrypt(api_key.encode()).decode() == API_KEY
