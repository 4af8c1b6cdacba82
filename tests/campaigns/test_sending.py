"""Send batches, retries, the sweeper, holds and fairness, through the services with a real database
and Redis; only the provider (an HTTP webhook receiver) is mocked, with `responses`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from django.db.models import Count

from apps.campaigns import services
from apps.campaigns.audience import AudiencePage, AudienceRow
from apps.campaigns.keys import scheduled_message_key
from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunState
from apps.channels.signatures import webhook_verify
from apps.clients.models import Channel, ChannelKind, Client
from apps.message_templates.models import MessageTemplate
from apps.subscriptions.models import ConsentSource
from apps.subscriptions.services import subscription_opt_out
from tests.messages import messages_add

HOOK = "https://hooks.example.test/deliver"
SECRET = "s3cret"


@pytest.fixture
def channel(db: None, redis_client: Any, settings: Any) -> Channel:
    settings.MESSAGE_RETRY_BASE_SECONDS = 0.01
    settings.MESSAGE_RETRY_MAX_SECONDS = 0.02
    client = Client.objects.create(
        slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net", optimove_api_key="k"
    )
    channel = Channel.objects.create(
        client=client,
        name="Hook",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=510,
        provider="webhook",
        provider_options={"url": HOOK, "concurrency": 1},
        provider_secrets={"signing_secret": SECRET},
    )
    MessageTemplate.objects.create(
        client=client,
        channel=channel,
        template_id=14,
        name="Hello",
        payload={"greeting": "Hi {{ FirstName | default('there') }}"},
    )
    return channel


def make_run(
    channel: Channel,
    customers: int,
    *,
    campaign_id: int = 1111,
    template_id: int = 14,
    send_at: datetime | None = None,
    status: str = MessageStatus.PENDING,
) -> CampaignRun:
    run = CampaignRun.objects.create(
        client=channel.client,
        channel=channel,
        campaign_id=campaign_id,
        state=RunState.SENDING,
        paging_done=True,
    )
    messages_add(
        run,
        customers,
        status=status,
        template_id=template_id,
        at=send_at,
        attributes=lambda i: {"FirstName": f"Name{i}"},
    )
    return run


def release_and_send(run: CampaignRun, *, now: datetime | None = None) -> services.BatchOutcome:
    """What the dispatcher and one send task do for a run, in-process. Given a `now` in the future, the
    send task does not wait for the clock to get there."""
    ids = services._claim_due(run_id=run.pk, now=now or datetime.now(UTC) + timedelta(seconds=1), limit=1000)
    return services.message_batch_send(message_ids=ids, sleep=(lambda _: None) if now else time.sleep)


def statuses(run: CampaignRun) -> dict[str, str]:
    return dict(Message.objects.filter(run=run).values_list("customer_id", "status"))


def hook_answers(*answers: int) -> Callable[[Any], tuple[int, dict[str, str], str]]:
    """Answers in turn; the last one repeats."""
    queue = list(answers)

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        status = queue.pop(0) if len(queue) > 1 else queue[0]
        return status, {}, json.dumps({"ok": status < 300})

    return callback


@responses.activate
def test_a_provider_answering_429_and_5xx_then_200_gets_the_message_sent_once(channel: Channel) -> None:
    responses.add_callback(responses.POST, HOOK, callback=hook_answers(429, 503, 200))
    run = make_run(channel, 1)
    first = release_and_send(run)
    assert (first.sent, first.retried) == (0, 1)
    assert Message.objects.get(run=run).status == MessageStatus.PENDING
    second = release_and_send(run)
    assert (second.sent, second.retried) == (0, 1)
    third = release_and_send(run)
    assert third.sent == 1
    message = Message.objects.get(run=run)
    assert (message.status, message.attempts) == (MessageStatus.SENT, 3)
    assert [h["status"] for h in message.history] == ["retry", "retry", "sent"]
    keys = {call.request.headers["Idempotency-Key"] for call in responses.calls}
    assert keys == {message.idempotency_key}
    assert len(responses.calls) == 3
    # Nothing left to send: a fourth round calls nobody.
    assert release_and_send(run).claimed == 0
    assert len(responses.calls) == 3


@responses.activate
def test_a_400_fails_that_message_only(channel: Channel) -> None:
    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        return (400, {}, "bad customer") if body["customer_id"] == "c1" else (200, {}, "{}")

    responses.add_callback(responses.POST, HOOK, callback=callback)
    run = make_run(channel, 3)
    outcome = release_and_send(run)
    assert (outcome.sent, outcome.failed) == (2, 1)
    assert statuses(run) == {"c0": "sent", "c1": "failed", "c2": "sent"}
    assert Message.objects.get(run=run, customer_id="c1").error == "webhook answered HTTP 400: bad customer"
    assert len(responses.calls) == 3  # the 400 is not retried


@responses.activate
def test_the_webhook_is_signed_and_carries_the_rendered_template(channel: Channel) -> None:
    responses.add(responses.POST, HOOK, json={"id": "prov-1"})
    run = make_run(channel, 1)
    release_and_send(run)
    request = responses.calls[0].request
    body = json.loads(request.body)
    assert body["content"] == {"greeting": "Hi Name0"}
    assert body["metadata"] == {"campaign_id": "1111", "channel_id": "510", "template_id": "14"}
    assert webhook_verify(
        SECRET, request.headers["X-Partner-Timestamp"], request.body, request.headers["X-Partner-Signature"]
    )
    assert Message.objects.get(run=run).provider_message_id == "prov-1"


@responses.activate
def test_retries_are_finite_then_the_message_fails_with_a_reason(channel: Channel, settings: Any) -> None:
    settings.MESSAGE_MAX_ATTEMPTS = 3
    responses.add(responses.POST, HOOK, status=502)
    run = make_run(channel, 1)
    for _ in range(3):
        release_and_send(run)
    message = Message.objects.get(run=run)
    assert message.status == MessageStatus.FAILED
    assert message.error == "gave up after 3 attempts: webhook answered HTTP 502"
    assert len(responses.calls) == 3


@responses.activate
def test_an_opted_out_customer_is_skipped_on_that_channel_only(channel: Channel) -> None:
    responses.add(responses.POST, HOOK, json={})
    other = Channel.objects.create(
        client=channel.client,
        name="Hook 2",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=511,
        provider="webhook",
        provider_options={"url": HOOK},
        provider_secrets={"signing_secret": SECRET},
    )
    MessageTemplate.objects.create(
        client=channel.client, channel=other, template_id=14, name="Hello", payload={"greeting": "Hi"}
    )
    subscription_opt_out(channel=channel, customer_id="c1", source=ConsentSource.ADMIN)
    run = make_run(channel, 3)
    other_run = make_run(other, 3, campaign_id=2222)
    release_and_send(run)
    release_and_send(other_run)
    assert statuses(run) == {"c0": "sent", "c1": "skipped", "c2": "sent"}
    assert Message.objects.get(run=run, customer_id="c1").error == "opted out of this channel"
    assert statuses(other_run) == {"c0": "sent", "c1": "sent", "c2": "sent"}
    assert len(responses.calls) == 5


@responses.activate
def test_a_template_looping_or_printing_gigabytes_fails_only_its_message(channel: Channel) -> None:
    responses.add(responses.POST, HOOK, json={})
    MessageTemplate.objects.create(
        client=channel.client,
        channel=channel,
        template_id=66,
        name="Loop",
        payload={"x": "{% for i in range(10**9) %}x{% endfor %}"},
    )
    MessageTemplate.objects.create(
        client=channel.client,
        channel=channel,
        template_id=67,
        name="Huge",
        payload={"x": "{{ 'x' * 10**10 }}"},
    )
    run = make_run(channel, 2)
    Message.objects.filter(run=run, customer_id="c0").update(template_id=66)
    loop_run_extra = Message.objects.create(
        run=run,
        customer_id="c9",
        template_id=67,
        idempotency_key="k9",
        send_at=datetime.now(UTC),
        due_at=datetime.now(UTC),
    )
    outcome = release_and_send(run)
    assert (outcome.sent, outcome.failed) == (1, 2)
    assert statuses(run) == {"c0": "failed", "c1": "sent", "c9": "failed"}
    assert Message.objects.get(run=run, customer_id="c0").error.startswith("render: ")
    assert Message.objects.get(pk=loop_run_extra.pk).error.startswith("render: ")
    assert len(responses.calls) == 1


def test_a_missing_template_and_a_missing_address_fail_with_a_reason(channel: Channel) -> None:
    channel.address_attribute = "HookURL"
    channel.save()
    run = make_run(channel, 2)
    Message.objects.filter(run=run, customer_id="c0").update(template_id=99)
    release_and_send(run)
    assert dict(Message.objects.filter(run=run).values_list("customer_id", "error")) == {
        "c0": "template 99 not found",
        "c1": "no address in attribute HookURL",
    }


def test_messages_later_than_the_channels_maximum_lateness_are_skipped(channel: Channel) -> None:
    channel.max_lateness_seconds = 60
    channel.save()
    run = make_run(channel, 1, send_at=datetime.now(UTC) - timedelta(minutes=5))
    release_and_send(run)
    message = Message.objects.get(run=run)
    assert (message.status, message.error) == ("skipped", "later than the channel's maximum lateness")


@responses.activate
def test_a_redelivered_send_task_sends_nothing_twice(channel: Channel) -> None:
    responses.add(responses.POST, HOOK, json={})
    run = make_run(channel, 3)
    ids = services._claim_due(run_id=run.pk, now=datetime.now(UTC) + timedelta(seconds=1), limit=10)
    assert services.message_batch_send(message_ids=ids).sent == 3
    assert services.message_batch_send(message_ids=ids).claimed == 0
    assert len(responses.calls) == 3


@responses.activate
def test_the_sweeper_resends_a_message_a_dead_worker_left_sending_with_the_same_key(
    channel: Channel, settings: Any
) -> None:
    responses.add(responses.POST, HOOK, json={})
    run = make_run(channel, 2)
    ids = services._claim_due(run_id=run.pk, now=datetime.now(UTC) + timedelta(seconds=1), limit=10)
    # A worker claims the batch, sends the first message, and is killed before recording anything.
    claimed = services._claim_for_sending(ids)
    assert len(claimed) == 2
    first_key = claimed[0].idempotency_key
    assert services.campaigns_sweep().sending_reset == 0  # not yet past the timeout
    later = datetime.now(UTC) + timedelta(seconds=settings.MESSAGE_SENDING_TIMEOUT_SECONDS + 1)
    report = services.campaigns_sweep(now=later)
    assert report.sending_reset == 2
    release_and_send(run, now=later)
    assert statuses(run) == {"c0": "sent", "c1": "sent"}
    assert first_key in {call.request.headers["Idempotency-Key"] for call in responses.calls}
    assert CampaignRun.objects.get(pk=run.pk).state == RunState.COMPLETED


def test_the_sweeper_releases_batches_whose_task_was_lost(channel: Channel, settings: Any) -> None:
    run = make_run(channel, 2)
    services._claim_due(run_id=run.pk, now=datetime.now(UTC) + timedelta(seconds=1), limit=10)
    later = datetime.now(UTC) + timedelta(seconds=settings.MESSAGE_QUEUED_TIMEOUT_SECONDS + 1)
    assert services.campaigns_sweep(now=later).queued_reset == 2
    assert set(statuses(run).values()) == {"pending"}


def test_with_no_send_task_waiting_a_lost_batch_is_released_after_the_orphan_timeout(
    channel: Channel, settings: Any, redis_client: Any
) -> None:
    # A Redis restart without persistence empties the queues: the batches' rows stay `queued`. With
    # nothing waiting in the broker they are released after MESSAGE_QUEUED_ORPHAN_SECONDS, not 600 s.
    run = make_run(channel, 2)
    services._claim_due(run_id=run.pk, now=datetime.now(UTC) + timedelta(seconds=1), limit=10)
    soon = datetime.now(UTC) + timedelta(seconds=settings.MESSAGE_QUEUED_ORPHAN_SECONDS + 1)
    redis_client.rpush("sends", "a task still waiting")
    assert services.campaigns_sweep(now=soon).queued_reset == 0
    assert set(statuses(run).values()) == {"queued"}
    redis_client.delete("sends")
    assert services.campaigns_sweep(now=soon - timedelta(seconds=2)).queued_reset == 0
    assert services.campaigns_sweep(now=soon).queued_reset == 2
    assert set(statuses(run).values()) == {"pending"}


def test_a_held_run_starts_at_its_clearance_time(channel: Channel) -> None:
    clearance = datetime.now(UTC) + timedelta(minutes=10)
    [run] = services.campaign_hold(client=channel.client, campaign_id=77, hold_until=clearance)
    assert run.state == RunState.HELD
    # A 13 for the held campaign finds the held run and starts nothing.
    same, created = services.campaign_run_start(client=channel.client, channel=channel, campaign_id=77)
    assert (same.pk, created) == (run.pk, False)
    assert services.campaigns_sweep(now=clearance - timedelta(seconds=1)).holds_released == 0
    assert CampaignRun.objects.get(pk=run.pk).state == RunState.HELD
    assert services.campaigns_sweep(now=clearance).holds_released == 1
    assert CampaignRun.objects.get(pk=run.pk).state == RunState.PAGING


def test_the_dispatcher_shares_the_queue_between_clients(channel: Channel, settings: Any) -> None:
    settings.SEND_BATCH_SIZE = 100
    big = make_run(channel, 5_000, campaign_id=1)
    other_client = Client.objects.create(
        slug="beta", name="Beta", optimove_base_url="https://api5.optimove.net"
    )
    other_channel = Channel.objects.create(
        client=other_client,
        name="Hook",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=510,
        provider="console",
    )
    small = make_run(other_channel, 150, campaign_id=2)
    released = services.messages_dispatch(now=datetime.now(UTC) + timedelta(seconds=1), budget=4)
    assert released == 4
    queued = dict(Message.objects.filter(status="queued").values_list("run_id").annotate(n=Count("id")))
    # Two batches each, not four batches of the big campaign.
    assert queued == {big.pk: 200, small.pk: 150}


def test_paging_stores_a_page_and_moves_the_cursor_together(channel: Channel) -> None:
    run = CampaignRun.objects.create(
        client=channel.client, channel=channel, campaign_id=5, state=RunState.PAGING
    )
    now = datetime.now(UTC)
    pages = {
        0: [AudienceRow(f"c{i}", 14, now, {"FirstName": "A"}) for i in range(3)],
        3: [AudienceRow("c2", 14, now, {}), AudienceRow("c3", 14, None, {})],  # c2 repeated by the source
        5: [],
    }
    calls: list[int] = []

    def fetch(run: CampaignRun, skip: int, top: int) -> AudiencePage:
        calls.append(skip)
        return AudiencePage(skip=skip, rows=tuple(pages[skip]))

    assert services.campaign_run_fetch_page(run_id=run.pk, fetch=fetch, page_size=3).stored == 3
    assert services.campaign_run_fetch_page(run_id=run.pk, fetch=fetch, page_size=3).stored == 2
    assert services.campaign_run_fetch_page(run_id=run.pk, fetch=fetch, page_size=3).done is True
    run.refresh_from_db()
    assert (run.cursor_skip, run.pages_fetched, run.fetched_count, run.paging_done, run.state) == (
        5,
        2,
        4,
        True,
        RunState.SENDING,
    )
    assert calls == [0, 3, 5]
    assert sorted(Message.objects.filter(run=run).values_list("customer_id", flat=True)) == [
        "c0",
        "c1",
        "c2",
        "c3",
    ]


def test_a_stored_page_keeps_every_value_and_one_run_never_gets_anothers_rows(channel: Channel) -> None:
    # Pages are copied through a session's temporary table: two runs' pages stored in one transaction
    # (as in this test) must not mix, and a customer listed twice in one page is stored once.
    first, second = (
        CampaignRun.objects.create(
            client=channel.client, channel=channel, campaign_id=c, state=RunState.PAGING
        )
        for c in (7, 8)
    )
    at = datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
    rows = {
        first.pk: (
            AudienceRow("a", 14, at, {"FirstName": "Zoë", "Note": 'quote " tab\t back\\'}),
            AudienceRow("b", 15, None, {}),
            AudienceRow("a", 14, at, {"FirstName": "again"}),
        ),
        second.pk: (AudienceRow("z", 16, at, {"FirstName": "Zed"}),),
    }

    def fetch(run: CampaignRun, skip: int, top: int) -> AudiencePage:
        return AudiencePage(skip=skip, rows=rows[run.pk] if skip == 0 else ())

    before = datetime.now(UTC)
    assert services.campaign_run_fetch_page(run_id=first.pk, fetch=fetch, page_size=10).stored == 3
    assert services.campaign_run_fetch_page(run_id=second.pk, fetch=fetch, page_size=10).stored == 1
    assert CampaignRun.objects.get(pk=first.pk).fetched_count == 2
    assert CampaignRun.objects.get(pk=second.pk).fetched_count == 1
    a, b = Message.objects.filter(run=first).order_by("customer_id")
    assert (a.customer_id, a.template_id, a.send_at, a.due_at, a.status, a.attempts) == (
        "a",
        14,
        at,
        at,
        "pending",
        0,
    )
    assert a.attributes == {"FirstName": "Zoë", "Note": 'quote " tab\t back\\'}
    assert a.idempotency_key == scheduled_message_key(
        client_id=channel.client_id, channel_id=channel.pk, campaign_id=7, customer_id="a"
    )
    assert b.send_at == b.due_at
    assert b.send_at >= before
    assert [h["status"] for h in b.history] == ["pending"]
    assert datetime.fromisoformat(b.history[0]["at"]) == b.send_at
    assert list(Message.objects.filter(run=second).values_list("customer_id", flat=True)) == ["z"]


def test_a_page_fetched_twice_is_stored_once(channel: Channel) -> None:
    run = CampaignRun.objects.create(
        client=channel.client, channel=channel, campaign_id=6, state=RunState.PAGING
    )
    rows = tuple(AudienceRow(f"c{i}", 14, None, {}) for i in range(2))

    def fetch_then_race(run_: CampaignRun, skip: int, top: int) -> AudiencePage:
        # Another task stores the same page while this one is fetching.
        CampaignRun.objects.filter(pk=run_.pk).update(cursor_skip=2)
        return AudiencePage(skip=skip, rows=rows)

    outcome = services.campaign_run_fetch_page(run_id=run.pk, fetch=fetch_then_race, page_size=2)
    assert outcome.discarded is True
    assert Message.objects.filter(run=run).count() == 0


def test_operators_pause_resume_cancel_and_retry(channel: Channel) -> None:
    run = make_run(channel, 3)
    Message.objects.filter(run=run, customer_id="c2").update(
        status=MessageStatus.FAILED, error="x", attempts=6
    )
    assert services.campaign_run_pause(run=run)
    assert services.messages_dispatch(now=datetime.now(UTC) + timedelta(seconds=1), budget=5) == 0
    assert services.campaign_run_resume(run=run)
    assert CampaignRun.objects.get(pk=run.pk).state == RunState.SENDING
    assert services.campaign_run_retry_failed(run=run) == 1
    retried = Message.objects.get(run=run, customer_id="c2")
    assert (retried.status, retried.attempts, retried.error) == ("pending", 0, "")
    assert services.campaign_run_cancel(run=run) == 3
    assert set(statuses(run).values()) == {"cancelled"}
    assert services.run_progress(run=run)["cancelled"] == 3


# Released ahead of the send time
# ------------------------------------------------------------------------------


def test_the_dispatcher_releases_messages_due_within_the_lead_and_no_later(
    channel: Channel, settings: Any
) -> None:
    settings.DISPATCH_LEAD_SECONDS = 3
    now = datetime.now(UTC)
    soon = make_run(channel, 2, campaign_id=1, send_at=now + timedelta(seconds=2))
    later = make_run(channel, 2, campaign_id=2, send_at=now + timedelta(seconds=4))
    assert services.messages_dispatch(now=now, budget=5) == 1
    assert set(statuses(soon).values()) == {"queued"}
    assert set(statuses(later).values()) == {"pending"}


@responses.activate
def test_a_batch_released_ahead_goes_out_at_the_send_time_not_before(channel: Channel) -> None:
    arrivals: list[float] = []

    def record(request: Any) -> tuple[int, dict[str, str], str]:
        arrivals.append(datetime.now(UTC).timestamp())
        return 200, {}, "{}"

    responses.add_callback(responses.POST, HOOK, callback=record)
    send_at = datetime.now(UTC) + timedelta(seconds=0.6)
    run = make_run(channel, 3, send_at=send_at)
    ids = services._claim_due(run_id=run.pk, now=datetime.now(UTC), limit=10, due_by=send_at)
    assert len(ids) == 3
    assert services.message_batch_send(message_ids=ids).sent == 3
    assert len(arrivals) == 3
    assert min(arrivals) >= send_at.timestamp()


@pytest.mark.parametrize(
    ("stop", "status", "attempts"),
    [(services.campaign_run_cancel, "cancelled", 0), (services.campaign_run_pause, "pending", 0)],
)
@responses.activate
def test_a_run_stopped_while_its_batch_waits_for_the_send_time_sends_nothing(
    channel: Channel, stop: Callable[..., Any], status: str, attempts: int
) -> None:
    responses.add(responses.POST, HOOK, json={})
    send_at = datetime.now(UTC) + timedelta(seconds=0.3)
    run = make_run(channel, 3, send_at=send_at)
    ids = services._claim_due(run_id=run.pk, now=datetime.now(UTC), limit=10, due_by=send_at)

    def operator_acts_then_sleep(seconds: float) -> None:
        # The operator presses the button while the claimed batch waits for its send time.
        stop(run=CampaignRun.objects.get(pk=run.pk))
        time.sleep(seconds)

    outcome = services.message_batch_send(message_ids=ids, sleep=operator_acts_then_sleep)
    assert (outcome.claimed, outcome.sent, outcome.released) == (3, 0, 3)
    assert len(responses.calls) == 0
    assert set(statuses(run).values()) == {status}
    assert set(Message.objects.filter(run=run).values_list("attempts", flat=True)) == {attempts}
    if status == "pending":  # resumed, the batch goes out after all, once
        services.campaign_run_resume(run=run)
        assert release_and_send(run).sent == 3
        assert len(responses.calls) == 3


def test_a_stored_page_with_due_customers_is_released_without_waiting_for_the_tick(
    channel: Channel, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.DISPATCH_LEAD_SECONDS = 2
    run = CampaignRun.objects.create(
        client=channel.client, channel=channel, campaign_id=8, state=RunState.PAGING
    )
    now = datetime.now(UTC)
    rows = (
        AudienceRow("due", 14, now, {}),
        AudienceRow("soon", 14, now + timedelta(seconds=1), {}),
        AudienceRow("later", 14, now + timedelta(minutes=5), {}),
    )

    def fetch(run_: CampaignRun, skip: int, top: int) -> AudiencePage:
        return AudiencePage(skip=skip, rows=rows if skip == 0 else ())

    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_run_fetch_page(run_id=run.pk, fetch=fetch, page_size=3)
    # Paging moved on to the sending state only after the empty page; the run is still paging here,
    # and paging runs are dispatched too.
    assert statuses(run) == {"due": "queued", "soon": "queued", "later": "pending"}
