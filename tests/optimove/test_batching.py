"""Optimove's per-call limits: large inputs are split, every item is sent exactly once, in order."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import responses

from apps.optimove.client import OptimoveClient
from apps.optimove.types import (
    AttributeValue,
    CampaignInteractions,
    CampaignMetric,
    ChannelApp,
    ChannelTemplate,
    CustomerAttributeUpdate,
)
from tests.optimove.conftest import body, query, url


def bodies(mocked: responses.RequestsMock) -> list[Any]:
    return [body(call) for call in mocked.calls]


def test_250_templates_go_as_100_100_50(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.post(url("current/integrations/AddChannelTemplates"), body="")

    api.add_channel_templates(
        channel_id=504, templates=[ChannelTemplate(n, f"Template {n}") for n in range(1, 251)]
    )

    sent = bodies(mocked)
    assert [len(batch) for batch in sent] == [100, 100, 50]
    assert [item["TemplateID"] for batch in sent for item in batch] == list(range(1, 251))
    assert all(query(call) == {"ChannelID": "504"} for call in mocked.calls)


def test_250_template_deletions_go_as_100_100_50(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.post(url("current/integrations/DeleteChannelTemplates"), body="")

    api.delete_channel_templates(channel_id=504, template_ids=list(range(250)))

    sent = bodies(mocked)
    assert [len(batch) for batch in sent] == [100, 100, 50]
    assert [item["TemplateID"] for batch in sent for item in batch] == list(range(250))
    assert {item["ChannelID"] for batch in sent for item in batch} == {504}


def test_apps_add_and_delete_go_100_per_call(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.post(url("current/integrations/AddChannelApps"), body="")
    mocked.post(url("current/integrations/DeleteChannelApps"), body="")
    app_ids = [f"app.{n}" for n in range(201)]

    api.add_channel_apps(channel_id=506, apps=[ChannelApp(app_id, app_id.upper()) for app_id in app_ids])
    api.delete_channel_apps(channel_id=506, app_ids=app_ids)

    sent = bodies(mocked)
    assert [len(batch) for batch in sent] == [100, 100, 1, 100, 100, 1]
    assert [item["AppID"] for batch in sent[:3] for item in batch] == app_ids
    assert [item["AppID"] for batch in sent[3:] for item in batch] == app_ids


def test_250_metrics_go_as_100_100_50(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.post(url("current/integrations/UpdateCampaignMetrics"), body="")
    metrics = [
        CampaignMetric(504, 1111, template_id, metric_id, 10)
        for template_id in range(50)
        for metric_id in range(5)
    ]

    api.update_campaign_metrics(metrics=metrics)

    sent = bodies(mocked)
    assert [len(batch) for batch in sent] == [100, 100, 50]
    assert [(item["TemplateID"], item["MetricID"]) for batch in sent for item in batch] == [
        (metric.template_id, metric.metric_id) for metric in metrics
    ]


def test_25001_interaction_ids_go_in_3_calls_with_the_same_other_fields(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(url("current/integrations/UpdateCampaignInteractions"), body="")
    customer_ids = tuple(f"C{n}" for n in range(25_001))

    api.update_campaign_interactions(
        interactions=CampaignInteractions(
            campaign_id=1111,
            channel_id=504,
            interaction_date=date(2026, 3, 3),
            template_id=14,
            event_id=2,
            customer_ids=customer_ids,
        )
    )

    sent = bodies(mocked)
    assert [len(call["CustomerIDs"]) for call in sent] == [10_000, 10_000, 5_001]
    assert [customer for call in sent for customer in call["CustomerIDs"]] == list(customer_ids)
    for call in sent:
        assert {key: value for key, value in call.items() if key != "CustomerIDs"} == {
            "CampaignID": 1111,
            "ChannelID": 504,
            "InteractionDate": "2026-03-03",
            "TemplateID": 14,
            "EventID": 2,
            "RecipientGroupID": 1,
        }


def test_120000_preferences_go_as_50000_50000_20000(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(url("current/integrations/SetCustomerChannelPreference"), body="")
    customer_ids = [str(n) for n in range(120_000)]

    api.set_customer_channel_preference(channel_id=505, customer_ids=customer_ids, communication_mode=2)

    sent = bodies(mocked)
    assert [len(call["CustomerIDs"]) for call in sent] == [50_000, 50_000, 20_000]
    assert [customer for call in sent for customer in call["CustomerIDs"]] == customer_ids
    assert all(call["ChannelID"] == 505 and call["CommunicationMode"] == 2 for call in sent)
    assert all("AppID" not in call for call in sent)


def _updates(count: int) -> list[CustomerAttributeUpdate]:
    return [CustomerAttributeUpdate(f"C{n}", (AttributeValue("Tier", str(n % 3)),)) for n in range(count)]


def _sent_customers(sent: list[Any]) -> list[str]:
    return [row["CustomerID"] for call in sent for row in call["CustomerNewAttributesValuesList"]]


def test_attribute_updates_default_to_the_batch_size_setting(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(url("customers/UpdateCustomerAttributes"), body="")
    updates = _updates(2_500)

    api.update_customer_attributes(updates=updates, callback_url="https://p.test/cb")

    sent = bodies(mocked)
    assert [len(call["CustomerNewAttributesValuesList"]) for call in sent] == [1_000, 1_000, 500]
    assert _sent_customers(sent) == [update.customer_id for update in updates]
    assert {call["CallbackURL"] for call in sent} == {"https://p.test/cb"}


def test_attribute_updates_follow_a_changed_setting_and_a_custom_size(
    api: OptimoveClient, mocked: responses.RequestsMock, settings: Any
) -> None:
    mocked.post(url("customers/UpdateCustomerAttributes"), body="")
    updates = _updates(25)

    settings.OPTIMOVE_UPDATE_ATTRIBUTES_BATCH_SIZE = 10
    api.update_customer_attributes(updates=updates)
    api.update_customer_attributes(updates=updates, batch_size=7)

    sent = bodies(mocked)
    assert [len(call["CustomerNewAttributesValuesList"]) for call in sent] == [10, 10, 5, 7, 7, 7, 4]
    assert _sent_customers(sent[:3]) == [update.customer_id for update in updates]
    assert _sent_customers(sent[3:]) == [update.customer_id for update in updates]
    assert all("CallbackURL" not in call for call in sent)


def test_a_bad_batch_size_is_refused(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        api.update_customer_attributes(updates=_updates(3), batch_size=0)
    assert len(mocked.calls) == 0


def test_a_bad_id_late_in_a_long_list_sends_nothing(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    """Validation happens before the first batch, so a failure never leaves half the list sent."""
    customer_ids = [str(n) for n in range(60_000)] + [""]
    with pytest.raises(ValueError, match=r"customer_ids\[60000\] is empty"):
        api.set_customer_channel_preference(channel_id=505, customer_ids=customer_ids, communication_mode=2)
    assert len(mocked.calls) == 0
