"""Campaign audiences from Optimove, translated into campaigns' own terms."""

from __future__ import annotations

from django.db import transaction

from apps.campaigns.audience import AudiencePage, AudienceRow
from apps.campaigns.models import CampaignCancellation, CampaignRun, CancelledCustomer
from apps.optimove.client import optimove_client_for


def optimove_audience_page(run: CampaignRun, skip: int, top: int) -> AudiencePage:
    """One page of GetCustomerSendDetailsByChannel for the run, with the run's attributes."""
    client = optimove_client_for(run.client)
    page = client.get_customer_send_details_page(
        channel_id=run.channel.optimove_channel_id,
        campaign_id=run.campaign_id,
        attributes=list(run.attributes),
        top=top,
        skip=skip,
    )
    return AudiencePage(
        skip=skip,
        rows=tuple(
            AudienceRow(
                customer_id=row.customer_id,
                template_id=row.template_id,
                send_at=row.scheduled_time,
                attributes=dict(row.attributes),
            )
            for row in page.rows
        ),
    )


def optimove_record_cancelled_customers(*, cancellation_id: int) -> int:
    """Stores the customers GetCanceledCampaignCustomers lists (Optimove keeps them for two hours)."""
    cancellation = CampaignCancellation.objects.select_related("client").get(pk=cancellation_id)
    if cancellation.customers_recorded:
        return 0
    customers = optimove_client_for(cancellation.client).get_canceled_campaign_customers(
        campaign_id=cancellation.campaign_id
    )
    with transaction.atomic():
        CancelledCustomer.objects.bulk_create(
            [
                CancelledCustomer(
                    cancellation=cancellation,
                    customer_id=c.customer_id,
                    action_id=c.action_id,
                    promo_code=c.promo_code,
                )
                for c in customers
            ],
            batch_size=5000,
            ignore_conflicts=True,
        )
        CampaignCancellation.objects.filter(pk=cancellation.pk).update(customers_recorded=True, error="")
    return len(customers)
