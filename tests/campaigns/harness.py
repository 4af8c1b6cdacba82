"""Setting up a client, its channels and templates, and a sandbox campaign, as a person would."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apps.clients.models import Channel, ChannelKind, Client
from apps.message_templates.models import MessageTemplate
from apps.sandbox.generator import CampaignShape, GeneratedCustomer, generate_customers
from apps.sandbox.models import SandboxAccount, SandboxCampaign

ATTRIBUTES = {"Email": "email", "FirstName": "first_name", "Country": "country"}
TEMPLATE_IDS = (14, 15, 16)


def make_client(*, base_url: str, account: SandboxAccount, slug: str = "acme") -> Client:
    return Client.objects.create(
        slug=slug, name=slug.title(), optimove_base_url=base_url, optimove_api_key=account.api_key
    )


def email_channel(client: Client, *, smtp_port: int, channel_id: int = 504) -> Channel:
    channel = Channel.objects.create(
        client=client,
        name="Email",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=channel_id,
        provider="smtp",
        provider_options={"host": "127.0.0.1", "port": smtp_port, "from_email": "news@acme.test"},
        address_attribute="Email",
    )
    for template_id in TEMPLATE_IDS:
        MessageTemplate.objects.create(
            client=client,
            channel=channel,
            template_id=template_id,
            name=f"Email {template_id}",
            subject=f"T{template_id} for {{{{ FirstName }}}}",
            text_body=f"Hello {{{{ FirstName }}}} from {{{{ Country | default('nowhere') }}}} "
            f"({template_id})",
            html_body=f"<p>Hello {{{{ FirstName }}}} ({template_id})</p>",
        )
    return channel


def webhook_channel(client: Client, *, url: str, channel_id: int = 510, secret: str = "s3cret") -> Channel:
    channel = Channel.objects.create(
        client=client,
        name="Webhook",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=channel_id,
        provider="webhook",
        provider_options={"url": url},
        provider_secrets={"signing_secret": secret},
    )
    for template_id in TEMPLATE_IDS:
        MessageTemplate.objects.create(
            client=client,
            channel=channel,
            template_id=template_id,
            name=f"Hook {template_id}",
            payload={
                "greeting": "Hi {{ FirstName }}",
                "country": "{{ Country }}",
                "template": str(template_id),
            },
        )
    return channel


def sandbox_campaign(
    account: SandboxAccount,
    *,
    campaign_id: int,
    channel_id: int,
    size: int,
    seed: int,
    offsets: tuple[int, ...] = (0, 5, 15),
    base_time: datetime | None = None,
) -> SandboxCampaign:
    return SandboxCampaign.objects.create(
        account=account,
        campaign_id=campaign_id,
        channel_id=channel_id,
        size=size,
        seed=seed,
        template_ids=list(TEMPLATE_IDS),
        send_offsets_seconds=list(offsets),
        attributes=ATTRIBUTES,
        # ScheduledTime has whole seconds: start on the next one, so "now" is not already in the past.
        base_time=base_time or datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1),
    )


@dataclass(frozen=True)
class Expected:
    customer_id: str
    template_id: int
    send_at: datetime
    attributes: dict[str, str]


def expected_customers(campaign: SandboxCampaign) -> dict[str, Expected]:
    shape = CampaignShape(
        seed=campaign.seed,
        size=campaign.size,
        template_ids=campaign.template_ids,
        send_offsets_seconds=campaign.send_offsets_seconds,
        attributes=campaign.attributes,
        base_time=campaign.base_time,
    )
    names = list(ATTRIBUTES)
    out: dict[str, Expected] = {}
    customer: GeneratedCustomer
    for customer in generate_customers(shape, skip=0, top=campaign.size, requested_attributes=names):
        # Optimove's ScheduledTime has whole seconds.
        send_at = customer.scheduled_time.replace(microsecond=0)
        out[customer.customer_id] = Expected(
            customer.customer_id,
            customer.template_id,
            send_at,
            dict(zip(names, customer.attribute_values, strict=True)),
        )
    return out


def worker_env(**overrides: Any) -> dict[str, str]:
    env = {
        "DISPATCH_INTERVAL_SECONDS": "1",
        "SWEEP_INTERVAL_SECONDS": "2",
        "SEND_BATCH_SIZE": "100",
        "MESSAGE_RETRY_BASE_SECONDS": "1",
        "MESSAGE_RETRY_MAX_SECONDS": "2",
        "OPTIMOVE_PAGE_SIZE": "1000",
    }
    env.update({k: str(v) for k, v in overrides.items()})
    return env
