"""Playing Optimove: notifications POSTed to the listeners registered with the sandbox (command, admin)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client as HttpClient

from apps.sandbox.models import SandboxAccount, SandboxCampaign, SandboxNotification
from tests.sandbox.conftest import Api, Recorder
from tools.devservers import free_port

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-listener-token"


def _register(api: Api, url: str, event_type_id: int, channel_id: int | None = None) -> None:
    body: dict[str, Any] = {"EventTypeID": event_type_id, "ListenerURL": url}
    if channel_id is not None:
        body["ChannelID"] = channel_id
    assert api.post("/current/general/RegisterEventListener", body).status_code == 200


def _fire(*args: str) -> None:
    call_command("sandbox_fire", "--account=acme", "--campaign-id=1111", *args)


def _stamp(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def _assert_recent(value: str, before: datetime) -> None:
    assert before.replace(microsecond=0) <= _stamp(value) <= datetime.now(UTC)


@pytest.fixture
def campaign(account: SandboxAccount) -> SandboxCampaign:
    return SandboxCampaign.objects.create(
        account=account,
        campaign_id=1111,
        channel_id=504,
        size=100,
        seed=42,
        template_ids=[14, 15],
        send_offsets_seconds=[0, 5, 15],
        attributes={"Email": "email", "FirstName": "first_name"},
    )


def test_fire_13_posts_pascalcase_body_to_the_channels_listener(
    api: Api, account: SandboxAccount, recorder: Recorder, capsys: Any
) -> None:
    _register(api, f"{recorder.url}/listener/504?token={SECRET}", 13, 504)
    _register(api, f"{recorder.url}/listener/505", 13, 505)
    before = datetime.now(UTC)

    _fire("--event-type=13", "--channel-id=504")

    assert [r.path for r in recorder.received] == [f"/listener/504?token={SECRET}"]
    body = recorder.received[0].body
    _assert_recent(body["TimeStamp"], before)
    assert body == {"EventTypeID": 13, "TimeStamp": body["TimeStamp"], "CampaignID": 1111, "ChannelID": 504}
    assert recorder.received[0].headers["Content-Type"] == "application/json"
    notification = SandboxNotification.objects.get()
    assert (notification.event_type_id, notification.status_code, notification.error) == (13, 200, "")
    assert notification.body == body
    assert notification.display_url == f"{recorder.url}/listener/504?token=[redacted]"
    out = capsys.readouterr().out
    assert f"event 13 → {recorder.url}/listener/504?token=[redacted]: 200 in" in out
    assert SECRET not in out


def test_fire_1_posts_a_body_without_channel(api: Api, account: SandboxAccount, recorder: Recorder) -> None:
    _register(api, f"{recorder.url}/one", 1, 504)

    _fire("--event-type=1", "--channel-id=504")

    body = recorder.received[0].body
    assert body == {"EventTypeID": 1, "TimeStamp": body["TimeStamp"], "CampaignID": 1111}


def test_fire_4_goes_to_the_listener_registered_without_channel(
    api: Api, account: SandboxAccount, recorder: Recorder
) -> None:
    _register(api, f"{recorder.url}/cancel", 4)

    _fire("--event-type=4")

    assert [r.path for r in recorder.received] == ["/cancel"]
    body = recorder.received[0].body
    assert body == {"EventTypeID": 4, "TimeStamp": body["TimeStamp"], "CampaignID": 1111}


def test_fire_5_carries_clearance_required_by(api: Api, account: SandboxAccount, recorder: Recorder) -> None:
    _register(api, f"{recorder.url}/hold", 5)

    _fire("--event-type=5", "--clearance-in=90")

    body = recorder.received[0].body
    assert set(body) == {"EventTypeID", "TimeStamp", "CampaignID", "ClearanceRequiredBy"}
    assert (body["EventTypeID"], body["CampaignID"]) == (5, 1111)
    assert _stamp(body["ClearanceRequiredBy"]) - _stamp(body["TimeStamp"]) == timedelta(seconds=90)


def test_fire_11_posts_camelcase_body_with_the_given_customer(
    api: Api, account: SandboxAccount, recorder: Recorder
) -> None:
    _register(api, f"{recorder.url}/rt", 11, 505)

    _fire(
        "--event-type=11",
        "--channel-id=505",
        "--customer-id=A8272",
        "--template-id=7",
        "--promo-code=SAVE10",
        '--personalization={"FirstName": "Ada"}',
    )

    body = recorder.received[0].body
    assert body == {
        "eventTypeID": 11,
        "timeStamp": body["timeStamp"],
        "campaignID": 1111,
        "channelID": 505,
        "templateID": 7,
        "customerID": "A8272",
        "promoCode": "SAVE10",
        "personalization": {"FirstName": "Ada"},
    }
    assert SandboxNotification.objects.get().event_type_id == 11


def test_fire_11_without_customer_takes_the_campaigns_first_customer(
    api: Api, account: SandboxAccount, campaign: SandboxCampaign, recorder: Recorder
) -> None:
    _register(api, f"{recorder.url}/rt", 11, 504)
    first = api.get(
        "/current/customers/GetCustomerSendDetailsByChannel",
        ChannelID=504,
        CampaignID=1111,
        CustomerAttributes="Email;FirstName",
        **{"$top": 1},
    ).json()[0]

    _fire("--event-type=11", "--channel-id=504")

    body = recorder.received[0].body
    assert (body["customerID"], body["templateID"], body["promoCode"]) == ("42-0", first["TemplateID"], "")
    assert body["personalization"] == {
        "Email": first["CustomerAttributes"][0],
        "FirstName": first["CustomerAttributes"][1],
    }


def test_fire_without_a_registered_listener_fails_with_a_message(account: SandboxAccount) -> None:
    with pytest.raises(CommandError) as raised:
        _fire("--event-type=13", "--channel-id=504")

    assert str(raised.value) == (
        "No listener is registered with the sandbox for account 'acme', event type 13, channel 504. "
        "Register one with RegisterEventListener first."
    )
    assert not SandboxNotification.objects.exists()


def test_fire_13_without_channel_is_refused(account: SandboxAccount) -> None:
    with pytest.raises(CommandError, match="a channel id is required for event type 13"):
        _fire("--event-type=13")


def test_an_unreachable_listener_is_recorded_without_its_token(api: Api, account: SandboxAccount) -> None:
    _register(api, f"http://127.0.0.1:{free_port()}/listener?token={SECRET}", 13, 504)

    with pytest.raises(CommandError, match="No listener accepted the notification"):
        _fire("--event-type=13", "--channel-id=504")

    notification = SandboxNotification.objects.get()
    assert notification.status_code is None
    assert notification.error.startswith("ConnectionError: ")
    assert SECRET not in notification.error


# --- the admin button -----------------------------------------------------------------------------------


def test_admin_action_fires_13_and_shows_the_outcome(
    api: Api, admin_client: HttpClient, campaign: SandboxCampaign, recorder: Recorder
) -> None:
    _register(api, f"{recorder.url}/listener?token={SECRET}", 13, 504)

    response = admin_client.post(
        "/admin/sandbox/sandboxcampaign/",
        {"action": "fire_13", "_selected_action": [campaign.pk]},
        follow=True,
    )

    assert response.status_code == 200
    body = recorder.received[0].body
    assert body == {"EventTypeID": 13, "TimeStamp": body["TimeStamp"], "CampaignID": 1111, "ChannelID": 504}
    page = response.content.decode()
    assert f"Campaign 1111: fired event 13 to {recorder.url}/listener?token=[redacted]: 200 in" in page
    assert SECRET not in page


def test_admin_action_without_listener_shows_an_error(
    admin_client: HttpClient, campaign: SandboxCampaign
) -> None:
    response = admin_client.post(
        "/admin/sandbox/sandboxcampaign/",
        {"action": "fire_13", "_selected_action": [campaign.pk]},
        follow=True,
    )

    assert (
        "Campaign 1111: No listener is registered with the sandbox for account" in response.content.decode()
    )
    assert not SandboxNotification.objects.exists()


def test_admin_fire_form_fires_the_chosen_event_type(
    api: Api, admin_client: HttpClient, campaign: SandboxCampaign, recorder: Recorder
) -> None:
    _register(api, f"{recorder.url}/hold", 5)
    change_page = admin_client.get(f"/admin/sandbox/sandboxcampaign/{campaign.pk}/change/")
    assert f"/admin/sandbox/sandboxcampaign/{campaign.pk}/fire/" in change_page.content.decode()
    assert admin_client.get(f"/admin/sandbox/sandboxcampaign/{campaign.pk}/fire/").status_code == 200

    response = admin_client.post(
        f"/admin/sandbox/sandboxcampaign/{campaign.pk}/fire/",
        {"event_type_id": "5", "clearance_in_seconds": "30"},
        follow=True,
    )

    body = recorder.received[0].body
    assert body["EventTypeID"] == 5
    assert _stamp(body["ClearanceRequiredBy"]) - _stamp(body["TimeStamp"]) == timedelta(seconds=30)
    assert "fired event 5 to" in response.content.decode()


def test_sandbox_admin_pages_render_without_listener_tokens(
    api: Api, admin_client: HttpClient, campaign: SandboxCampaign, recorder: Recorder
) -> None:
    _register(api, f"{recorder.url}/listener?token={SECRET}", 13, 504)
    _fire("--event-type=13", "--channel-id=504")
    notification = SandboxNotification.objects.get()

    for path in (
        "/admin/sandbox/sandboxlistener/",
        "/admin/sandbox/sandboxnotification/",
        f"/admin/sandbox/sandboxnotification/{notification.pk}/change/",
        "/admin/sandbox/sandboxcall/",
        "/admin/sandbox/sandboxaccount/",
        "/admin/sandbox/sandboxcampaign/",
    ):
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert SECRET not in response.content.decode(), path
