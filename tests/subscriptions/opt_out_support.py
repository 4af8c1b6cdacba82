"""Shared pieces of the opt-out source tests: one customer reachable on two channels of one client,
messages sent through the real send path, and the check every source must pass: the next send of the
opted-out channel is skipped while the other channel still sends."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from apps.campaigns import services
from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunState
from apps.clients.models import Channel
from apps.message_templates.models import MessageTemplate
from apps.subscriptions.models import Subscription, SubscriptionChange

TEMPLATE_ID = 14
CUSTOMER = "cust-1"
EMAIL_ADDRESS = "jane@mail.example"
PHONE = "+15551230001"
# What Optimove hands over for the customer: both addresses, whichever channel the message is on.
ATTRIBUTES = {"Email": EMAIL_ADDRESS, "Mobile": PHONE, "FirstName": "Jane"}


def email_template(channel: Channel, **parts: str) -> MessageTemplate:
    defaults = {
        "subject": "Sale for {{ FirstName }}",
        "text_body": "Hi {{ FirstName }}, the sale starts today.",
        "html_body": "<html><body><p>Hi {{ FirstName }}</p></body></html>",
    }
    return MessageTemplate.objects.create(
        client=channel.client,
        channel=channel,
        template_id=TEMPLATE_ID,
        name="Sale",
        **{**defaults, **parts},
    )


def sms_template(channel: Channel) -> MessageTemplate:
    return MessageTemplate.objects.create(
        client=channel.client, channel=channel, template_id=TEMPLATE_ID, name="Sale", text_body="Sale today"
    )


def queued_message(
    channel: Channel,
    *,
    campaign_id: int,
    customer_id: str = CUSTOMER,
    attributes: dict[str, Any] | None = None,
) -> Message:
    run, _ = CampaignRun.objects.get_or_create(
        client=channel.client,
        channel=channel,
        campaign_id=campaign_id,
        defaults={"state": RunState.SENDING, "paging_done": True},
    )
    now = timezone.now()
    return Message.objects.create(
        run=run,
        customer_id=customer_id,
        template_id=TEMPLATE_ID,
        idempotency_key=f"{campaign_id}-{customer_id}",
        send_at=now,
        due_at=now,
        status=MessageStatus.QUEUED,
        attributes=dict(ATTRIBUTES if attributes is None else attributes),
    )


def send(message: Message) -> Message:
    """The send task's work for one message, in-process."""
    services.message_batch_send(message_ids=[message.pk], sleep=lambda _: None)
    message.refresh_from_db()
    return message


def send_new(channel: Channel, *, campaign_id: int, customer_id: str = CUSTOMER) -> Message:
    return send(queued_message(channel, campaign_id=campaign_id, customer_id=customer_id))


def assert_next_send_stopped_on_that_channel_only(
    *, opted_out: Channel, other: Channel, campaign_id: int, customer_id: str = CUSTOMER
) -> None:
    stopped = send_new(opted_out, campaign_id=campaign_id, customer_id=customer_id)
    still = send_new(other, campaign_id=campaign_id, customer_id=customer_id)
    assert (stopped.status, stopped.error) == (MessageStatus.SKIPPED, "opted out of this channel")
    assert (still.status, still.error) == (MessageStatus.SENT, "")


def history(channel: Channel, customer_id: str = CUSTOMER) -> list[tuple[str, str, str]]:
    """The customer's consent history on the channel, oldest first: (status, source, detail)."""
    return list(
        SubscriptionChange.objects.filter(
            subscription__channel=channel, subscription__customer_id=customer_id
        )
        .order_by("created_at", "id")
        .values_list("status", "source", "detail")
    )


def current(channel: Channel, customer_id: str = CUSTOMER) -> tuple[str, str] | None:
    row = (
        Subscription.objects.filter(channel=channel, customer_id=customer_id)
        .values_list("status", "source")
        .first()
    )
    return (row[0], row[1]) if row else None
