"""Provider names to backends, and building a channel's backend from its stored settings."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from apps.channels.backends.console import ConsoleBackend, NullBackend
from apps.channels.backends.email import SmtpBackend
from apps.channels.backends.push import FcmBackend
from apps.channels.backends.sms import TwilioBackend
from apps.channels.backends.webhook import WebhookBackend
from apps.channels.base import (
    ChannelBackend,
    ChannelConfigError,
    OutboundMessage,
    SendResult,
    UnknownBackendError,
    sent,
)
from apps.channels.registry import backend_class, backend_for, channel_config_errors, register_backend
from apps.clients.models import Channel, Client

KNOWN = "anymail:<esp>, console, fcm, null, smtp, twilio, webhook"


def test_each_provider_name_maps_to_its_backend() -> None:
    assert backend_class("smtp") is SmtpBackend
    assert backend_class("twilio") is TwilioBackend
    assert backend_class("fcm") is FcmBackend
    assert backend_class("webhook") is WebhookBackend
    assert backend_class("console") is ConsoleBackend
    assert backend_class("null") is NullBackend
    assert backend_class("anymail:sendgrid").name == "anymail:sendgrid"


def test_unknown_provider_error_lists_the_known_ones() -> None:
    with pytest.raises(UnknownBackendError) as raised:
        backend_class("pigeon")
    assert str(raised.value) == f"unknown provider 'pigeon'; known providers: {KNOWN}"
    with pytest.raises(
        UnknownBackendError, match=r"^unknown anymail ESP 'carrier_pigeon'; known: .*\bpostmark\b"
    ):
        backend_class("anymail:carrier_pigeon")
    with pytest.raises(UnknownBackendError, match=r"^provider 'smtp' takes no ':x' variant$"):
        backend_class("smtp:x")


def test_config_errors_list_missing_secrets_and_kind_mismatch() -> None:
    assert channel_config_errors(
        provider="twilio", kind="sms", options={"from_": "+15550001000"}, secrets={"account_sid": "AC1"}
    ) == ["secret auth_token is required"]
    assert channel_config_errors(provider="twilio", kind="email", options={"from_": "+1"}, secrets={}) == [
        "provider 'twilio' cannot send 'email' messages (it sends sms)",
        "secret account_sid is required",
        "secret auth_token is required",
    ]
    assert channel_config_errors(provider="pigeon", kind="sms", options={}, secrets={}) == [
        f"unknown provider 'pigeon'; known providers: {KNOWN}"
    ]
    assert channel_config_errors(
        provider="console", kind="push", options={"timeout_seconds": 0}, secrets={}
    ) == ["option timeout_seconds must be a positive number"]
    assert channel_config_errors(provider="console", kind="push", options={}, secrets={}) == []


@pytest.fixture
def client(db: None) -> Client:
    return Client.objects.create(slug="shop", name="Shop", optimove_base_url="https://api5.optimove.net")


def make_channel(client: Client, **fields: object) -> Channel:
    defaults: dict[str, object] = {
        "name": "Hooks",
        "kind": "webhook",
        "optimove_channel_id": 505,
        "provider": "webhook",
    }
    defaults.update(fields)
    channel = Channel.objects.create(client=client, **defaults)
    return Channel.objects.get(pk=channel.pk)  # as campaigns loads it: secrets decrypted from the row


def test_backend_for_builds_from_the_stored_options_and_decrypted_secrets(client: Client) -> None:
    channel = make_channel(
        client,
        provider_options={"url": "https://hooks.example.com/x", "timeout_seconds": 4},
        provider_secrets={"signing_secret": "stored-secret"},
    )
    backend = backend_for(channel)
    assert isinstance(backend, WebhookBackend)
    assert backend.timeout == 4.0
    assert backend.kind == "webhook"
    assert backend.options["url"] == "https://hooks.example.com/x"
    assert backend.secrets == {"signing_secret": "stored-secret"}
    assert "stored-secret" not in repr(backend)


def test_backend_for_refuses_a_misconfigured_channel_without_showing_secrets(client: Client) -> None:
    sms = make_channel(
        client,
        kind="sms",
        provider="twilio",
        optimove_channel_id=506,
        provider_options={"from_": "+15550001000"},
        provider_secrets={"account_sid": "AC-sid", "auth_token": ""},
    )
    with pytest.raises(ChannelConfigError) as raised:
        backend_for(sms)
    assert str(raised.value) == "provider twilio: secret auth_token is required"

    wrong_kind = make_channel(client, kind="email", provider="fcm", optimove_channel_id=507)
    with pytest.raises(
        ChannelConfigError, match=r"^provider 'fcm' cannot send 'email' messages \(it sends push\)$"
    ):
        backend_for(wrong_kind)

    unknown = make_channel(client, provider="pigeon", optimove_channel_id=508)
    with pytest.raises(UnknownBackendError):
        backend_for(unknown)


def test_a_project_can_register_its_own_backend(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.channels import registry

    backend_class("smtp")  # built-ins loaded, then the registry is copied so this test leaves no trace
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))

    class EchoBackend(ChannelBackend):
        name = "echo-test"
        kinds = frozenset({"sms"})

        def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
            return [sent(m, f"echo-{m.message_id}") for m in messages]

    assert register_backend(EchoBackend) is EchoBackend
    channel = make_channel(client, kind="sms", provider="echo-test", optimove_channel_id=509)
    with backend_for(channel) as backend:
        assert isinstance(backend, EchoBackend)

    class Nameless(EchoBackend):
        name = "bad:name"

    with pytest.raises(ValueError, match=r"name must be a non-empty name without ':'"):
        register_backend(Nameless)
