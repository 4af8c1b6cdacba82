"""Reads that answer the sandbox's GET functions, in Optimove's shapes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from apps.sandbox.generator import CampaignShape, generate_customers
from apps.sandbox.models import SandboxAccount, SandboxCampaign, SandboxListener, SandboxTemplate

OPTIMOVE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def campaign_shape(campaign: SandboxCampaign) -> CampaignShape:
    return CampaignShape(
        seed=campaign.seed,
        size=campaign.size,
        template_ids=[int(t) for t in campaign.template_ids],
        send_offsets_seconds=[int(s) for s in campaign.send_offsets_seconds],
        attributes={str(k): str(v) for k, v in campaign.attributes.items()},
        base_time=campaign.base_time,
    )


def sandbox_listener_list(*, account: SandboxAccount) -> list[dict[str, Any]]:
    return [
        {
            "EventTypeID": listener.event_type_id,
            "ListenerURL": listener.listener_url,
            "ChannelID": listener.channel_id,
        }
        for listener in SandboxListener.objects.filter(account=account).order_by(
            "event_type_id", "channel_id"
        )
    ]


def sandbox_template_list(*, account: SandboxAccount, channel_id: int) -> list[dict[str, Any]]:
    return [
        {"TemplateID": template.template_id, "TemplateName": template.template_name}
        for template in SandboxTemplate.objects.filter(account=account, channel_id=channel_id).order_by(
            "template_id"
        )
    ]


def sandbox_send_details_page(
    *,
    account: SandboxAccount,
    campaign_id: int,
    channel_id: int,
    attribute_names: Sequence[str],
    top: int,
    skip: int,
) -> list[dict[str, Any]]:
    """One page of GetCustomerSendDetailsByChannel; [] for a campaign the account does not have."""
    campaign = SandboxCampaign.objects.filter(
        account=account, campaign_id=campaign_id, channel_id=channel_id
    ).first()
    if campaign is None:
        return []
    # A campaign has only a few distinct send times: format each once, not once per row.
    formatted: dict[datetime, str] = {}

    def scheduled(moment: datetime) -> str:
        text = formatted.get(moment)
        if text is None:
            text = formatted[moment] = moment.astimezone(UTC).strftime(OPTIMOVE_TIME_FORMAT)
        return text

    return [
        {
            "CustomerID": customer.customer_id,
            "TemplateID": customer.template_id,
            "ScheduledTime": scheduled(customer.scheduled_time),
            "CustomerAttributes": list(customer.attribute_values),
        }
        for customer in generate_customers(
            campaign_shape(campaign), skip=skip, top=top, requested_attributes=attribute_names
        )
    ]


def sandbox_canceled_customers(*, account: SandboxAccount, campaign_id: int) -> list[dict[str, Any]]:
    """The first `cancelled_count` customers of the campaign on each of its channels."""
    rows: list[dict[str, Any]] = []
    for campaign in SandboxCampaign.objects.filter(account=account, campaign_id=campaign_id).order_by(
        "channel_id"
    ):
        for customer in generate_customers(
            campaign_shape(campaign), skip=0, top=campaign.cancelled_count, requested_attributes=()
        ):
            rows.append(
                {"CustomerID": customer.customer_id, "ActionID": str(customer.template_id), "PromoCode": ""}
            )
    return rows


def sandbox_campaign_details(*, account: SandboxAccount, campaign_id: int) -> dict[str, Any] | None:
    campaigns = list(
        SandboxCampaign.objects.filter(account=account, campaign_id=campaign_id).order_by("channel_id")
    )
    if not campaigns:
        return None
    campaign = campaigns[0]
    return {
        "CampaignID": campaign.campaign_id,
        "TargetGroupID": campaign.target_group_id,
        "CampaignType": campaign.campaign_type,
        "Duration": campaign.duration,
        "LeadTime": campaign.lead_time,
        "Notes": campaign.notes,
        # The same campaign id on several channels is what a multi-channel campaign looks like here.
        "IsMultiChannel": campaign.is_multi_channel or len(campaigns) > 1,
        "IsRecurrence": campaign.is_recurrence,
        "Status": campaign.status,
        "Error": campaign.error,
    }
