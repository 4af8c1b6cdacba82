"""Each Optimove function: the exact request we send (method, path, query, body, headers) and the
typed value we hand back."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import responses

from apps.optimove.client import OptimoveClient
from apps.optimove.errors import OptimoveTerminalError
from apps.optimove.types import (
    AttributeValue,
    CampaignDetails,
    CampaignInteractions,
    CampaignMetric,
    CanceledCustomer,
    ChannelApp,
    ChannelTemplate,
    CustomerAttributeUpdate,
    CustomerSendDetail,
    EventListener,
    MetricID,
)
from tests.optimove.conftest import API_KEY, BASE, body, fixture, path_of, query, url

PREFIX = "/partner-prefix"


def only_call(mocked: responses.RequestsMock) -> Any:
    assert len(mocked.calls) == 1
    return mocked.calls[0]


def assert_post(call: Any, path: str) -> None:
    assert call.request.method == "POST"
    assert path_of(call) == f"{PREFIX}/{path}"
    assert call.request.headers["X-API-KEY"] == API_KEY
    assert call.request.headers["Content-Type"] == "application/json"
    assert "Authorization-Token" not in call.request.headers


def assert_get(call: Any, path: str) -> None:
    assert call.request.method == "GET"
    assert path_of(call) == f"{PREFIX}/{path}"
    assert call.request.headers["X-API-KEY"] == API_KEY
    assert call.request.body is None


# general ---------------------------------------------------------------------------------------------


def test_register_event_listener_posts_type_url_and_channel(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(url("current/general/RegisterEventListener"), body="")
    listener = "https://partner.example.test/optimove/listener/acme/tok?channel=504"

    api.register_event_listener(event_type_id=13, listener_url=listener, channel_id=504)

    call = only_call(mocked)
    assert_post(call, "current/general/RegisterEventListener")
    assert query(call) == {}
    assert body(call) == {"EventTypeID": 13, "ListenerURL": listener, "ChannelID": 504}


def test_register_event_listener_without_channel_omits_channel_id(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(url("current/general/RegisterEventListener"), json={"ResponseCode": 200})

    api.register_event_listener(event_type_id=5, listener_url="https://partner.example.test/l/acme/t")

    assert body(only_call(mocked)) == {
        "EventTypeID": 5,
        "ListenerURL": "https://partner.example.test/l/acme/t",
    }


def test_register_event_listener_type_5_with_a_channel_is_refused_before_any_call(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(ValueError, match=r"event type 5 .* without a channel_id"):
        api.register_event_listener(event_type_id=5, listener_url="https://p.test/l", channel_id=504)
    with pytest.raises(ValueError, match="listener_url must be an http"):
        api.register_event_listener(event_type_id=13, listener_url="partner.test/l", channel_id=504)
    assert len(mocked.calls) == 0


def test_unregister_event_listener_posts_type_and_channel(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(url("current/general/UnregisterEventListener"), body="")

    api.unregister_event_listener(event_type_id=13, channel_id=504)

    call = only_call(mocked)
    assert_post(call, "current/general/UnregisterEventListener")
    assert body(call) == {"EventTypeID": 13, "ChannelID": 504}


def test_get_registered_event_listeners_tolerates_key_case_and_missing_channel(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        url("current/general/GetRegisteredEventListeners"), json=fixture("registered_event_listeners.json")
    )

    listeners = api.get_registered_event_listeners()

    assert_get(only_call(mocked), "current/general/GetRegisteredEventListeners")
    assert query(only_call(mocked)) == {}
    assert listeners == [
        EventListener(13, "https://partner.example.test/optimove/listener/acme/TOKEN?channel=504", 504),
        EventListener(4, "https://partner.example.test/optimove/listener/acme/TOKEN", None),
        EventListener(5, "https://partner.example.test/optimove/listener/acme/TOKEN", None),
    ]


# audience --------------------------------------------------------------------------------------------


def test_send_details_page_sends_channel_campaign_attributes_and_paging(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        url("current/customers/GetCustomerSendDetailsByChannel"),
        json=fixture("send_details_page_attributes_list.json"),
    )

    page = api.get_customer_send_details_page(
        channel_id=504, campaign_id=1111, attributes=["Email", "Country"], top=500, skip=1000
    )

    call = only_call(mocked)
    assert_get(call, "current/customers/GetCustomerSendDetailsByChannel")
    assert query(call) == {
        "ChannelID": "504",
        "CampaignID": "1111",
        "CustomerAttributes": "Email;Country",
        "CustomerAttributesDelimiter": ",",
        "$top": "500",
        "$skip": "1000",
    }
    assert page.skip == 1000
    assert page.top == 500
    assert page.next_skip == 1002
    assert page.rows == (
        CustomerSendDetail(
            "96134",
            14,
            datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
            {"Email": "jdavis@example.test", "Country": "US"},
        ),
        CustomerSendDetail(
            "13482",
            15,
            datetime(2026, 3, 2, 11, 30, tzinfo=UTC),
            {"Email": "plsmits@example.test", "Country": "UK"},
        ),
    )


def test_send_details_page_without_attributes_uses_the_page_size_setting(
    api: OptimoveClient, mocked: responses.RequestsMock, settings: Any
) -> None:
    settings.OPTIMOVE_PAGE_SIZE = 1234
    mocked.get(url("current/customers/GetCustomerSendDetailsByChannel"), json=[])

    page = api.get_customer_send_details_page(channel_id=504, campaign_id=1111)

    assert query(only_call(mocked)) == {
        "ChannelID": "504",
        "CampaignID": "1111",
        "$top": "1234",
        "$skip": "0",
    }
    assert page.rows == ()
    assert page.top == 1234


def test_send_details_refuses_attribute_names_that_would_break_the_separators(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    for names, message in [
        (["Email", "Post;Code"], "contains ';' or ','"),
        (["Email", "City,Town"], "contains ';' or ','"),
        (["Email", "Email"], "must not repeat"),
        (["Email", ""], "non-empty"),
        ("Email", "not one string"),
    ]:
        with pytest.raises(ValueError, match=message):
            api.get_customer_send_details_page(channel_id=504, campaign_id=1, attributes=names)
    with pytest.raises(ValueError, match="top must be a positive integer"):
        api.get_customer_send_details_page(channel_id=504, campaign_id=1, top=0)
    with pytest.raises(ValueError, match="skip cannot be negative"):
        api.get_customer_send_details_page(channel_id=504, campaign_id=1, skip=-1)
    assert len(mocked.calls) == 0


def test_get_canceled_campaign_customers(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.get(
        url("current/customers/GetCanceledCampaignCustomers"),
        json=fixture("canceled_campaign_customers.json"),
    )

    customers = api.get_canceled_campaign_customers(campaign_id=1111)

    call = only_call(mocked)
    assert_get(call, "current/customers/GetCanceledCampaignCustomers")
    assert query(call) == {"CampaignID": "1111"}
    assert customers == [CanceledCustomer(customer_id="96134", action_id="12", promo_code="")]


def test_get_campaign_details(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.get(url("current/actions/GetCampaignDetails"), json=fixture("campaign_details.json"))

    details = api.get_campaign_details(campaign_id=1111)

    call = only_call(mocked)
    assert_get(call, "current/actions/GetCampaignDetails")
    assert query(call) == {"CampaignID": "1111"}
    assert details == CampaignDetails(
        campaign_id=1111,
        target_group_id=17,
        campaign_type="Test/Control",
        duration=3,
        lead_time=1,
        notes="Spring campaign",
        is_multi_channel=True,
        is_recurrence=False,
        status="Successful",
        error="",
    )


# templates and apps ----------------------------------------------------------------------------------


def test_add_channel_templates_posts_the_list_with_channel_in_the_query(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(url("current/integrations/AddChannelTemplates"), body="")

    api.add_channel_templates(
        channel_id=504,
        templates=[ChannelTemplate(14, "Spring welcome"), ChannelTemplate(15, "Spring reminder")],
    )

    call = only_call(mocked)
    assert_post(call, "current/integrations/AddChannelTemplates")
    assert query(call) == {"ChannelID": "504"}
    assert body(call) == fixture("channel_templates.json")


def test_add_channel_templates_refuses_bad_templates_before_any_call(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(ValueError, match=r"templates\[1\].template_name must be a non-empty string"):
        api.add_channel_templates(
            channel_id=504, templates=[ChannelTemplate(1, "a"), ChannelTemplate(2, " ")]
        )
    with pytest.raises(ValueError, match=r"templates\[1\]: TemplateID 1 appears more than once"):
        api.add_channel_templates(
            channel_id=504, templates=[ChannelTemplate(1, "a"), ChannelTemplate(1, "b")]
        )
    assert len(mocked.calls) == 0


def test_get_channel_templates_reads_ids_given_as_strings(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        url("current/integrations/GetChannelTemplates"),
        json=[
            {"TemplateID": "14", "TemplateName": "Spring welcome"},
            {"templateId": 15, "templatename": "B"},
        ],
    )

    templates = api.get_channel_templates(channel_id=504)

    call = only_call(mocked)
    assert_get(call, "current/integrations/GetChannelTemplates")
    assert query(call) == {"ChannelID": "504"}
    assert templates == [ChannelTemplate(14, "Spring welcome"), ChannelTemplate(15, "B")]


def test_delete_channel_templates(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.post(url("current/integrations/DeleteChannelTemplates"), body="")

    api.delete_channel_templates(channel_id=504, template_ids=[14, 15])

    call = only_call(mocked)
    assert_post(call, "current/integrations/DeleteChannelTemplates")
    assert query(call) == {}
    assert body(call) == [{"ChannelID": 504, "TemplateID": 14}, {"ChannelID": 504, "TemplateID": 15}]


def test_add_channel_apps(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.post(url("current/integrations/AddChannelApps"), body="")

    api.add_channel_apps(channel_id=506, apps=[ChannelApp("com.acme.ios", "Acme iOS")])

    call = only_call(mocked)
    assert_post(call, "current/integrations/AddChannelApps")
    assert query(call) == {"ChannelID": "506"}
    assert body(call) == [{"AppID": "com.acme.ios", "AppName": "Acme iOS"}]


def test_delete_channel_apps(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.post(url("current/integrations/DeleteChannelApps"), body="")

    api.delete_channel_apps(channel_id=506, app_ids=["com.acme.ios", "com.acme.android"])

    call = only_call(mocked)
    assert_post(call, "current/integrations/DeleteChannelApps")
    assert body(call) == [
        {"ChannelID": 506, "AppID": "com.acme.ios"},
        {"ChannelID": 506, "AppID": "com.acme.android"},
    ]


def test_empty_lists_make_no_call(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    api.add_channel_templates(channel_id=504, templates=[])
    api.delete_channel_templates(channel_id=504, template_ids=[])
    api.add_channel_apps(channel_id=506, apps=[])
    api.delete_channel_apps(channel_id=506, app_ids=[])
    api.update_campaign_metrics(metrics=[])
    api.set_customer_channel_preference(channel_id=504, customer_ids=[], communication_mode=1)
    api.update_customer_attributes(updates=[])
    assert len(mocked.calls) == 0


# reporting -------------------------------------------------------------------------------------------


def test_update_campaign_metrics(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.post(url("current/integrations/UpdateCampaignMetrics"), body="")

    api.update_campaign_metrics(
        metrics=[
            CampaignMetric(504, 1111, 14, MetricID.SENT, 925),
            CampaignMetric(504, 1111, 14, MetricID.DELIVERED, 809),
        ]
    )

    call = only_call(mocked)
    assert_post(call, "current/integrations/UpdateCampaignMetrics")
    assert body(call) == fixture("update_campaign_metrics_body.json")


def test_update_campaign_interactions_sends_the_date_as_yyyy_mm_dd(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(url("current/integrations/UpdateCampaignInteractions"), body="")

    api.update_campaign_interactions(
        interactions=CampaignInteractions(
            campaign_id=1111,
            channel_id=504,
            interaction_date=date(2026, 3, 3),
            template_id=14,
            event_id=2,
            customer_ids=("96134", "13482"),
        )
    )

    call = only_call(mocked)
    assert_post(call, "current/integrations/UpdateCampaignInteractions")
    assert body(call) == fixture("update_campaign_interactions_body.json")


def test_update_campaign_interactions_with_an_app(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(url("current/integrations/UpdateCampaignInteractions"), body="")

    api.update_campaign_interactions(
        interactions=CampaignInteractions(
            campaign_id=1,
            channel_id=506,
            # a datetime late on the 3rd in New York is the 4th in UTC
            interaction_date=datetime.fromisoformat("2026-03-03T22:30:00-05:00"),
            template_id=7,
            event_id=3,
            customer_ids=("A1",),
            recipient_group_id=2,
            app_id="com.acme.ios",
        )
    )

    assert body(only_call(mocked)) == {
        "CampaignID": 1,
        "ChannelID": 506,
        "InteractionDate": "2026-03-04",
        "TemplateID": 7,
        "EventID": 3,
        "RecipientGroupID": 2,
        "CustomerIDs": ["A1"],
        "AppID": "com.acme.ios",
    }


# subscriptions and attributes ------------------------------------------------------------------------


def test_set_customer_channel_preference(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.post(url("current/integrations/SetCustomerChannelPreference"), body="")

    api.set_customer_channel_preference(
        channel_id=506, customer_ids=["96134", "13482"], communication_mode=0, app_id="com.acme.ios"
    )

    call = only_call(mocked)
    assert_post(call, "current/integrations/SetCustomerChannelPreference")
    assert body(call) == {
        "ChannelID": 506,
        "CustomerIDs": ["96134", "13482"],
        "CommunicationMode": 0,
        "AppID": "com.acme.ios",
    }


def test_add_customer_attribute_uses_the_path_without_current(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(url("customers/AddCustomerAttribute"), body="")

    api.add_customer_attribute(
        name="EmailOptIn", type="VARCHAR(10)", default_value="yes", callback_url="https://p.test/cb"
    )

    call = only_call(mocked)
    assert_post(call, "customers/AddCustomerAttribute")
    assert body(call) == {
        "Name": "EmailOptIn",
        "Type": "VARCHAR(10)",
        "DefaultValue": "yes",
        "CallbackURL": "https://p.test/cb",
    }


def test_update_customer_attributes(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    mocked.post(url("customers/UpdateCustomerAttributes"), body="")

    api.update_customer_attributes(
        updates=[
            CustomerAttributeUpdate(
                "96134", (AttributeValue("EmailOptIn", "no"), AttributeValue("SmsOptIn", "yes"))
            )
        ],
        callback_url="https://p.test/cb",
    )

    call = only_call(mocked)
    assert_post(call, "customers/UpdateCustomerAttributes")
    assert body(call) == {
        "CustomerNewAttributesValuesList": [
            {
                "CustomerID": "96134",
                "Attributes": [
                    {"RealFieldName": "EmailOptIn", "Value": "no"},
                    {"RealFieldName": "SmsOptIn", "Value": "yes"},
                ],
            }
        ],
        "CallbackURL": "https://p.test/cb",
    }


def test_update_customer_attributes_refuses_a_customer_without_attributes_and_sends_nothing(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    updates = [CustomerAttributeUpdate("1", (AttributeValue("A", "x"),)), CustomerAttributeUpdate("2", ())]
    with pytest.raises(ValueError, match=r"updates\[1\] has no attributes"):
        api.update_customer_attributes(updates=updates, batch_size=1)
    assert len(mocked.calls) == 0


# answers ---------------------------------------------------------------------------------------------


def test_write_answers_empty_json_or_response_code_are_all_success(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    target = url("current/integrations/DeleteChannelApps")
    mocked.post(target, body="")
    mocked.post(target, json={"ResponseCode": 200})
    mocked.post(target, body="accepted", status=202)
    for _ in range(3):
        api.delete_channel_apps(channel_id=506, app_ids=["x"])
    assert len(mocked.calls) == 3


def test_an_unreadable_read_answer_is_terminal_and_names_the_function(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(url("current/integrations/GetChannelTemplates"), body="<html>gateway</html>")
    mocked.get(url("current/customers/GetCustomerSendDetailsByChannel"), json=[{"CustomerID": "1"}])

    with pytest.raises(
        OptimoveTerminalError, match="GetChannelTemplates answered 200 with a body that is not JSON"
    ):
        api.get_channel_templates(channel_id=504)
    with pytest.raises(
        OptimoveTerminalError,
        match=r"GetCustomerSendDetailsByChannel: unreadable answer .*TemplateID is missing",
    ):
        api.get_customer_send_details_page(channel_id=504, campaign_id=1)
    assert len(mocked.calls) == 2  # neither is retried


def test_base_url_with_prefix_and_trailing_slash_is_joined_without_double_slashes(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(url("current/general/GetRegisteredEventListeners"), json=[])
    api.get_registered_event_listeners()
    assert only_call(mocked).request.url == f"{BASE}/current/general/GetRegisteredEventListeners"


def test_every_call_has_a_timeout(redis_client: Any, mocked: responses.RequestsMock) -> None:
    from apps.optimove.types import Credentials

    api = OptimoveClient(Credentials(base_url=BASE, api_key=API_KEY), redis=redis_client, timeout=7.5)
    mocked.get(url("current/general/GetRegisteredEventListeners"), json=[])
    api.get_registered_event_listeners()
    assert only_call(mocked).request.req_kwargs["timeout"] == 7.5


def test_credentials_without_key_or_password_are_refused(redis_client: Any) -> None:
    from apps.optimove.errors import OptimoveAuthError
    from apps.optimove.types import Credentials

    with pytest.raises(OptimoveAuthError, match="neither an API key nor a user name and password"):
        OptimoveClient(Credentials(base_url=BASE, username="u"), redis=redis_client)
    with pytest.raises(OptimoveTerminalError, match="must start with https:// or http://"):
        OptimoveClient(Credentials(base_url="api5.optimove.net", api_key="k"), redis=redis_client)


def test_logs_carry_no_key_listener_token_or_customer_data(
    api: OptimoveClient, mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    mocked.post(url("current/general/RegisterEventListener"), status=400, body="bad ListenerURL")
    mocked.get(
        url("current/customers/GetCustomerSendDetailsByChannel"),
        json=fixture("send_details_page_attributes_list.json"),
    )
    mocked.post(url("current/integrations/SetCustomerChannelPreference"), body="")

    with caplog.at_level(logging.DEBUG):
        with pytest.raises(OptimoveTerminalError) as caught:
            api.register_event_listener(
                event_type_id=13, listener_url="https://p.test/optimove/listener/acme/LISTENER-SECRET"
            )
        api.get_customer_send_details_page(channel_id=504, campaign_id=1111, attributes=["Email", "Country"])
        api.set_customer_channel_preference(channel_id=504, customer_ids=["96134"], communication_mode=0)

    assert str(caught.value) == "Optimove RegisterEventListener answered 400"
    assert "optimove GetCustomerSendDetailsByChannel 200" in caplog.text
    for secret in (API_KEY, "LISTENER-SECRET", "96134", "13482", "jdavis", "plsmits"):
        assert secret not in caplog.text
