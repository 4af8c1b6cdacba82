"""`/metrics` in the web process: the families it exposes, gauges equal to the database and the broker,
counters fed by the Optimove client and the send path, and the optional bearer token.

These run in the pytest process (no PROMETHEUS_MULTIPROC_DIR: the default registry), against the real
PostgreSQL and Redis; Optimove and the webhook provider are mocked with `responses`.
test_across_processes.py covers multiprocess mode with real worker and web processes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses
from django.db.models import Count
from django.test import Client as HttpClient

from apps.campaigns import services as campaign_services
from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunKind, RunState
from apps.clients.models import Channel, ChannelKind, Client
from apps.message_templates.models import MessageTemplate
from apps.metrics import recorders
from apps.metrics.selectors import message_counts_forget
from apps.optimove.client import optimove_client_for
from config.celery import app as celery_app
from tests.messages import messages_add
from tests.metrics.support import Samples, family_names, parse_samples, select, value
from tools.devservers import free_port

OPTIMOVE = "https://api5.optimove.net"
HOOK = "https://hooks.example.test/deliver"
STATUSES = [s.value for s in MessageStatus]
QUEUES = ["realtime", "audience", "sends", "reporting", "celery"]


@pytest.fixture(autouse=True)
def _fresh_counts() -> Iterator[None]:
    # Kept counts of completed runs belong to this process; row ids repeat across tests.
    message_counts_forget()
    yield
    message_counts_forget()


def scrape(http: HttpClient, **headers: str) -> Samples:
    response = http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content[:500]
    return parse_samples(response.content.decode())


def make_client(slug: str) -> Client:
    return Client.objects.create(
        slug=slug, name=slug.title(), optimove_base_url=OPTIMOVE, optimove_api_key=f"key-of-{slug}"
    )


def make_channel(client: Client, channel_id: int, **fields: Any) -> Channel:
    values: dict[str, Any] = {
        "name": f"Channel {channel_id}",
        "kind": ChannelKind.WEBHOOK,
        "provider": "webhook",
        "provider_options": {"url": HOOK, "concurrency": 1},
        "provider_secrets": {"signing_secret": "s3cret-signing"},
    }
    values.update(fields)
    return Channel.objects.create(client=client, optimove_channel_id=channel_id, **values)


def make_run(channel: Channel, campaign_id: int, state: str, **fields: Any) -> CampaignRun:
    return CampaignRun.objects.create(
        client=channel.client,
        channel=channel,
        campaign_id=campaign_id,
        state=state,
        paging_done=state != RunState.PAGING,
        **fields,
    )


def add_messages(run: CampaignRun, status: str, n: int, *, due: datetime | None = None) -> None:
    messages_add(run, n, status=status, template_id=14, at=due, prefix=f"customer-{run.pk}-")


def database_counts() -> dict[tuple[str, str, str], float]:
    """What the database says, in /metrics' terms: every status of every (client, channel) with messages."""
    rows = (
        Message.objects.values_list("run__client__slug", "run__channel__optimove_channel_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[tuple[str, str, str], float] = {}
    for client, channel, _status, _n in rows:
        for status in STATUSES:
            counts[(client, str(channel), status)] = 0.0
    for client, channel, status, n in rows:
        counts[(client, str(channel), status)] = float(n)
    return counts


def scraped_counts(samples: Samples) -> dict[tuple[str, str, str], float]:
    return {
        (labels["client"], labels["channel"], labels["status"]): v
        for key, v in select(samples, "partner_messages").items()
        for labels in [dict(key)]
    }


def database_runs() -> dict[tuple[str, str], float]:
    rows = CampaignRun.objects.values_list("client__slug", "state").annotate(n=Count("id")).order_by()
    return {(client, state): float(n) for client, state, n in rows}


def scraped_runs(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (labels["client"], labels["state"]): v
        for key, v in select(samples, "partner_campaign_runs").items()
        for labels in [dict(key)]
    }


# The endpoint -------------------------------------------------------------------------------------


def test_metrics_answers_200_with_every_family_in_prometheus_text_format(
    db: None, redis_client: Any, client: HttpClient
) -> None:
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    names = family_names(response.content.decode())
    ours = {
        "partner_messages",
        "partner_campaign_runs",
        "partner_queue_length",
        "partner_queue_lag_seconds",
        "partner_metrics_source_up",
        "partner_optimove_requests",
        "partner_optimove_request_duration_seconds",
        "partner_provider_messages",
        "partner_provider_call_duration_seconds",
    }
    assert ours <= names
    # django-prometheus's request metrics (its middleware saw this very request).
    assert {
        "django_http_requests_total_by_view_transport_method",
        "django_http_requests_latency_seconds_by_view_method",
        "django_http_responses_total_by_status_view_method",
    } <= names
    samples = parse_samples(response.content.decode())
    assert value(samples, "partner_metrics_source_up", source="database") == 1
    assert value(samples, "partner_metrics_source_up", source="broker") == 1
    assert value(samples, "partner_queue_lag_seconds") == 0
    assert select(samples, "partner_messages") == {}


def test_metrics_only_answers_get(db: None, client: HttpClient) -> None:
    assert client.post("/metrics").status_code == 405


# Gauges read from the database --------------------------------------------------------------------


def test_message_and_run_counts_equal_the_database_as_messages_move(
    db: None, redis_client: Any, client: HttpClient
) -> None:
    acme, globex = make_client("acme"), make_client("globex")
    email, hook = make_channel(acme, 504), make_channel(acme, 510)
    other = make_channel(globex, 504)  # the same Optimove channel id under another client
    done = make_run(email, 1, RunState.COMPLETED, completed_at=datetime.now(UTC) - timedelta(hours=1))
    add_messages(done, MessageStatus.SENT, 40)
    add_messages(done, MessageStatus.FAILED, 5)
    add_messages(done, MessageStatus.SKIPPED, 3)
    live = make_run(email, 2, RunState.SENDING)
    add_messages(live, MessageStatus.PENDING, 30)
    add_messages(live, MessageStatus.QUEUED, 7)
    add_messages(live, MessageStatus.SENDING, 4)
    add_messages(live, MessageStatus.SENT, 11)
    stopped = make_run(hook, 3, RunState.CANCELLED)
    add_messages(stopped, MessageStatus.CANCELLED, 9)
    add_messages(stopped, MessageStatus.SENT, 2)
    make_run(hook, 4, RunState.PAUSED)  # no messages yet: counted as a run, adds no message series
    realtime = make_run(other, 5, RunState.SENDING, kind=RunKind.REALTIME)
    add_messages(realtime, MessageStatus.SENT, 6)

    samples = scrape(client)
    assert scraped_counts(samples) == database_counts()
    assert scraped_counts(samples)[("acme", "504", "sent")] == 51
    assert scraped_counts(samples)[("globex", "504", "sent")] == 6
    assert scraped_counts(samples)[("acme", "510", "pending")] == 0
    assert ("acme", "510", "sent") in scraped_counts(samples)
    assert scraped_runs(samples) == database_runs()
    assert scraped_runs(samples)[("acme", "completed")] == 1

    # The active run moves on, and an operator retries the completed run's failures: that run is
    # sending again, so its kept counts must not be used.
    Message.objects.filter(run=live, status=MessageStatus.PENDING).update(status=MessageStatus.SENT)
    assert campaign_services.campaign_run_retry_failed(run=done) == 5
    samples = scrape(client)
    assert scraped_counts(samples) == database_counts()
    assert scraped_counts(samples)[("acme", "504", "pending")] == 5
    assert scraped_counts(samples)[("acme", "504", "failed")] == 0
    assert scraped_runs(samples) == database_runs()

    # Sent this time: the run completes again (a new completed_at), and is counted afresh.
    Message.objects.filter(run=done, status=MessageStatus.PENDING).update(status=MessageStatus.SENT)
    assert campaign_services.run_complete_if_done(run_id=done.pk)
    samples = scrape(client)
    assert scraped_counts(samples) == database_counts()
    assert scraped_counts(samples)[("acme", "504", "sent")] == 40 + 5 + 11 + 30
    assert scraped_runs(samples) == database_runs()


def test_a_completed_runs_counts_are_counted_once_and_again_after_they_expire(
    db: None, redis_client: Any, client: HttpClient, settings: Any
) -> None:
    settings.METRICS_COMPLETED_RUN_CACHE_SECONDS = 1.0  # kept 0.5 to 1 s
    channel = make_channel(make_client("acme"), 504)
    done = make_run(channel, 1, RunState.COMPLETED, completed_at=datetime.now(UTC))
    add_messages(done, MessageStatus.SENT, 20)
    live = make_run(channel, 2, RunState.SENDING)
    add_messages(live, MessageStatus.PENDING, 3)
    assert value(scrape(client), "partner_messages", client="acme", channel="504", status="sent") == 20

    # Rows changed behind the platform's back (a superuser deleting messages in the admin): the completed
    # run is not recounted at the next scrape, while the active run is.
    Message.objects.filter(run=done)[:1].get().delete()
    Message.objects.filter(run=live).update(status=MessageStatus.SENT)
    samples = scrape(client)
    assert value(samples, "partner_messages", client="acme", channel="504", status="sent") == 20 + 3
    assert value(samples, "partner_messages", client="acme", channel="504", status="pending") == 0

    time.sleep(1.05)
    samples = scrape(client)
    assert value(samples, "partner_messages", client="acme", channel="504", status="sent") == 19 + 3
    assert scraped_counts(samples) == database_counts()


def test_queue_lag_is_the_age_of_the_oldest_due_pending_message_the_dispatcher_serves(
    db: None, redis_client: Any, client: HttpClient
) -> None:
    channel = make_channel(make_client("acme"), 504)
    now = datetime.now(UTC)
    assert value(scrape(client), "partner_queue_lag_seconds") == 0

    sending = make_run(channel, 1, RunState.SENDING)
    add_messages(sending, MessageStatus.PENDING, 2, due=now + timedelta(minutes=5))  # not due yet
    add_messages(sending, MessageStatus.QUEUED, 1, due=now - timedelta(hours=1))  # released already
    assert value(scrape(client), "partner_queue_lag_seconds") == 0

    # Runs the dispatcher does not serve: paused, held until later, cancelled.
    add_messages(
        make_run(channel, 2, RunState.PAUSED), MessageStatus.PENDING, 1, due=now - timedelta(hours=2)
    )
    held = make_run(channel, 3, RunState.SENDING, hold_until=now + timedelta(hours=1))
    add_messages(held, MessageStatus.PENDING, 1, due=now - timedelta(hours=3))
    add_messages(
        make_run(channel, 4, RunState.CANCELLED), MessageStatus.PENDING, 1, due=now - timedelta(hours=4)
    )
    assert value(scrape(client), "partner_queue_lag_seconds") == 0

    add_messages(sending, MessageStatus.PENDING, 1, due=now - timedelta(seconds=30))
    paging = make_run(channel, 5, RunState.PAGING)
    add_messages(paging, MessageStatus.PENDING, 1, due=now - timedelta(seconds=90))
    lag = value(scrape(client), "partner_queue_lag_seconds")
    assert 90 <= lag < 100


# Gauges read from the broker ----------------------------------------------------------------------


def test_queue_lengths_count_the_tasks_waiting_in_each_queue_of_the_broker(
    db: None, redis_client: Any, client: HttpClient
) -> None:
    for queue, n in (("audience", 3), ("sends", 2), ("celery", 1)):
        for _ in range(n):
            celery_app.send_task("core.ping", args=["nobody"], queue=queue)
    # A task with a priority waits in a list of its own; it is still in the queue.
    celery_app.send_task("core.ping", args=["nobody"], queue="sends", priority=9)

    samples = scrape(client)
    assert {q: value(samples, "partner_queue_length", queue=q) for q in QUEUES} == {
        "realtime": 0,
        "audience": 3,
        "sends": 3,
        "reporting": 0,
        "celery": 1,
    }


def test_a_broker_that_does_not_answer_is_reported_and_the_rest_still_served(
    db: None, client: HttpClient, settings: Any
) -> None:
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    add_messages(make_run(make_channel(make_client("acme"), 504), 1, RunState.SENDING), MessageStatus.SENT, 2)

    samples = scrape(client)
    assert value(samples, "partner_metrics_source_up", source="broker") == 0
    assert value(samples, "partner_metrics_source_up", source="database") == 1
    assert select(samples, "partner_queue_length") == {}
    assert value(samples, "partner_messages", client="acme", channel="504", status="sent") == 2


# Counters fed by the Optimove client and the send path --------------------------------------------


@responses.activate
def test_every_optimove_request_is_counted_by_function_and_outcome(
    db: None, redis_client: Any, client: HttpClient
) -> None:
    url = f"{OPTIMOVE}/current/general/GetRegisteredEventListeners"
    responses.add(responses.GET, url, body=requests.exceptions.ConnectionError("refused"))
    responses.add(responses.GET, url, status=503, json={"Message": "busy"})
    responses.add(responses.GET, url, status=200, json=[])
    name = "partner_optimove_requests_total"
    before = scrape(client)

    assert optimove_client_for(make_client("acme")).get_registered_event_listeners() == []

    after = scrape(client)
    for status, expected in (("connection_error", 1), ("503", 1), ("200", 1)):
        labels = {"function": "GetRegisteredEventListeners", "status": status}
        assert value(after, name, **labels) - value(before, name, **labels) == expected
    duration = "partner_optimove_request_duration_seconds_count"
    labels = {"function": "GetRegisteredEventListeners"}
    assert value(after, duration, **labels) - value(before, duration, **labels) == 3


def _webhook_run(customers: int) -> CampaignRun:
    channel = make_channel(make_client("acme"), 510)
    MessageTemplate.objects.create(
        client=channel.client,
        channel=channel,
        template_id=14,
        name="Hello",
        payload={"hi": "{{ FirstName }}"},
    )
    run = make_run(channel, 1111, RunState.SENDING)
    add_messages(run, MessageStatus.PENDING, customers, due=datetime.now(UTC) - timedelta(seconds=1))
    return run


def _send_all(run: CampaignRun) -> campaign_services.BatchOutcome:
    """What the dispatcher and one send task do, in-process."""
    ids = list(Message.objects.filter(run=run, status=MessageStatus.PENDING).values_list("pk", flat=True))
    Message.objects.filter(pk__in=ids).update(status=MessageStatus.QUEUED)
    return campaign_services.message_batch_send(message_ids=ids, sleep=lambda _: None)


@responses.activate
def test_provider_answers_and_call_durations_are_counted_per_channel(
    db: None, redis_client: Any, client: HttpClient, settings: Any
) -> None:
    settings.SEND_CHUNK_SIZE = 2  # 5 messages: three provider calls

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        customer = json.loads(request.body)["customer_id"]  # customer-<run>-<n>
        return {"1": 400, "3": 503}.get(customer.rsplit("-", 1)[1], 200), {}, "{}"

    responses.add_callback(responses.POST, HOOK, callback=answer)
    run = _webhook_run(5)
    labels = {"client": "acme", "channel": "510", "kind": "webhook", "provider": "webhook"}
    before = scrape(client)

    outcome = _send_all(run)

    assert (outcome.sent, outcome.failed, outcome.retried) == (3, 1, 1)
    after = scrape(client)
    name = "partner_provider_messages_total"
    for result, expected in (("sent", 3), ("failed", 1), ("retry", 1)):
        assert value(after, name, **labels, result=result) - value(before, name, **labels, result=result) == (
            expected
        )
    calls = "partner_provider_call_duration_seconds_count"
    kind = {"kind": "webhook", "provider": "webhook"}
    assert value(after, calls, **kind) - value(before, calls, **kind) == 3


@responses.activate
def test_a_metric_that_cannot_be_recorded_never_fails_the_send(
    db: None, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    responses.add(responses.POST, HOOK, status=200, json={})

    def broken(**labels: str) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(recorders.PROVIDER_CALL_SECONDS, "labels", broken)
    run = _webhook_run(2)

    outcome = _send_all(run)

    assert outcome.sent == 2
    assert set(Message.objects.filter(run=run).values_list("status", flat=True)) == {MessageStatus.SENT}
    assert len(responses.calls) == 2


# What /metrics shows, and to whom ---------------------------------------------------------------


def test_metrics_show_no_personal_data_and_no_secrets(
    db: None, redis_client: Any, client: HttpClient, settings: Any
) -> None:
    settings.METRICS_TOKEN = "metrics-token-0123456789"
    acme = make_client("acme")
    channel = make_channel(acme, 504)
    add_messages(make_run(channel, 1, RunState.SENDING), MessageStatus.SENT, 3)
    # The listener's token travels in its URL; django-prometheus labels requests by view name only.
    client.post(
        f"/optimove/listener/acme/504/?token={acme.listener_token}",
        data="{}",
        content_type="application/json",
    )

    body = client.get(
        "/metrics", headers={"Authorization": f"Bearer {settings.METRICS_TOKEN}"}
    ).content.decode()

    assert 'partner_messages{channel="504",client="acme",status="sent"} 3.0' in body
    assert 'view="optimove-listener"' in body
    message = Message.objects.first()
    assert message is not None
    for private in (
        message.customer_id,
        message.attributes["Email"],
        "example.test",
        acme.optimove_api_key,
        "s3cret-signing",
        settings.METRICS_TOKEN,
        acme.listener_token,
    ):
        assert private not in body


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Basic metrics-token-0123456789", "metrics-token-0123456789", "Bearer "],
)
def test_with_a_token_set_metrics_refuse_a_request_without_it(
    db: None, client: HttpClient, settings: Any, authorization: str | None
) -> None:
    settings.METRICS_TOKEN = "metrics-token-0123456789"
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"partner_" not in response.content


def test_with_a_token_set_metrics_answer_the_bearer_of_it(
    db: None, redis_client: Any, client: HttpClient, settings: Any
) -> None:
    settings.METRICS_TOKEN = "metrics-token-0123456789"

    samples = scrape(client, Authorization="Bearer metrics-token-0123456789")

    assert value(samples, "partner_metrics_source_up", source="database") == 1


def test_without_a_token_metrics_are_open(
    db: None, redis_client: Any, client: HttpClient, settings: Any
) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200
