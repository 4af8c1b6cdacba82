"""Real-time triggers (EventTypeID 11) through the listener, with a real database and Redis; the provider
(a webhook) is mocked with `responses`, and the send task runs in-process as the worker would run it."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from django.db import DatabaseError, connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext, override_settings

from apps.campaigns import services, tasks
from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunKind, RunState
from apps.clients.models import Channel, ChannelKind, Client
from apps.clients.services import client_listener_token_regenerate
from apps.message_templates.models import MessageTemplate
from apps.optimove.listeners import listener_url
from apps.optimove.models import Notification
from apps.subscriptions.models import ConsentSource
from apps.subscriptions.services import subscription_opt_out
from tests.tenants import console_email_channel

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "optimove"
HOOK = "https://hooks.example.test/realtime"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())  # type: ignore[no-any-return]


@pytest.fixture
def acme(db: None, redis_client: Any) -> Client:
    client = Client.objects.create(
        slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net", optimove_api_key="k"
    )
    channel = Channel.objects.create(
        client=client,
        name="Real-time hook",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=505,
        provider="webhook",
        provider_options={"url": HOOK, "concurrency": 1},
        provider_secrets={"signing_secret": "s3cret"},
        is_realtime=True,
    )
    MessageTemplate.objects.create(
        client=client,
        channel=channel,
        template_id=7,
        name="Welcome back",
        payload={
            "greeting": "Hi {{ FirstName }} from {{ Country | default('somewhere') }}",
            "device": "{{ event_device_type | default('') }}",
            "promo": "{{ promo_code | default('none') }}",
        },
    )
    console_email_channel(client, name="Scheduled email")
    return client


def post(http: HttpClient, client: Client, body: Any, *, channel: int = 505) -> Any:
    url = listener_url(client=client, channel_id=channel, public_base_url="http://testserver")
    return http.post(
        url.removeprefix("http://testserver"), data=json.dumps(body), content_type="application/json"
    )


def trigger(customer: str = "A8272", *, at: str = "2026-03-02 10:15:42", **extra: Any) -> dict[str, Any]:
    return {
        "eventTypeID": 11,
        "timeStamp": at,
        "campaignID": 2001,
        "channelID": 505,
        "templateID": 7,
        "customerID": customer,
        "personalization": {"FirstName": "Ada"},
        **extra,
    }


def send_the_queued(message: Message) -> None:
    """What the realtime worker does with the task the listener enqueued."""
    tasks.send_realtime(message.pk)


@responses.activate
def test_a_trigger_sends_one_message_with_the_merged_personalization(
    client: HttpClient, acme: Client, django_capture_on_commit_callbacks: Any, redis_client: Any
) -> None:
    responses.add(responses.POST, HOOK, json={"id": "prov-1"})
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, acme, fixture("notification_11_realtime_camelcase.json"))
    assert response.status_code == 200
    assert response.json()["outcome"] == "message queued"
    # Straight to the realtime queue, not through the dispatcher.
    assert redis_client.llen("realtime") == 1
    assert redis_client.llen("sends") == 0
    message = Message.objects.get()
    assert message.attributes == {
        "event_device_type": "mobile",
        "FirstName": "Ada",
        "Country": "UK",
        "promo_code": "SAVE10,FREESHIP",
    }
    assert (message.run.kind, message.run.state, message.run.campaign_id) == (
        RunKind.REALTIME,
        RunState.SENDING,
        2001,
    )
    send_the_queued(message)
    [call] = responses.calls
    body = json.loads(call.request.body)
    assert body["customer_id"] == "A8272"
    assert body["content"] == {"greeting": "Hi Ada from UK", "device": "mobile", "promo": "SAVE10,FREESHIP"}
    assert call.request.headers["Idempotency-Key"] == message.idempotency_key
    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == (MessageStatus.SENT, "prov-1")
    # The run lives on for the campaign's next triggers.
    assert CampaignRun.objects.get().state == RunState.SENDING


def test_pascal_case_and_a_promo_code_list_are_understood(client: HttpClient, acme: Client) -> None:
    response = post(client, acme, fixture("notification_11_realtime_pascalcase.json"))
    assert response.status_code == 200
    assert Message.objects.get().attributes == {"FirstName": "Ada", "promo_code": "SAVE10"}


def test_personalization_wins_over_an_event_parameter_of_the_same_name(
    client: HttpClient, acme: Client
) -> None:
    body = trigger(FirstName="from-event", amount=12.5, vip=True, tags=["a", "b"], Parameters={"Level": 3})
    post(client, acme, body)
    assert Message.objects.get().attributes == {
        "FirstName": "Ada",
        "amount": "12.5",
        "vip": "true",
        "tags": '["a","b"]',
        "Level": "3",
    }


@responses.activate
def test_the_same_notification_five_times_sends_one_message(
    client: HttpClient, acme: Client, django_capture_on_commit_callbacks: Any
) -> None:
    responses.add(responses.POST, HOOK, json={})
    for _ in range(5):
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, acme, trigger()).status_code == 200
    assert Message.objects.count() == 1
    assert Notification.objects.count() == 5  # each is recorded
    outcomes = list(Notification.objects.order_by("pk").values_list("outcome", flat=True))
    assert outcomes == ["message queued"] + ["repeat: this trigger was received before"] * 4
    message = Message.objects.get()
    # Even if every repeat's task were run, the message goes out once.
    for _ in range(5):
        send_the_queued(message)
    assert len(responses.calls) == 1


@responses.activate
def test_two_triggers_for_the_same_customer_a_second_apart_send_two(client: HttpClient, acme: Client) -> None:
    responses.add(responses.POST, HOOK, json={})
    post(client, acme, trigger(at="2026-03-02 10:15:42"))
    post(client, acme, trigger(at="2026-03-02 10:15:43"))
    messages = list(Message.objects.order_by("pk"))
    assert len(messages) == 2
    assert messages[0].idempotency_key != messages[1].idempotency_key
    assert CampaignRun.objects.count() == 1  # one long-lived run per client, channel and campaign
    for message in messages:
        send_the_queued(message)
    keys = [call.request.headers["Idempotency-Key"] for call in responses.calls]
    assert keys == [m.idempotency_key for m in messages]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**trigger(), "customerID": ""}, "CustomerID is required"),
        ({k: v for k, v in trigger().items() if k != "customerID"}, "CustomerID is required"),
        ({**trigger(), "customerID": "x" * 129}, "CustomerID is longer than 128 characters"),
        ({k: v for k, v in trigger().items() if k != "templateID"}, "TemplateID is required"),
        ({**trigger(), "templateID": "seven"}, "TemplateID must be an integer"),
        ({k: v for k, v in trigger().items() if k != "campaignID"}, "CampaignID is required"),
        ({**trigger(), "timeStamp": "yesterday"}, "TimeStamp must be a date and time like"),
        ({**trigger(), "promoCode": {"a": 1}}, "PromoCode must be a string or a list of strings"),
    ],
)
def test_a_bad_trigger_gets_400_and_sends_nothing(
    client: HttpClient, acme: Client, body: dict[str, Any], error: str, redis_client: Any
) -> None:
    response = post(client, acme, body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    assert (Notification.objects.count(), CampaignRun.objects.count(), Message.objects.count()) == (0, 0, 0)
    assert redis_client.llen("realtime") == 0


def test_a_trigger_and_its_record_are_stored_by_one_statement(client: HttpClient, acme: Client) -> None:
    """At hundreds of triggers a second each round trip to PostgreSQL waits its turn for a core: once the
    campaign's run exists and the listener has read its client, a trigger is one statement."""
    post(client, acme, trigger("first"))  # makes the run; the listener reads and keeps its client
    with CaptureQueriesContext(connection) as queries:
        response = post(client, acme, trigger("second"))
    assert response.json()["outcome"] == "message queued"
    assert len(queries.captured_queries) == 1
    statement = queries.captured_queries[0]["sql"]
    assert "INSERT INTO campaigns_message" in statement
    assert 'INSERT INTO "optimove_notification"' in statement
    stored = Notification.objects.get(body__customerID="second")
    message = Message.objects.get(customer_id="second")
    assert (stored.run_id, stored.acted, stored.outcome) == (message.run_id, True, "message queued")


def test_a_trigger_whose_record_cannot_be_written_stores_no_message(
    client: HttpClient, acme: Client, transactional_db: None, redis_client: Any
) -> None:
    """The message and the notification's record are one statement: neither without the other."""
    post(client, acme, trigger("first"))
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_notification() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no room for notifications'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_notification BEFORE INSERT ON optimove_notification "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_notification()"
        )
    try:
        redis_client.flushdb()
        with pytest.raises(DatabaseError, match="no room for notifications"):
            post(client, acme, trigger("second"))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_refuse_notification ON optimove_notification")
            cursor.execute("DROP FUNCTION test_refuse_notification()")
    assert not Message.objects.filter(customer_id="second").exists()
    assert Notification.objects.count() == 1
    assert redis_client.llen("realtime") == 0
    # Optimove's retry of the failed call is then stored and sent as a first trigger would be.
    assert post(client, acme, trigger("second")).json()["outcome"] == "message queued"


@override_settings(LISTENER_TARGET_CACHE_SECONDS=0.3)
def test_a_regenerated_token_and_a_deactivated_channel_reach_the_listener_within_the_kept_time(
    client: HttpClient, acme: Client
) -> None:
    old_url = listener_url(client=acme, channel_id=505, public_base_url="")
    assert post(client, acme, trigger("c1")).status_code == 200  # the listener keeps acme's target
    client_listener_token_regenerate(client=acme)
    time.sleep(0.35)
    refused = client.post(old_url, data=json.dumps(trigger("c2")), content_type="application/json")
    assert refused.status_code == 403
    assert post(client, acme, trigger("c3")).status_code == 200  # the new token
    Channel.objects.filter(client=acme, optimove_channel_id=505).update(is_active=False)
    time.sleep(0.35)
    assert post(client, acme, trigger("c4")).json()["outcome"] == "not acted on: channel 505 is inactive"
    assert sorted(Message.objects.values_list("customer_id", flat=True)) == ["c1", "c3"]


def test_a_client_made_after_a_call_for_its_slug_is_found_at_once(client: HttpClient, acme: Client) -> None:
    """Only known clients are kept: a 404 is not remembered."""
    body = json.dumps(trigger())
    assert (
        client.post(
            "/optimove/listener/late/505/?token=t", data=body, content_type="application/json"
        ).status_code
        == 404
    )
    late = Client.objects.create(slug="late", name="Late", optimove_base_url="https://api5.optimove.net")
    url = listener_url(client=late, channel_id=505, public_base_url="")
    assert client.post(url, data=body, content_type="application/json").status_code == 200


def test_a_trigger_for_a_scheduled_channel_is_recorded_and_not_acted_on(
    client: HttpClient, acme: Client
) -> None:
    response = post(client, acme, {**trigger(), "channelID": 504}, channel=504)
    assert response.status_code == 200
    assert Notification.objects.get().outcome == "not acted on: channel 504 is not real-time"
    assert Message.objects.count() == 0


def test_a_trigger_without_channel_id_belongs_to_the_urls_channel(client: HttpClient, acme: Client) -> None:
    body = {k: v for k, v in trigger().items() if k != "channelID"}
    assert post(client, acme, body, channel=505).status_code == 200
    assert Message.objects.get().run.channel.optimove_channel_id == 505


def test_a_cancelled_campaign_takes_no_more_triggers(client: HttpClient, acme: Client) -> None:
    post(client, acme, trigger("c1"))
    services.campaign_cancel(client=acme, campaign_id=2001)
    response = post(client, acme, trigger("c2"))
    assert response.json()["acted"] is False
    assert Notification.objects.order_by("-pk").first().outcome == (  # type: ignore[union-attr]
        "not acted on: the campaign was cancelled"
    )
    assert list(Message.objects.values_list("customer_id", "status")) == [("c1", "cancelled")]


@responses.activate
def test_a_paused_campaign_keeps_its_triggers_until_resumed(
    client: HttpClient,
    acme: Client,
    django_capture_on_commit_callbacks: Any,
    redis_client: Any,
    settings: Any,
) -> None:
    responses.add(responses.POST, HOOK, json={})
    post(client, acme, trigger("c1"))
    run = CampaignRun.objects.get()
    Message.objects.all().delete()
    redis_client.flushdb()
    assert services.campaign_run_pause(run=run)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, acme, trigger("c2"))
    assert response.json()["outcome"] == "message stored; the run is paused"
    assert redis_client.llen("realtime") == 0
    assert services.campaign_run_resume(run=run)
    later = datetime.now(UTC) + timedelta(seconds=settings.REALTIME_RESCUE_SECONDS)
    assert services.messages_dispatch(now=later, budget=4) == 1
    assert redis_client.llen("realtime") == 1  # a real-time run's batches ride the realtime queue
    [message_id] = [m.pk for m in Message.objects.filter(status="queued")]
    services.message_batch_send(message_ids=[message_id], sleep=lambda _: None)
    assert Message.objects.get().status == MessageStatus.SENT
    assert len(responses.calls) == 1


@responses.activate
def test_a_lost_trigger_task_is_rescued_by_the_dispatcher_and_sent_once(
    client: HttpClient, acme: Client, settings: Any
) -> None:
    responses.add(responses.POST, HOOK, json={})
    post(client, acme, trigger())  # its task is never run: the worker died with it
    message = Message.objects.get()
    assert services.messages_dispatch(budget=4) == 0  # not yet: the task may still come
    later = datetime.now(UTC) + timedelta(seconds=settings.REALTIME_RESCUE_SECONDS)
    assert services.messages_dispatch(now=later, budget=4) == 1
    services.message_batch_send(message_ids=[message.pk], sleep=lambda _: None)
    send_the_queued(message)  # the lost task turns up after all: it finds the message sent
    assert len(responses.calls) == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.SENT, 1)


def test_consent_is_checked_for_triggers(client: HttpClient, acme: Client) -> None:
    channel = acme.channels.get(optimove_channel_id=505)
    subscription_opt_out(channel=channel, customer_id="A8272", source=ConsentSource.ADMIN)
    post(client, acme, trigger())
    send_the_queued(Message.objects.get())
    message = Message.objects.get()
    assert (message.status, message.error) == (MessageStatus.SKIPPED, "opted out of this channel")


def test_the_address_comes_from_the_trigger_attributes(client: HttpClient, acme: Client) -> None:
    channel = acme.channels.get(optimove_channel_id=505)
    channel.kind, channel.provider, channel.provider_options, channel.provider_secrets = (
        ChannelKind.EMAIL,
        "console",
        {},
        {},
    )
    channel.address_attribute = "Email"
    channel.save()
    MessageTemplate.objects.filter(channel=channel).update(payload=None, subject="Hi", text_body="Hello")
    post(client, acme, trigger("with", personalization={"FirstName": "Ada", "Email": "ada@example.com"}))
    post(client, acme, trigger("without"))
    for message in Message.objects.all():
        send_the_queued(message)
    assert dict(Message.objects.values_list("customer_id", "error")) == {
        "with": "",
        "without": "no address in attribute Email",
    }
    assert Message.objects.get(customer_id="with").status == MessageStatus.SENT


@responses.activate
def test_triggers_waiting_together_go_out_in_one_batch_and_the_other_tasks_send_nothing(
    client: HttpClient, acme: Client
) -> None:
    responses.add(responses.POST, HOOK, json={})
    for i in range(3):
        post(client, acme, trigger(f"c{i}"))
    first, *others = Message.objects.order_by("pk")
    outcome = services.realtime_messages_send(message_id=first.pk)
    assert (outcome.claimed, outcome.sent) == (3, 3)
    for message in others:  # their own tasks come later and find them sent
        assert services.realtime_messages_send(message_id=message.pk).claimed == 0
    assert len(responses.calls) == 3
    assert set(Message.objects.values_list("status", flat=True)) == {"sent"}


def test_a_trigger_task_of_a_paused_run_sends_nothing(client: HttpClient, acme: Client) -> None:
    post(client, acme, trigger())
    message = Message.objects.get()
    services.campaign_run_pause(run=message.run)
    assert services.realtime_messages_send(message_id=message.pk).claimed == 0
    assert Message.objects.get().status == MessageStatus.PENDING


def queued_realtime_tasks(redis_client: Any) -> list[list[int]]:
    """The message ids of the `campaigns.send_realtime` tasks waiting on the realtime queue."""
    bodies = [json.loads(raw) for raw in redis_client.lrange("realtime", 0, -1)]
    assert {body["headers"]["task"] for body in bodies} <= {"campaigns.send_realtime"}
    return [json.loads(base64.b64decode(body["body"]))[0] for body in bodies]


def post_ringing(client: HttpClient, acme: Client, capture: Any, customer_id: str) -> None:
    """Posts a trigger and runs what its commit sets off: the run's bell, and a task if it rang."""
    with capture(execute=True):
        post(client, acme, trigger(customer_id))


def assert_the_next_trigger_rings_a_new_task(
    client: HttpClient, acme: Client, redis_client: Any, capture: Any
) -> None:
    post_ringing(client, acme, capture, "next")
    assert queued_realtime_tasks(redis_client) == [[Message.objects.get(customer_id="next").pk]]


@responses.activate
def test_triggers_arriving_while_a_task_waits_ring_no_second_task_and_it_sends_them_all(
    client: HttpClient, acme: Client, redis_client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    responses.add(responses.POST, HOOK, json={})
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(4):
            post(client, acme, trigger(f"c{i}"))
    first = Message.objects.order_by("pk").first()
    assert first is not None
    assert queued_realtime_tasks(redis_client) == [[first.pk]]

    redis_client.delete("realtime")  # the worker takes the task off the queue
    assert tasks.send_realtime(first.pk) is None
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 4
    assert len(responses.calls) == 4

    # The task silenced the bell when it was done: the next trigger rings a new task.
    assert_the_next_trigger_rings_a_new_task(client, acme, redis_client, django_capture_on_commit_callbacks)


@responses.activate
def test_a_task_waits_for_the_triggers_arriving_just_behind_its_own_and_sends_them_in_its_batch(
    client: HttpClient,
    acme: Client,
    redis_client: Any,
    django_capture_on_commit_callbacks: Any,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.REALTIME_GATHER_SECONDS = 0.5
    responses.add(responses.POST, HOOK, json={})
    post_ringing(client, acme, django_capture_on_commit_callbacks, "c1")
    first = Message.objects.get()
    redis_client.delete("realtime")  # the worker takes the task off the queue
    waits: list[float] = []

    def a_trigger_arrives_meanwhile(seconds: float) -> None:
        if not waits:
            post_ringing(client, acme, django_capture_on_commit_callbacks, "c2")
        waits.append(seconds)

    monkeypatch.setattr(services.time, "sleep", a_trigger_arrives_meanwhile)
    outcome = services.realtime_messages_send(message_id=first.pk)
    assert 0 < waits[0] <= 0.5
    assert (outcome.claimed, outcome.sent) == (2, 2)
    assert queued_realtime_tasks(redis_client) == []  # the second trigger found the bell ringing
    assert len(responses.calls) == 2


@responses.activate
def test_triggers_arriving_while_a_task_sends_are_sent_by_it_until_a_wait_brings_none(
    client: HttpClient,
    acme: Client,
    redis_client: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    responses.add(responses.POST, HOOK, json={})
    post_ringing(client, acme, django_capture_on_commit_callbacks, "c0")
    Message.objects.update(send_at=datetime.now(UTC) - timedelta(seconds=2))  # no first wait
    first = Message.objects.get()
    redis_client.delete("realtime")  # the worker takes the task off the queue
    sent_at_each_wait: list[int] = []

    def triggers_keep_arriving(seconds: float) -> None:
        sent_at_each_wait.append(Message.objects.filter(status=MessageStatus.SENT).count())
        if len(sent_at_each_wait) <= 3:  # one more during each of the first three waits, then none
            post_ringing(client, acme, django_capture_on_commit_callbacks, f"c{len(sent_at_each_wait)}")

    monkeypatch.setattr(services.time, "sleep", triggers_keep_arriving)
    outcome = services.realtime_messages_send(message_id=first.pk)
    assert (outcome.claimed, outcome.sent) == (4, 4)
    assert sent_at_each_wait == [1, 2, 3, 4]  # each trigger went out before the next wait
    assert queued_realtime_tasks(redis_client) == []  # they all found the bell ringing
    # The task silenced the bell when a wait brought nothing: the next trigger rings a new task.
    assert_the_next_trigger_rings_a_new_task(client, acme, redis_client, django_capture_on_commit_callbacks)


@responses.activate
def test_a_task_hands_a_busy_run_over_to_a_new_task_after_its_time(
    client: HttpClient,
    acme: Client,
    redis_client: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Triggers that never stop do not keep one task, and so one worker process, forever."""
    responses.add(responses.POST, HOOK, json={})
    monkeypatch.setattr(services, "REALTIME_TASK_SECONDS", 0.3)
    post_ringing(client, acme, django_capture_on_commit_callbacks, "c0")
    first = Message.objects.get()
    redis_client.delete("realtime")
    posted = iter(range(1, 10_000))
    real_sleep = time.sleep

    def a_trigger_during_every_wait(seconds: float) -> None:
        post_ringing(client, acme, django_capture_on_commit_callbacks, f"c{next(posted)}")
        real_sleep(0.05)

    monkeypatch.setattr(services.time, "sleep", a_trigger_during_every_wait)
    outcome = services.realtime_messages_send(message_id=first.pk)
    monkeypatch.undo()
    count = Message.objects.count()
    assert 3 <= count < 30
    assert (outcome.claimed, outcome.sent) == (count, count)  # it took every trigger posted meanwhile
    assert queued_realtime_tasks(redis_client) == []
    assert_the_next_trigger_rings_a_new_task(client, acme, redis_client, django_capture_on_commit_callbacks)


@responses.activate
def test_a_task_that_waited_in_the_queue_longer_than_the_gathering_time_goes_at_once(
    client: HttpClient, acme: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.REALTIME_GATHER_SECONDS = 0.5
    responses.add(responses.POST, HOOK, json={})
    post(client, acme, trigger("c1"))
    Message.objects.update(send_at=datetime.now(UTC) - timedelta(seconds=2))
    sent_at_each_wait: list[int] = []

    def wait(seconds: float) -> None:
        sent_at_each_wait.append(Message.objects.filter(status=MessageStatus.SENT).count())

    monkeypatch.setattr(services.time, "sleep", wait)
    assert services.realtime_messages_send(message_id=Message.objects.get().pk).sent == 1
    assert set(sent_at_each_wait) <= {1}  # it sent before it waited for anything


def test_a_lost_task_holds_later_triggers_only_until_the_bell_expires(
    client: HttpClient,
    acme: Client,
    redis_client: Any,
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    settings.REALTIME_BELL_SECONDS = 0.2
    post_ringing(client, acme, django_capture_on_commit_callbacks, "c1")
    redis_client.delete("realtime")  # the task is lost with its worker; the bell still rings
    post_ringing(client, acme, django_capture_on_commit_callbacks, "c2")
    assert queued_realtime_tasks(redis_client) == []
    time.sleep(0.3)
    post_ringing(client, acme, django_capture_on_commit_callbacks, "c3")
    assert queued_realtime_tasks(redis_client) == [[Message.objects.get(customer_id="c3").pk]]


@responses.activate
def test_a_task_sends_a_backlog_longer_than_one_chunk(
    client: HttpClient, acme: Client, settings: Any
) -> None:
    settings.SEND_CHUNK_SIZE = 2
    responses.add(responses.POST, HOOK, json={})
    for i in range(5):
        post(client, acme, trigger(f"c{i}"))
    first = Message.objects.order_by("pk").first()
    assert first is not None
    outcome = services.realtime_messages_send(message_id=first.pk)
    assert (outcome.claimed, outcome.sent) == (5, 5)
    assert len(responses.calls) == 5


def test_without_redis_for_the_bell_each_trigger_still_gets_its_task(
    client: HttpClient,
    acme: Client,
    redis_client: Any,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import redis

    class NoBell:
        def set(self, *args: Any, **kwargs: Any) -> None:
            raise redis.ConnectionError("bell down")

    monkeypatch.setattr("apps.core.redis.get_redis", lambda: NoBell())
    with django_capture_on_commit_callbacks(execute=True):
        post(client, acme, trigger("c1"))
        post(client, acme, trigger("c2"))
    assert len(queued_realtime_tasks(redis_client)) == 2
