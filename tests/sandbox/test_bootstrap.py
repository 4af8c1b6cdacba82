"""`sandbox_bootstrap`: what `make run` relies on, idempotent."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client as HttpClient

from apps.clients.models import Channel, Client
from apps.message_templates.models import MessageTemplate
from apps.sandbox.models import SandboxAccount, SandboxCampaign, SandboxListener

pytestmark = pytest.mark.django_db


def test_bootstrap_twice_gives_one_account_client_channels_and_campaign_with_the_same_key(
    capsys: Any,
) -> None:
    call_command("sandbox_bootstrap", "--public-base-url=http://127.0.0.1:8000/")
    first_out = capsys.readouterr().out
    key = SandboxAccount.objects.get().api_key

    call_command("sandbox_bootstrap", "--public-base-url=http://127.0.0.1:8000")
    second_out = capsys.readouterr().out

    account = SandboxAccount.objects.get()
    assert (account.name, account.api_key) == ("local", key)
    client = Client.objects.get()
    assert (client.slug, client.optimove_base_url, client.optimove_api_key) == (
        "demo",
        "http://127.0.0.1:8000",
        key,
    )
    assert list(
        Channel.objects.order_by("optimove_channel_id").values_list(
            "optimove_channel_id", "kind", "provider", "address_attribute", "is_realtime"
        )
    ) == [
        (504, "email", "console", "Email", False),
        (505, "sms", "console", "Phone", False),
        (510, "webhook", "console", "WebhookURL", False),
        (520, "sms", "console", "Phone", True),
    ]
    campaign, realtime_campaign = SandboxCampaign.objects.order_by("campaign_id")
    assert (realtime_campaign.campaign_id, realtime_campaign.channel_id, realtime_campaign.size) == (
        2001,
        520,
        100,
    )
    assert (campaign.account, campaign.campaign_id, campaign.channel_id, campaign.size) == (
        account,
        1111,
        504,
        1000,
    )
    assert (campaign.template_ids, campaign.send_offsets_seconds) == ([14, 15], [0, 5, 15])
    assert campaign.attributes == {"Email": "email", "FirstName": "first_name", "Country": "country"}
    templates = MessageTemplate.objects.order_by("channel__optimove_channel_id", "template_id")
    assert [(t.channel.optimove_channel_id, t.template_id) for t in templates] == [
        (504, 14),
        (504, 15),
        (505, 14),
        (505, 15),
        (510, 14),
        (510, 15),
        (520, 14),
        (520, 15),
    ]
    listeners = SandboxListener.objects.filter(account=account).order_by("event_type_id", "channel_id")
    token = client.listener_token
    assert [(x.event_type_id, x.channel_id, x.listener_url) for x in listeners] == [
        (4, None, f"http://127.0.0.1:8000/optimove/listener/demo/client/?token={token}"),
        (5, None, f"http://127.0.0.1:8000/optimove/listener/demo/client/?token={token}"),
        (11, 520, f"http://127.0.0.1:8000/optimove/listener/demo/520/?token={token}"),
        (13, 504, f"http://127.0.0.1:8000/optimove/listener/demo/504/?token={token}"),
        (13, 505, f"http://127.0.0.1:8000/optimove/listener/demo/505/?token={token}"),
        (13, 510, f"http://127.0.0.1:8000/optimove/listener/demo/510/?token={token}"),
    ]
    assert "Created sandbox account 'local'" in first_out
    assert "Created template 14 on channel 504" in first_out
    assert "Sandbox: everything was already in place." in second_out
    assert key not in first_out + second_out


def test_bootstrap_repoints_the_demo_client_when_the_public_url_changes(capsys: Any) -> None:
    call_command("sandbox_bootstrap", "--public-base-url=http://127.0.0.1:8000")
    call_command("sandbox_bootstrap", "--public-base-url=http://127.0.0.1:8123")

    assert Client.objects.get().optimove_base_url == "http://127.0.0.1:8123"
    assert "Updated client 'demo' to use the sandbox on http://127.0.0.1:8123" in capsys.readouterr().out


def test_the_demo_client_key_opens_the_sandbox(client: HttpClient, redis_client: Any) -> None:
    call_command("sandbox_bootstrap", "--public-base-url=http://testserver")
    demo = Client.objects.get(slug="demo")

    response = client.get(
        "/current/customers/GetCustomerSendDetailsByChannel?ChannelID=504&CampaignID=1111&$top=2",
        headers={"X-API-KEY": demo.optimove_api_key},
    )

    assert response.status_code == 200
    assert [row["CustomerID"] for row in response.json()] == ["1111-0", "1111-1"]


def test_bootstrap_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(CommandError, match="public base URL must be an http"):
        call_command("sandbox_bootstrap", "--public-base-url=ftp://x")

    assert not SandboxAccount.objects.exists()
