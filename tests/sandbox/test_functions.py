"""Every function the sandbox serves: Optimove's shapes out, what it stores, and the limits it enforces."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from apps.sandbox.models import (
    SandboxAccount,
    SandboxApp,
    SandboxAttribute,
    SandboxAttributeUpdate,
    SandboxCampaign,
    SandboxInteraction,
    SandboxListener,
    SandboxMetric,
    SandboxPreference,
    SandboxTemplate,
)
from tests.sandbox.conftest import Api

pytestmark = pytest.mark.django_db

LISTENER = "https://platform.example.test/optimove/listener/acme/504?token=abc"


def _campaign(account: SandboxAccount, **overrides: Any) -> SandboxCampaign:
    values: dict[str, Any] = {
        "account": account,
        "campaign_id": 1111,
        "channel_id": 504,
        "size": 10,
        "seed": 7,
        "template_ids": [14, 15],
        "send_offsets_seconds": [0],
        "attributes": {"Email": "email"},
    }
    values.update(overrides)
    return SandboxCampaign.objects.create(**values)


# --- general -----------------------------------------------------------------------------------------


def test_register_listener_stores_it_and_lists_it_in_optimove_shape(
    api: Api, account: SandboxAccount
) -> None:
    response = api.post(
        "/current/general/RegisterEventListener",
        {"EventTypeID": 13, "ListenerURL": LISTENER, "ChannelID": 504},
    )
    assert response.status_code == 200
    assert response.content == b""
    api.post("/current/general/RegisterEventListener", {"EventTypeID": 4, "ListenerURL": LISTENER + "&x=4"})

    listed = api.get("/current/general/GetRegisteredEventListeners")

    assert listed.status_code == 200
    assert listed.json() == [
        {"EventTypeID": 4, "ListenerURL": LISTENER + "&x=4", "ChannelID": None},
        {"EventTypeID": 13, "ListenerURL": LISTENER, "ChannelID": 504},
    ]


def test_registering_again_for_the_same_type_and_channel_replaces_the_url(
    api: Api, account: SandboxAccount
) -> None:
    api.post("/current/general/RegisterEventListener", {"EventTypeID": 5, "ListenerURL": "http://a.test/1"})
    api.post("/current/general/RegisterEventListener", {"EventTypeID": 5, "ListenerURL": "http://a.test/2"})

    assert list(SandboxListener.objects.values_list("event_type_id", "channel_id", "listener_url")) == [
        (5, None, "http://a.test/2")
    ]


def test_registering_type_5_with_a_channel_is_refused(api: Api, account: SandboxAccount) -> None:
    response = api.post(
        "/current/general/RegisterEventListener",
        {"EventTypeID": 5, "ListenerURL": LISTENER, "ChannelID": 504},
    )

    assert response.status_code == 400
    assert response.json() == "ChannelID must be absent for EventTypeID 5"
    assert not SandboxListener.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"EventTypeID": 13, "ChannelID": 504}, "ListenerURL is required"),
        (
            {"EventTypeID": 13, "ListenerURL": "ftp://x.test/", "ChannelID": 504},
            "ListenerURL must be an http or https URL",
        ),
        ({"EventTypeID": "13", "ListenerURL": LISTENER}, "EventTypeID must be an integer"),
        ({"EventTypeID": 99, "ListenerURL": LISTENER}, "EventTypeID 99 is not a known event type"),
        ([], "The request body must be a JSON object"),
    ],
)
def test_register_listener_names_the_bad_parameter(
    api: Api, account: SandboxAccount, body: Any, message: str
) -> None:
    response = api.post("/current/general/RegisterEventListener", body)

    assert response.status_code == 400
    assert response.json() == message
    assert not SandboxListener.objects.exists()


def test_unregister_removes_only_the_listener_for_that_type_and_channel(
    api: Api, account: SandboxAccount
) -> None:
    for channel in (504, 505):
        api.post(
            "/current/general/RegisterEventListener",
            {"EventTypeID": 13, "ListenerURL": LISTENER, "ChannelID": channel},
        )

    response = api.post("/current/general/UnregisterEventListener", {"EventTypeID": 13, "ChannelID": 504})

    assert response.status_code == 200
    assert response.content == b""
    assert list(SandboxListener.objects.values_list("event_type_id", "channel_id")) == [(13, 505)]


def test_field_names_are_read_case_insensitively(api: Api, account: SandboxAccount) -> None:
    response = api.post(
        "/current/general/RegisterEventListener",
        {"eventTypeId": 1, "listenerUrl": LISTENER, "channelID": 504},
    )

    assert response.status_code == 200
    assert SandboxListener.objects.get().channel_id == 504


def test_a_body_without_content_type_is_still_parsed(client: Any, account: SandboxAccount) -> None:
    body = json.dumps({"EventTypeID": 13, "ListenerURL": LISTENER, "ChannelID": 504}).encode()
    response = client.generic(
        "POST",
        "/current/general/RegisterEventListener",
        body,
        content_type="",
        headers={"X-API-KEY": "key-acme"},
    )

    assert response.status_code == 200
    assert SandboxListener.objects.count() == 1


def test_a_body_that_is_not_json_is_a_400(api: Api, account: SandboxAccount) -> None:
    response = api.client.post(
        "/current/general/RegisterEventListener",
        b"{nope",
        content_type="application/json",
        headers=api.headers,
    )

    assert response.status_code == 400
    assert response.json() == "The request body is not valid JSON"


# --- integrations: templates and apps -------------------------------------------------------------------


def test_templates_are_added_renamed_listed_and_deleted(api: Api, account: SandboxAccount) -> None:
    added = api.post(
        "/current/integrations/AddChannelTemplates",
        [{"TemplateID": 15, "TemplateName": "Reminder"}, {"TemplateID": 14, "TemplateName": "Welcome"}],
        ChannelID=504,
    )
    api.post(
        "/current/integrations/AddChannelTemplates",
        [{"TemplateID": 14, "TemplateName": "Hello"}],
        ChannelID=504,
    )
    api.post(
        "/current/integrations/AddChannelTemplates", [{"TemplateID": 1, "TemplateName": "SMS"}], ChannelID=505
    )

    assert added.status_code == 200
    assert added.content == b""
    listed = api.get("/current/integrations/GetChannelTemplates", ChannelID=504)
    assert listed.json() == [
        {"TemplateID": 14, "TemplateName": "Hello"},
        {"TemplateID": 15, "TemplateName": "Reminder"},
    ]

    deleted = api.post("/current/integrations/DeleteChannelTemplates", [{"ChannelID": 504, "TemplateID": 15}])

    assert deleted.status_code == 200
    assert list(SandboxTemplate.objects.values_list("channel_id", "template_id", "template_name")) == [
        (504, 14, "Hello"),
        (505, 1, "SMS"),
    ]


def test_add_templates_without_channel_id_is_a_400_naming_it(api: Api, account: SandboxAccount) -> None:
    response = api.post("/current/integrations/AddChannelTemplates", [{"TemplateID": 1, "TemplateName": "A"}])

    assert response.status_code == 400
    assert response.json() == "ChannelID is required"
    assert not SandboxTemplate.objects.exists()


def test_get_templates_without_channel_id_is_a_400_naming_it(api: Api, account: SandboxAccount) -> None:
    response = api.get("/current/integrations/GetChannelTemplates")

    assert response.status_code == 400
    assert response.json() == "ChannelID is required"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"TemplateID": 1, "TemplateName": ""}], "item 0: TemplateName is required"),
        ([{"TemplateID": 1, "TemplateName": "   "}], "item 0: TemplateName must be a non-empty string"),
        ([{"TemplateID": 1, "TemplateName": "A"}, {"TemplateName": "B"}], "item 1: TemplateID is required"),
        ([{"TemplateID": 1.5, "TemplateName": "A"}], "item 0: TemplateID must be an integer"),
        ([], "The request body must not be an empty array"),
    ],
)
def test_bad_templates_are_refused_and_none_stored(
    api: Api, account: SandboxAccount, items: list[Any], message: str
) -> None:
    response = api.post("/current/integrations/AddChannelTemplates", items, ChannelID=504)

    assert response.status_code == 400
    assert response.json() == message
    assert not SandboxTemplate.objects.exists()


def test_101_templates_in_one_call_are_refused(api: Api, account: SandboxAccount) -> None:
    items = [{"TemplateID": i, "TemplateName": f"T{i}"} for i in range(101)]

    response = api.post("/current/integrations/AddChannelTemplates", items, ChannelID=504)

    assert response.status_code == 400
    assert response.json() == "The request body has 101 items; at most 100 are allowed"
    assert not SandboxTemplate.objects.exists()
    assert (
        api.post("/current/integrations/AddChannelTemplates", items[:100], ChannelID=504).status_code == 200
    )
    assert SandboxTemplate.objects.count() == 100


def test_101_template_deletions_in_one_call_are_refused(api: Api, account: SandboxAccount) -> None:
    api.post(
        "/current/integrations/AddChannelTemplates", [{"TemplateID": 1, "TemplateName": "A"}], ChannelID=504
    )

    response = api.post(
        "/current/integrations/DeleteChannelTemplates", [{"ChannelID": 504, "TemplateID": 1}] * 101
    )

    assert response.status_code == 400
    assert SandboxTemplate.objects.count() == 1


def test_apps_are_added_and_deleted_per_channel(api: Api, account: SandboxAccount) -> None:
    added = api.post(
        "/current/integrations/AddChannelApps",
        [
            {"AppID": "com.acme.ios", "AppName": "Acme iOS"},
            {"AppID": "com.acme.android", "AppName": "Acme Android"},
        ],
        ChannelID=506,
    )
    deleted = api.post(
        "/current/integrations/DeleteChannelApps", [{"ChannelID": 506, "AppID": "com.acme.ios"}]
    )

    assert (added.status_code, added.content, deleted.status_code) == (200, b"", 200)
    assert list(SandboxApp.objects.values_list("channel_id", "app_id", "app_name")) == [
        (506, "com.acme.android", "Acme Android")
    ]


def test_101_apps_in_one_call_are_refused(api: Api, account: SandboxAccount) -> None:
    items = [{"AppID": f"app{i}", "AppName": "A"} for i in range(101)]

    response = api.post("/current/integrations/AddChannelApps", items, ChannelID=506)

    assert response.status_code == 400
    assert not SandboxApp.objects.exists()


# --- integrations: reporting and preferences ------------------------------------------------------------


def _metric(metric_id: int, value: int) -> dict[str, int]:
    return {
        "ChannelID": 504,
        "CampaignID": 1111,
        "TemplateID": 14,
        "MetricID": metric_id,
        "MetricValue": value,
    }


def test_metrics_keep_the_latest_total_per_campaign_template_and_metric(
    api: Api, account: SandboxAccount
) -> None:
    first = api.post("/current/integrations/UpdateCampaignMetrics", [_metric(0, 925), _metric(1, 809)])
    second = api.post("/current/integrations/UpdateCampaignMetrics", [_metric(0, 1000)])

    assert (first.status_code, first.content, second.status_code) == (200, b"", 200)
    assert sorted(SandboxMetric.objects.values_list("metric_id", "metric_value")) == [(0, 1000), (1, 809)]


def test_101_metrics_in_one_call_are_refused(api: Api, account: SandboxAccount) -> None:
    response = api.post("/current/integrations/UpdateCampaignMetrics", [_metric(0, i) for i in range(101)])

    assert response.status_code == 400
    assert response.json() == "The request body has 101 items; at most 100 are allowed"
    assert not SandboxMetric.objects.exists()


def test_a_metric_without_value_is_refused_naming_it(api: Api, account: SandboxAccount) -> None:
    bad = _metric(0, 1)
    del bad["MetricValue"]

    response = api.post("/current/integrations/UpdateCampaignMetrics", [_metric(1, 5), bad])

    assert response.status_code == 400
    assert response.json() == "item 1: MetricValue is required"
    assert not SandboxMetric.objects.exists()


def _interactions(customer_ids: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "CampaignID": 1111,
        "ChannelID": 504,
        "InteractionDate": "2026-03-03",
        "TemplateID": 14,
        "EventID": 2,
        "RecipientGroupID": 1,
        "CustomerIDs": customer_ids,
        **extra,
    }


def test_every_interactions_call_is_kept_with_its_customers(api: Api, account: SandboxAccount) -> None:
    first = api.post("/current/integrations/UpdateCampaignInteractions", _interactions(["96134", "13482"]))
    api.post(
        "/current/integrations/UpdateCampaignInteractions", _interactions(["96134"], AppID="com.acme.ios")
    )

    assert (first.status_code, first.content) == (200, b"")
    rows = list(
        SandboxInteraction.objects.order_by("id").values_list(
            "campaign_id",
            "channel_id",
            "interaction_date",
            "template_id",
            "event_id",
            "recipient_group_id",
            "app_id",
            "customer_ids",
        )
    )
    assert rows == [
        (1111, 504, date(2026, 3, 3), 14, 2, 1, "", ["96134", "13482"]),
        (1111, 504, date(2026, 3, 3), 14, 2, 1, "com.acme.ios", ["96134"]),
    ]


def test_10001_interaction_customers_are_refused(api: Api, account: SandboxAccount) -> None:
    response = api.post(
        "/current/integrations/UpdateCampaignInteractions", _interactions([str(i) for i in range(10_001)])
    )

    assert response.status_code == 400
    assert response.json() == "CustomerIDs has 10001 items; at most 10000 are allowed"
    assert not SandboxInteraction.objects.exists()
    ok = api.post(
        "/current/integrations/UpdateCampaignInteractions", _interactions([str(i) for i in range(10_000)])
    )
    assert ok.status_code == 200
    assert len(SandboxInteraction.objects.get().customer_ids) == 10_000


def test_an_interaction_date_not_in_iso_form_is_refused(api: Api, account: SandboxAccount) -> None:
    response = api.post(
        "/current/integrations/UpdateCampaignInteractions", _interactions(["1"], InteractionDate="03/03/2026")
    )

    assert response.status_code == 400
    assert response.json() == "InteractionDate must be a date as YYYY-MM-DD, got '03/03/2026'"


def test_every_preference_call_is_kept(api: Api, account: SandboxAccount) -> None:
    body = {"ChannelID": 504, "CustomerIDs": ["1", "2"], "CommunicationMode": 0}

    response = api.post("/current/integrations/SetCustomerChannelPreference", body)
    api.post(
        "/current/integrations/SetCustomerChannelPreference", {**body, "CommunicationMode": 1, "AppID": "a"}
    )

    assert (response.status_code, response.content) == (200, b"")
    assert list(
        SandboxPreference.objects.order_by("id").values_list(
            "channel_id", "communication_mode", "app_id", "customer_ids"
        )
    ) == [(504, 0, "", ["1", "2"]), (504, 1, "a", ["1", "2"])]


def test_50001_preference_customers_are_refused(api: Api, account: SandboxAccount) -> None:
    ids = [str(i) for i in range(50_001)]

    response = api.post(
        "/current/integrations/SetCustomerChannelPreference",
        {"ChannelID": 504, "CustomerIDs": ids, "CommunicationMode": 0},
    )

    assert response.status_code == 400
    assert response.json() == "CustomerIDs has 50001 items; at most 50000 are allowed"
    assert not SandboxPreference.objects.exists()


def test_50000_long_customer_ids_fit_in_one_call_beyond_djangos_upload_cap(
    api: Api, account: SandboxAccount, settings: Any
) -> None:
    ids = [f"customer-{i:06d}-0123456789abcdef0123456789abcdef-0123" for i in range(50_000)]
    body = {"ChannelID": 504, "CustomerIDs": ids, "CommunicationMode": 0}
    assert len(json.dumps(body)) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = api.post("/current/integrations/SetCustomerChannelPreference", body)

    assert response.status_code == 200
    assert SandboxPreference.objects.get().customer_ids == ids


# --- customers: attributes ------------------------------------------------------------------------------


def test_attributes_are_created_once_and_at_most_40(api: Api, account: SandboxAccount) -> None:
    def add(name: str) -> Any:
        return api.post(
            "/Customers/AddCustomerAttribute",
            {"Name": name, "Type": "VARCHAR(10)", "DefaultValue": "", "CallbackURL": "http://cb.test/a"},
        )

    assert add("Tier").status_code == 200
    duplicate = add("tier")
    assert (duplicate.status_code, duplicate.json()) == (
        400,
        "Name: an attribute named 'tier' already exists",
    )
    for i in range(39):
        assert add(f"Attr{i}").status_code == 200
    over = add("OneTooMany")

    assert over.status_code == 400
    assert over.json() == "Name: at most 40 attributes can be created through the API"
    assert SandboxAttribute.objects.count() == 40
    assert SandboxAttribute.objects.get(name="Tier").type == "VARCHAR(10)"


def _update(customers: int, attributes: int = 1) -> dict[str, Any]:
    return {
        "CustomerNewAttributesValuesList": [
            {
                "CustomerID": str(c),
                "Attributes": [{"RealFieldName": f"A{a}", "Value": "x"} for a in range(attributes)],
            }
            for c in range(customers)
        ]
    }


def test_attribute_update_is_recorded_with_unknown_names_as_errors(api: Api, account: SandboxAccount) -> None:
    SandboxAttribute.objects.create(account=account, name="Tier", type="VARCHAR(10)")
    body = {
        "CustomerNewAttributesValuesList": [
            {"CustomerID": "96134", "Attributes": [{"RealFieldName": "tier", "Value": "gold"}]},
            {"CustomerID": "13482", "Attributes": [{"RealFieldName": "Colour", "Value": 3}]},
        ]
    }

    response = api.post("/Customers/UpdateCustomerAttributes", body)

    assert (response.status_code, response.content) == (200, b"")
    update = SandboxAttributeUpdate.objects.get()
    assert update.is_success is False
    assert update.errors == ["CustomerID 13482: unknown attribute 'Colour'"]
    assert update.callback_status == "none"
    assert update.customers == [
        {"CustomerID": "96134", "Attributes": [{"RealFieldName": "tier", "Value": "gold"}]},
        {"CustomerID": "13482", "Attributes": [{"RealFieldName": "Colour", "Value": "3"}]},
    ]


def test_attribute_update_over_the_customer_limit_is_refused(
    api: Api, account: SandboxAccount, settings: Any
) -> None:
    settings.SANDBOX_UPDATE_ATTRIBUTES_LIMIT = 5

    response = api.post("/Customers/UpdateCustomerAttributes", _update(6))

    assert response.status_code == 400
    assert response.json() == "CustomerNewAttributesValuesList has 6 items; at most 5 are allowed"
    assert not SandboxAttributeUpdate.objects.exists()
    assert api.post("/Customers/UpdateCustomerAttributes", _update(5)).status_code == 200


def test_attribute_update_with_11_attributes_for_a_customer_is_refused(
    api: Api, account: SandboxAccount
) -> None:
    response = api.post("/Customers/UpdateCustomerAttributes", _update(2, attributes=11))

    assert response.status_code == 400
    assert (
        response.json()
        == "CustomerNewAttributesValuesList[0]: Attributes has 11 items; at most 10 are allowed"
    )
    assert not SandboxAttributeUpdate.objects.exists()


# --- customers and actions: campaigns -------------------------------------------------------------------


def test_send_details_rows_have_optimove_shape(api: Api, account: SandboxAccount) -> None:
    _campaign(
        account,
        size=2,
        template_ids=[14],
        send_offsets_seconds=[300],
        attributes={"Email": "email", "Country": "const:GB"},
        base_time=datetime(2026, 3, 2, 9, 0, 0, 987654, tzinfo=UTC),
    )

    response = api.get(
        "/current/customers/GetCustomerSendDetailsByChannel",
        ChannelID=504,
        CampaignID=1111,
        CustomerAttributes="Country;Email",
        CustomerAttributesDelimiter=",",
    )

    assert response.status_code == 200
    assert response.json() == [
        {
            "CustomerID": "7-0",
            "TemplateID": 14,
            "ScheduledTime": "2026-03-02 09:05:00",
            "CustomerAttributes": ["GB", "customer0.7@example.test"],
        },
        {
            "CustomerID": "7-1",
            "TemplateID": 14,
            "ScheduledTime": "2026-03-02 09:05:00",
            "CustomerAttributes": ["GB", "customer1.7@example.test"],
        },
    ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"CampaignID": 1111}, "ChannelID is required"),
        ({"ChannelID": 504}, "CampaignID is required"),
        ({"ChannelID": "abc", "CampaignID": 1111}, "ChannelID must be an integer, got 'abc'"),
        (
            {"ChannelID": 504, "CampaignID": 1111, "CustomerAttributesDelimiter": "|"},
            "CustomerAttributesDelimiter must be ',' or ';'",
        ),
        ({"ChannelID": 504, "CampaignID": 1111, "$top": 0}, "$top must be at least 1"),
        ({"ChannelID": 504, "CampaignID": 1111, "$skip": -1}, "$skip must be at least 0"),
    ],
)
def test_send_details_bad_parameters_are_named(
    api: Api, account: SandboxAccount, params: dict[str, Any], message: str
) -> None:
    response = api.get("/current/customers/GetCustomerSendDetailsByChannel", **params)

    assert response.status_code == 400
    assert response.json() == message


def test_send_details_of_an_unknown_campaign_is_an_empty_array(api: Api, account: SandboxAccount) -> None:
    _campaign(account)

    response = api.get("/current/customers/GetCustomerSendDetailsByChannel", ChannelID=505, CampaignID=1111)

    assert (response.status_code, response.json()) == (200, [])


def test_canceled_customers_are_the_first_cancelled_count_customers(
    api: Api, account: SandboxAccount
) -> None:
    _campaign(account, size=10, cancelled_count=2, template_ids=[14])

    response = api.get("/current/customers/GetCanceledCampaignCustomers", CampaignID=1111)

    assert response.status_code == 200
    assert response.json() == [
        {"CustomerID": "7-0", "ActionID": "14", "PromoCode": ""},
        {"CustomerID": "7-1", "ActionID": "14", "PromoCode": ""},
    ]


def test_canceled_customers_without_campaign_id_is_a_400(api: Api, account: SandboxAccount) -> None:
    response = api.get("/current/customers/GetCanceledCampaignCustomers")

    assert (response.status_code, response.json()) == (400, "CampaignID is required")


def test_campaign_details_have_optimove_shape(api: Api, account: SandboxAccount) -> None:
    _campaign(account, notes="Spring", target_group_id=3)
    _campaign(account, channel_id=505)

    response = api.get("/current/actions/GetCampaignDetails", CampaignID=1111)

    assert response.status_code == 200
    assert response.json() == {
        "CampaignID": 1111,
        "TargetGroupID": 3,
        "CampaignType": "Scheduled",
        "Duration": 1,
        "LeadTime": 0,
        "Notes": "Spring",
        "IsMultiChannel": True,
        "IsRecurrence": False,
        "Status": "Executed",
        "Error": "",
    }


def test_campaign_details_of_an_unknown_campaign_is_a_400_naming_it(
    api: Api, account: SandboxAccount
) -> None:
    response = api.get("/current/actions/GetCampaignDetails", CampaignID=42)

    assert (response.status_code, response.json()) == (400, "CampaignID 42 was not found")


def test_data_of_another_account_is_invisible(api: Api, account: SandboxAccount) -> None:
    other = SandboxAccount.objects.create(name="other", api_key="key-other")
    _campaign(other)
    SandboxTemplate.objects.create(account=other, channel_id=504, template_id=1, template_name="Theirs")

    assert api.get("/current/integrations/GetChannelTemplates", ChannelID=504).json() == []
    assert (
        api.get("/current/customers/GetCustomerSendDetailsByChannel", ChannelID=504, CampaignID=1111).json()
        == []
    )
