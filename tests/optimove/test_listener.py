"""The listener, driven from the outside with the bodies Optimove sends."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.campaigns.models import (
    CampaignCancellation,
    CampaignHold,
    CampaignRun,
    Message,
    MessageStatus,
    RunState,
)
from apps.clients.models import Client
from apps.optimove.listeners import listener_url
from apps.optimove.models import Notification

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "optimove"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())  # type: ignore[no-any-return]


def post(
    http: HttpClient,
    client: Client,
    body: Any,
    *,
    channel: int | None = 504,
    token: str | None = None,
    raw: bytes | None = None,
) -> Any:
    url = listener_url(client=client, channel_id=channel).split("://", 1)[1].split("/", 1)[1]
    path = "/" + url
    if token is not None:
        path = path.split("?token=")[0] + f"?token={token}"
    data = raw if raw is not None else json.dumps(body)
    return http.post(path, data=data, content_type="application/json")


def snapshot() -> tuple[int, int, int, int, int]:
    return (
        Notification.objects.count(),
        CampaignRun.objects.count(),
        Message.objects.count(),
        CampaignCancellation.objects.count(),
        CampaignHold.objects.count(),
    )


def test_13_starts_one_run_and_records_the_notification(
    client: HttpClient, acme: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(client, acme, fixture("notification_13_campaign_executed_on_channel.json"))
    assert response.status_code == 200
    assert response.json()["acted"] is True
    run = CampaignRun.objects.get()
    assert (run.client, run.channel.optimove_channel_id, run.campaign_id, run.state) == (
        acme,
        504,
        1111,
        "paging",
    )
    assert len(callbacks) == 1  # the first page is enqueued after commit
    notification = Notification.objects.get()
    assert notification.body == fixture("notification_13_campaign_executed_on_channel.json")
    assert notification.run == run


def test_repeated_13_and_a_1_for_the_same_campaign_start_one_run(client: HttpClient, acme: Client) -> None:
    for _ in range(3):
        assert (
            post(client, acme, fixture("notification_13_campaign_executed_on_channel.json")).status_code
            == 200
        )
    # Type 1 carries no ChannelID: it belongs to the channel its URL names.
    response = post(client, acme, fixture("notification_1_campaign_processed.json"), channel=504)
    assert response.status_code == 200
    assert CampaignRun.objects.count() == 1
    assert Notification.objects.count() == 4
    assert Notification.objects.filter(outcome="repeat: the run already exists").count() == 3


def test_field_names_in_any_case(client: HttpClient, acme: Client) -> None:
    response = post(client, acme, {"eventtypeid": 13, "CAMPAIGNID": "77", "channelId": 505})
    assert response.status_code == 200
    run = CampaignRun.objects.get()
    assert (run.campaign_id, run.channel.optimove_channel_id) == (77, 505)


def test_unknown_client_is_404_and_changes_nothing(client: HttpClient, acme: Client) -> None:
    before = snapshot()
    response = client.post(
        "/optimove/listener/nobody/504/?token=x", data="{}", content_type="application/json"
    )
    assert response.status_code == 404
    assert snapshot() == before


@pytest.mark.parametrize("token", ["", "wrong", "x" * 43])
def test_wrong_token_is_403_and_changes_nothing(client: HttpClient, acme: Client, token: str) -> None:
    before = snapshot()
    response = post(client, acme, fixture("notification_13_campaign_executed_on_channel.json"), token=token)
    assert response.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"{}", b"x" * (70 * 1024)])
def test_a_bad_body_of_an_unknown_client_or_with_a_wrong_token_says_so_first(
    client: HttpClient, acme: Client, raw: bytes
) -> None:
    """The body is parsed before the client is read (one query reads both the client and the channel
    it names), but the answer still puts who is calling before what they sent."""
    before = snapshot()
    unknown = client.post("/optimove/listener/nobody/504/?token=x", data=raw, content_type="application/json")
    wrong = client.post(
        f"/optimove/listener/{acme.slug}/504/?token=wrong", data=raw, content_type="application/json"
    )
    assert (unknown.status_code, wrong.status_code) == (404, 403)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "the body must be JSON"),
        (b"[1, 2]", "the body must be a JSON object"),
        (b'{"CampaignID": 1}', "EventTypeID is required"),
        (b'{"EventTypeID": "thirteen", "CampaignID": 1}', "EventTypeID must be an integer"),
        (b'{"EventTypeID": 13}', "CampaignID is required"),
        (b'{"EventTypeID": 13, "CampaignID": {"a": 1}}', "CampaignID must be an integer"),
        (b'{"EventTypeID": 5, "CampaignID": 3}', "ClearanceRequiredBy must be a date and time"),
        (
            b'{"EventTypeID": 5, "CampaignID": 3, "ClearanceRequiredBy": "tomorrow"}',
            "ClearanceRequiredBy must be a date and time",
        ),
        (b"\xff\xfe", "the body must be JSON"),
    ],
)
def test_bad_bodies_are_400_with_a_readable_message_and_change_nothing(
    client: HttpClient, acme: Client, raw: bytes, message: str
) -> None:
    before = snapshot()
    response = post(client, acme, None, raw=raw)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert snapshot() == before


def test_get_is_not_allowed(client: HttpClient, acme: Client) -> None:
    path = "/" + listener_url(client=acme, channel_id=504).split("/", 3)[3]
    assert client.get(path).status_code == 405


@pytest.mark.parametrize("event", [2, 3, 14, 99])
def test_other_event_types_are_recorded_and_not_acted_on(
    client: HttpClient, acme: Client, event: int
) -> None:
    body = (
        fixture("notification_14_file_flow.json") if event == 14 else {"EventTypeID": event, "TimeStamp": "x"}
    )
    response = post(client, acme, body)
    assert response.status_code == 200
    assert response.json()["acted"] is False
    notification = Notification.objects.get()
    assert notification.acted is False
    assert notification.outcome.startswith(f"not acted on: event type {event}")
    assert CampaignRun.objects.count() == 0


@pytest.mark.parametrize("name", ["DecryptionKey", "decryptionKey"])
def test_a_file_flow_notification_is_stored_without_its_decryption_key(
    client: HttpClient, acme: Client, name: str
) -> None:
    """EventTypeID 14 carries the key to the campaign's customer files: a secret, never kept in clear."""
    body = fixture("notification_14_file_flow.json")
    body[name] = body.pop("DecryptionKey")
    assert post(client, acme, body).status_code == 200
    stored = Notification.objects.get().body
    assert stored == {**body, name: "[redacted]"}
    assert "base64-key-here" not in json.dumps(stored)


def test_unknown_channel_is_recorded_and_not_acted_on(client: HttpClient, acme: Client) -> None:
    response = post(client, acme, {"EventTypeID": 13, "CampaignID": 5, "ChannelID": 999})
    assert response.status_code == 200
    assert (
        Notification.objects.get().outcome == "not acted on: the notification names no channel of this client"
    )
    assert CampaignRun.objects.count() == 0


def test_4_cancels_pending_messages_on_every_channel(
    client: HttpClient, acme: Client, django_capture_on_commit_callbacks: Any
) -> None:
    now = datetime.now(UTC)
    runs = []
    for channel in acme.channels.all():
        run = CampaignRun.objects.create(
            client=acme, channel=channel, campaign_id=1111, state=RunState.SENDING, paging_done=True
        )
        runs.append(run)
        for i, status in enumerate([MessageStatus.PENDING, MessageStatus.QUEUED, MessageStatus.SENT]):
            Message.objects.create(
                run=run,
                customer_id=f"c{i}",
                template_id=1,
                idempotency_key=f"{run.pk}-{i}",
                send_at=now,
                due_at=now,
                status=status,
            )
    other = CampaignRun.objects.create(client=acme, channel=runs[0].channel, campaign_id=2222)
    Message.objects.create(
        run=other, customer_id="c9", template_id=1, idempotency_key="o", send_at=now, due_at=now
    )
    with django_capture_on_commit_callbacks():
        response = post(client, acme, fixture("notification_4_campaign_cancelled.json"), channel=None)
    assert response.status_code == 200
    assert Message.objects.filter(run__campaign_id=1111, status="cancelled").count() == 4
    assert Message.objects.filter(run__campaign_id=1111, status="sent").count() == 2
    assert Message.objects.get(run=other).status == "pending"
    assert set(CampaignRun.objects.filter(campaign_id=1111).values_list("state", flat=True)) == {"cancelled"}
    # A 13 arriving after the cancel starts nothing.
    post(client, acme, {"EventTypeID": 13, "CampaignID": 1111, "ChannelID": 504})
    assert CampaignRun.objects.get(campaign_id=1111, channel__optimove_channel_id=504).state == "cancelled"


def test_5_holds_runs_until_clearance(client: HttpClient, acme: Client) -> None:
    response = post(client, acme, fixture("notification_5_conditional_promotion.json"), channel=None)
    assert response.status_code == 200
    runs = CampaignRun.objects.filter(campaign_id=1112)
    assert {r.channel.optimove_channel_id for r in runs} == {504, 505}
    assert {r.state for r in runs} == {"held"}
    assert {r.hold_until for r in runs} == {datetime(2026, 3, 2, 12, 0, tzinfo=UTC)}


def test_the_migration_redacts_decryption_keys_stored_before(acme: Client) -> None:
    import importlib

    from django.apps import apps

    migration = importlib.import_module("apps.optimove.migrations.0003_redact_stored_decryption_keys")
    file_flow = fixture("notification_14_file_flow.json")
    kept = Notification.objects.create(client=acme, event_type_id=14, body=file_flow)
    scheduled = {"EventTypeID": 13, "CampaignID": 1}
    other = Notification.objects.create(client=acme, event_type_id=13, body=scheduled)

    migration.redact(apps, None)

    kept.refresh_from_db()
    assert kept.body == {**file_flow, "DecryptionKey": "[redacted]"}
    other.refresh_from_db()
    assert other.body == scheduled
