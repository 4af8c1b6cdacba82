"""Throughput of a scheduled campaign, against a plain-script baseline (issue 7, point 1).

    .venv/bin/python bench/campaign.py [--customers 1000000] [--providers null,webhook,smtp] [--skip-baseline]

Starts a private PostgreSQL and Redis, migrates a fresh database, and runs the platform as production
would (its production settings): gunicorn (2 workers x 4 threads) serving the listener, ONE Celery
worker consuming `realtime,audience,sends` with 2 processes (one per core of the target machine), and
beat. The sandbox plays Optimove from its own gunicorn with its rate limit on (50 calls per 10 s per
account) and pages of 10,000 customers (OPTIMOVE_PAGE_SIZE). Every other setting is the platform's
default. The provider stand-ins run in processes of their own on loopback: an HTTP receiver for the
signed webhooks (bench/common.Receiver) and an SMTP server that accepts every mail (tools/smtpsink).

For each provider in turn (`null`: renders the email, sends nothing; `webhook`; `smtp`), a channel with
three templates gets a sandbox campaign of `--customers`, all due now. The benchmark fires the
notification (EventTypeID 13) and measures, until the run completes:
- seconds from the fire to the last message `sent` (the largest Message.sent_at), and messages per
  second over that span; seconds from the fire to the last page stored;
- Optimove calls the sandbox answered for the account meanwhile (SandboxCall rows; 429s included);
- the worker's resident memory, sampled every 0.5 s over every process of its group: the peak of the
  largest pool process and the peak of the whole group;
- the cores each process kept busy (CPU seconds over the span, counting the CPU of PostgreSQL
  backends that exited meanwhile), so the table shows where the time went;
- the database work per customer: WAL bytes, and rows inserted and updated in the messages table;
- correctness: each customer has exactly one `sent` message, and the receiver got each customer once.
A small unmeasured campaign (`--warmup`) goes first, so no measured run pays for cold caches.

Then the baseline for the same provider: a plain script (no Django, no Celery) in 2 processes (the
worker's parallelism) doing the irreducible work for a twin campaign of the same size and shape on the
same sandbox account (so the same rate limit): it fetches the pages over HTTP, COPYs each page's rows
into a PostgreSQL table, renders each row with Jinja2 from the same template text (email: subject,
text, HTML with an unsubscribe link; webhook: the payload), delivers it to the same kind of receiver
(webhook: keep-alive POSTs with an HMAC signature, as many at once as the platform's webhook backend;
smtp: smtplib over as many reused connections as the platform's SMTP backend), and marks each chunk
of SEND_BATCH_SIZE rows sent with one UPDATE. Each process fetches every other page, so fetching,
storing and sending overlap across the two. The platform's rate divided by the baseline's is its
ratio.

Memory check (`--memory-check`, on by default with `null` at 1,000,000 customers or more): the null
provider also runs at `--memory-base` customers (100,000) first; the peak RSS of the largest pool
process must be the same within 20 % at both sizes.

Exit status: 0 when the figures were measured, whether they meet the targets (PASS) or not (FAIL); 1
when the harness itself broke; 130 when interrupted. A run that takes longer than `--timeout` is
reported with what it had sent by then, cancelled, and the benchmark goes on. Everything started is
stopped and the temporary folder removed in every case.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import os
import resource
import secrets
import shlex
import signal
import sys
import time
import traceback
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    SPAWN,
    HarnessError,
    ManagedProcess,
    MemorySampler,
    Receiver,
    SmtpSinkProcess,
    Stack,
    WaitTimedOut,
    clock,
    cores_busy,
    cpu_seconds,
    interrupts_as_keyboard_interrupt,
    machine_description,
    ratio,
    table,
    wait_for,
)
from tools.devservers import free_port  # noqa: E402

if TYPE_CHECKING:
    from apps.campaigns.models import CampaignRun

PROVIDERS = ("null", "webhook", "smtp")
CHANNEL_IDS = {"null": 520, "webhook": 510, "smtp": 504}
TEMPLATE_IDS = (14, 15, 16)
# Sandbox attribute kinds: addresses are `customer<index>.<seed>@example.test`, ids `<seed>-<index>`.
ATTRIBUTES = {"Email": "email", "FirstName": "first_name", "Country": "country"}
EMAIL_DOMAIN = "example.test"
FROM_EMAIL = "news@bench.test"
SIGNING_SECRET = "bench-signing-secret"  # noqa: S105 (a throwaway secret of the benchmark's own receiver)
# Campaign ids (and seeds, so each run's customers are told apart at the receivers): the platform's
# runs count up from here, each baseline's twin is this much higher.
CAMPAIGN_BASE_ID = 4000
BASELINE_OFFSET = 500
WARMUP_CAMPAIGN_ID = 3999

WORKER_NAME = "worker"
WORKER_QUEUES = "realtime,audience,sends"
WORKER_CONCURRENCY = 2
WEB_WORKERS = 2
WEB_THREADS = 4
PAGE_SIZE = 10_000
PLATFORM_SETTINGS = "config.settings.production"
# The main process and the sandbox's server need the sandbox's models and URLs, which production
# settings turn off; they share the platform's database, keys and secret.
SANDBOX_SETTINGS = "config.settings.dev"

BASELINE_PROCESSES = 2
# The sandbox's limit is 50 calls per 10 s per account; each baseline process keeps to its share, with a
# little room for the delay between sending a call and the sandbox counting it.
BASELINE_CALLS_PER_WINDOW = 24
BASELINE_WINDOW_SECONDS = 10.2
BASELINE_HTTP_TIMEOUT_SECONDS = 60.0
# After its timeout, how long a baseline process may take to finish the chunk in hand and report.
BASELINE_STOP_SECONDS = 60.0

TARGET_RATIO = 0.5
TARGET_NULL_CUSTOMERS = 1_000_000
TARGET_NULL_SECONDS = 150.0
MEMORY_TOLERANCE = 0.20
POLL_SECONDS = 0.5
PROGRESS_SECONDS = 15.0
DRAIN_SECONDS = 120.0
MESSAGES_TABLE = "campaigns_message"
STATS_SETTLE_SECONDS = 15.0
MIB = 2**20


def email_templates() -> dict[int, dict[str, str]]:
    """The email channels' templates (as tests/campaigns/harness.py has them): subject, text, HTML."""
    return {
        template_id: {
            "subject": f"T{template_id} for {{{{ FirstName }}}}",
            "text": f"Hello {{{{ FirstName }}}} from {{{{ Country | default('nowhere') }}}} ({template_id})",
            "html": f"<p>Hello {{{{ FirstName }}}} ({template_id})</p>",
        }
        for template_id in TEMPLATE_IDS
    }


def webhook_payloads() -> dict[int, dict[str, str]]:
    return {
        template_id: {
            "greeting": "Hi {{ FirstName }}",
            "country": "{{ Country }}",
            "template": str(template_id),
        }
        for template_id in TEMPLATE_IDS
    }


@dataclass
class RunResult:
    provider: str
    kind: str  # "platform" or "baseline"
    customers: int
    campaign_id: int
    seconds: float | None = None  # from the fire (the baseline's start) to the last message sent
    sent: int = 0
    pages_seconds: float | None = None  # from the fire to the last page stored
    timed_out: bool = False
    messages: int = 0  # rows stored for the campaign
    sent_distinct: int = 0  # distinct customers among the sent rows
    statuses: dict[str, int] = field(default_factory=dict)
    failed_deliveries: int = 0  # baseline: deliveries the receiver refused or that broke
    optimove_calls: int = 0
    optimove_calls_by_status: dict[str, int] = field(default_factory=dict)
    peak_rss_pool: int | None = None  # bytes
    peak_rss_total: int | None = None
    rss_samples: int = 0
    delivered_total: int | None = None  # what the receiver got for this campaign, repeats included
    delivered_distinct: int | None = None
    delivered_doubled: int | None = None
    cores: dict[str, float] = field(default_factory=dict)
    # Database work: WAL written over the run (all of PostgreSQL), and the rows written to the
    # messages table (campaigns_message, or the baseline's own table).
    wal_bytes: int | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_hot_updated: int | None = None  # updates that touched no index (heap-only tuples)
    note: str = ""

    @property
    def rate(self) -> float | None:
        return self.sent / self.seconds if self.seconds and self.seconds > 0 else None

    def correctness_problems(self) -> list[str]:
        problems = []
        if self.timed_out:
            problems.append("timed out")
        if self.sent != self.customers:
            problems.append(f"{self.sent:,} of {self.customers:,} sent")
        if self.sent_distinct != self.sent:
            problems.append(f"{self.sent - self.sent_distinct:,} customers with more than one sent message")
        if self.messages not in (0, self.customers):
            problems.append(f"{self.messages:,} messages stored for {self.customers:,} customers")
        if self.delivered_total is not None:
            if self.delivered_distinct != self.customers:
                problems.append(f"receiver got {self.delivered_distinct:,} distinct of {self.customers:,}")
            if self.delivered_doubled:
                problems.append(f"receiver got {self.delivered_doubled:,} customers more than once")
        return problems


@dataclass
class Platform:
    stack: Stack
    worker: ManagedProcess
    account_id: int
    client_id: int
    sandbox_base: str
    public_base: str
    channels: dict[str, int]  # provider -> Channel pk
    receiver: Receiver | None
    sink: SmtpSinkProcess | None


# Set-up
# ------------------------------------------------------------------------------


def configure_django(stack: Stack, *, platform_base: str) -> None:
    """This process reads and writes the benchmark's database through the ORM, with the settings the
    platform's processes get (same database, keys and secret), plus the sandbox's models."""
    from cryptography.fernet import Fernet

    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": SANDBOX_SETTINGS,
            "DATABASE_URL": stack.postgres.url,
            "REDIS_URL": stack.redis.url,
            "PUBLIC_BASE_URL": platform_base,
            "DJANGO_DEBUG": "false",
            "SANDBOX_ENABLED": "true",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "OPTIMOVE_PAGE_SIZE": str(PAGE_SIZE),
        }
    )
    import django
    from django.core.management import call_command

    django.setup()
    # This process only sets up and reads figures: its log lines would bury the report.
    logging.getLogger().setLevel(logging.WARNING)
    call_command("migrate", interactive=False, verbosity=0)


def create_tenant(
    *, sandbox_base: str, providers: Sequence[str], webhook_url: str, smtp_port: int
) -> tuple[int, int, dict[str, int]]:
    """One client with a channel per provider, three templates each; the sandbox account that plays its
    Optimove (rate limit on); listeners registered there. Templates are made with the ORM: pushing them
    to Optimove (the template outbox) is not what this benchmark measures."""
    from apps.clients.models import Channel, ChannelKind, Client
    from apps.message_templates.models import MessageTemplate
    from apps.optimove.listeners import listeners_sync
    from apps.sandbox.models import SandboxAccount

    account = SandboxAccount.objects.create(name="bench", enforce_rate_limit=True)
    client = Client.objects.create(
        slug="bench", name="Bench", optimove_base_url=sandbox_base, optimove_api_key=account.api_key
    )
    channels: dict[str, int] = {}
    for provider in providers:
        if provider == "webhook":
            channel = Channel.objects.create(
                client=client,
                name="Webhook",
                kind=ChannelKind.WEBHOOK,
                optimove_channel_id=CHANNEL_IDS[provider],
                provider="webhook",
                provider_options={"url": webhook_url},
                provider_secrets={"signing_secret": SIGNING_SECRET},
            )
            for template_id, payload in webhook_payloads().items():
                MessageTemplate.objects.create(
                    client=client,
                    channel=channel,
                    template_id=template_id,
                    name=f"Hook {template_id}",
                    payload=payload,
                )
        else:
            # The null channel renders the same emails as the SMTP one; it only does not send them.
            options = {"from_email": FROM_EMAIL}
            if provider == "smtp":
                options.update({"host": "127.0.0.1", "port": smtp_port})  # type: ignore[dict-item]
            channel = Channel.objects.create(
                client=client,
                name=provider.title(),
                kind=ChannelKind.EMAIL,
                optimove_channel_id=CHANNEL_IDS[provider],
                provider=provider,
                provider_options=options,
                address_attribute="Email",
            )
            for template_id, parts in email_templates().items():
                MessageTemplate.objects.create(
                    client=client,
                    channel=channel,
                    template_id=template_id,
                    name=f"Email {template_id}",
                    subject=parts["subject"],
                    text_body=parts["text"],
                    html_body=parts["html"],
                )
        channels[provider] = channel.pk
    listeners_sync(client=client)
    return account.pk, client.pk, channels


def wait_for_workers(stack: Stack, queues: list[str]) -> None:
    """A worker is ready when it has consumed a ping from each of its queues."""
    from apps.core.redis import get_redis
    from apps.core.tasks import ping

    keys = []
    for queue in queues:
        key = f"bench-ready:{queue}:{secrets.token_hex(4)}"
        ping.apply_async(args=(key,), queue=queue)
        keys.append(key)

    def ready() -> bool:
        stack.check_alive()
        return all(get_redis().get(key) for key in keys)

    wait_for(ready, 90, f"the worker to consume from {', '.join(queues)}", interval=0.2)


def start_platform(stack: Stack, providers: Sequence[str]) -> Platform:
    stack.start_services()
    platform_port, sandbox_port = free_port(), free_port()
    platform_base = f"http://127.0.0.1:{platform_port}"
    configure_django(stack, platform_base=platform_base)
    receiver = Receiver(stack, "receiver") if "webhook" in providers else None
    sink = SmtpSinkProcess(stack, "smtp-sink") if "smtp" in providers else None
    sandbox_base = stack.start_gunicorn("sandbox", workers=1, threads=4, env=stack.env(), port=sandbox_port)
    platform_env = stack.env(DJANGO_SETTINGS_MODULE=PLATFORM_SETTINGS, SANDBOX_ENABLED="false")
    stack.start_gunicorn(
        "web", workers=WEB_WORKERS, threads=WEB_THREADS, env=platform_env, port=platform_port
    )
    account_id, client_id, channels = create_tenant(
        sandbox_base=sandbox_base,
        providers=providers,
        webhook_url=receiver.url if receiver else "",
        smtp_port=sink.port if sink else 0,
    )
    worker = stack.start_worker(
        WORKER_NAME, queues=WORKER_QUEUES, concurrency=WORKER_CONCURRENCY, env=platform_env
    )
    wait_for_workers(stack, WORKER_QUEUES.split(","))
    stack.start_beat(platform_env)
    return Platform(
        stack, worker, account_id, client_id, sandbox_base, platform_base, channels, receiver, sink
    )


def sandbox_campaign_create(platform: Platform, *, provider: str, campaign_id: int, customers: int) -> None:
    """A sandbox campaign of `customers`, every one due now (whole seconds, as Optimove's ScheduledTime);
    its seed is its id, so its customer ids and addresses are its own."""
    from apps.sandbox.models import SandboxCampaign

    SandboxCampaign.objects.create(
        account_id=platform.account_id,
        campaign_id=campaign_id,
        channel_id=CHANNEL_IDS[provider],
        size=customers,
        seed=campaign_id,
        template_ids=list(TEMPLATE_IDS),
        send_offsets_seconds=[0],
        attributes=ATTRIBUTES,
        base_time=datetime.now(UTC).replace(microsecond=0),
    )


# What a run did, read back
# ------------------------------------------------------------------------------


def optimove_calls(platform: Platform, *, since: datetime, until: datetime) -> dict[str, int]:
    """Calls the sandbox answered for the account between two times, by function and status."""
    from django.db.models import Count

    from apps.sandbox.models import SandboxCall

    rows = (
        SandboxCall.objects.filter(
            account_id=platform.account_id, received_at__gte=since, received_at__lte=until
        )
        .values_list("function", "status")
        .annotate(n=Count("id"))
    )
    return {f"{function} {status}": n for function, status, n in rows}


def receiver_tally(platform: Platform, *, provider: str, seed: int) -> tuple[int, int, int] | None:
    """(received, distinct customers, customers received more than once) for one campaign's customers;
    None for the null provider, which sends nothing."""
    if provider == "webhook" and platform.receiver is not None:
        counts = Counter(a.customer_id for a in platform.receiver.records(str(seed)))
        return sum(counts.values()), len(counts), sum(1 for n in counts.values() if n > 1)
    if provider == "smtp" and platform.sink is not None:
        tally = platform.sink.tally(f".{seed}@{EMAIL_DOMAIN}")
        return tally.total, tally.distinct, tally.doubled
    return None


def _run_of(platform: Platform, *, provider: str, campaign_id: int) -> CampaignRun | None:
    from apps.campaigns.models import CampaignRun

    return CampaignRun.objects.filter(
        client_id=platform.client_id, channel_id=platform.channels[provider], campaign_id=campaign_id
    ).first()


def _being_sent(run_id: int) -> bool:
    from apps.campaigns.models import Message, MessageStatus

    return Message.objects.filter(
        run_id=run_id, status__in=(MessageStatus.QUEUED, MessageStatus.SENDING)
    ).exists()


def _sent_count(run_id: int) -> int:
    from apps.campaigns.models import Message, MessageStatus

    return Message.objects.filter(run_id=run_id, status=MessageStatus.SENT).count()


def _run_finished(run: CampaignRun) -> bool:
    from apps.campaigns.models import RunState

    if run.state == RunState.COMPLETED:
        return True
    # Paging failed or the run was cancelled: the dispatcher releases nothing more from it, so it is
    # over once the batches already released are done.
    return run.state in (RunState.FAILED, RunState.CANCELLED) and not _being_sent(run.pk)


# The platform's run
# ------------------------------------------------------------------------------


def run_platform(
    platform: Platform, *, provider: str, customers: int, campaign_id: int, timeout: float, label: str
) -> RunResult:
    from apps.sandbox.models import SandboxAccount
    from apps.sandbox.services import sandbox_fire

    result = RunResult(provider, "platform", customers, campaign_id)
    sandbox_campaign_create(platform, provider=provider, campaign_id=campaign_id, customers=customers)
    account = SandboxAccount.objects.get(pk=platform.account_id)
    stack = platform.stack
    db_before = db_counters(table=MESSAGES_TABLE, settle=True)
    sampler = MemorySampler(platform.worker.process.pid).start()
    cpu_before, started = cpu_seconds(stack), clock()
    fired_at = datetime.now(UTC)
    try:
        notifications = sandbox_fire(
            account=account, event_type_id=13, campaign_id=campaign_id, channel_id=CHANNEL_IDS[provider]
        )
        if [n.status_code for n in notifications] != [200]:
            raise HarnessError(
                f"the listener did not accept campaign {campaign_id}'s notification: "
                f"{[(n.status_code, n.error) for n in notifications]}"
            )
        run, result.timed_out = _await_run(
            platform, provider=provider, campaign_id=campaign_id, deadline=started + timeout, label=label
        )
    finally:
        peak = sampler.stop()
    elapsed = clock() - started
    result.cores = cores_busy(cpu_before, cpu_seconds(stack), elapsed)
    ended_at = datetime.now(UTC)
    result.peak_rss_pool, result.peak_rss_total, result.rss_samples = (
        peak.largest_child,
        peak.total,
        peak.samples,
    )
    result.optimove_calls_by_status = optimove_calls(platform, since=fired_at, until=ended_at)
    result.optimove_calls = sum(result.optimove_calls_by_status.values())
    if run is None:
        result.note = "no run was created"
        result.seconds = elapsed
        return result
    _platform_figures(result, run_id=run.pk, fired_at=fired_at, elapsed=elapsed)
    tally = receiver_tally(platform, provider=provider, seed=campaign_id)
    if tally is not None:
        result.delivered_total, result.delivered_distinct, result.delivered_doubled = tally
    if result.timed_out:
        result.note = f"timed out after {timeout:g} s; the run was cancelled"
        _discard(platform, run_id=run.pk)
    if not drain(platform, timeout=DRAIN_SECONDS):
        raise HarnessError(f"the platform did not settle within {DRAIN_SECONDS:g} s after {label}")
    db_work(result, db_before, db_counters(table=MESSAGES_TABLE, settle=True))
    return result


def _await_run(
    platform: Platform, *, provider: str, campaign_id: int, deadline: float, label: str
) -> tuple[CampaignRun | None, bool]:
    """Waits for the run to finish; (the run, whether the deadline came first)."""
    run = None
    next_progress = clock() + PROGRESS_SECONDS
    while True:
        platform.stack.check_alive()
        run = _run_of(platform, provider=provider, campaign_id=campaign_id)
        if run is not None and _run_finished(run):
            return run, False
        if clock() >= deadline:
            return run, True
        if clock() >= next_progress and run is not None:
            next_progress += PROGRESS_SECONDS
            print(f"  {label}: {run.fetched_count:,} stored, {_sent_count(run.pk):,} sent", flush=True)
        time.sleep(POLL_SECONDS)


@dataclass(frozen=True)
class DbCounters:
    wal_lsn: str
    inserted: int
    updated: int
    hot_updated: int


def db_counters(*, table: str, settle: bool = False) -> DbCounters:
    """The WAL position and the table's row counters (pg_stat_user_tables). Backends report their
    table counters at most once a second, and an idle one after up to 10 s; with `settle`, the reading
    is repeated until it stops changing, so all of a finished run's writes are in it."""
    from django.db import connection

    def read() -> DbCounters:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT pg_current_wal_lsn()::text, coalesce(sum(n_tup_ins), 0), coalesce(sum(n_tup_upd), 0),
                       coalesce(sum(n_tup_hot_upd), 0)
                  FROM pg_stat_user_tables WHERE relname = %s
                """,
                [table],
            )
            lsn, inserted, updated, hot = cursor.fetchone()
        return DbCounters(lsn, int(inserted), int(updated), int(hot))

    reading = read()
    deadline = clock() + STATS_SETTLE_SECONDS
    while settle and clock() < deadline:
        time.sleep(1.5)
        again = read()
        if (again.inserted, again.updated, again.hot_updated) == (
            reading.inserted,
            reading.updated,
            reading.hot_updated,
        ):
            break
        reading = again
    return reading


def db_work(result: RunResult, before: DbCounters, after: DbCounters) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", [after.wal_lsn, before.wal_lsn])
        result.wal_bytes = int(cursor.fetchone()[0])
    result.rows_inserted = after.inserted - before.inserted
    result.rows_updated = after.updated - before.updated
    result.rows_hot_updated = after.hot_updated - before.hot_updated


def _platform_figures(result: RunResult, *, run_id: int, fired_at: datetime, elapsed: float) -> None:
    from django.db import connection

    from apps.campaigns.models import CampaignRun

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE status = 'sent'),
                   count(DISTINCT customer_id) FILTER (WHERE status = 'sent'), max(sent_at)
              FROM campaigns_message WHERE run_id = %s
            """,
            [run_id],
        )
        messages, sent, distinct, last_sent = cursor.fetchone()
        cursor.execute(
            "SELECT status, count(*) FROM campaigns_message WHERE run_id = %s GROUP BY 1", [run_id]
        )
        result.statuses = dict(cursor.fetchall())
    result.messages, result.sent, result.sent_distinct = messages, sent, distinct
    if result.timed_out or last_sent is None:
        result.seconds = elapsed
    else:
        result.seconds = (last_sent - fired_at).total_seconds()
    run = CampaignRun.objects.get(pk=run_id)
    if run.paging_done and run.last_progress_at is not None:
        # The empty page that ends paging is the last progress the run records.
        result.pages_seconds = (run.last_progress_at - fired_at).total_seconds()


def _discard(platform: Platform, *, run_id: int) -> None:
    """The run took too long: cancelled (its unsent messages with it) and the broker's queues emptied,
    whose tasks would only find cancelled rows, so the next provider starts quiet."""
    from apps.campaigns.models import CampaignRun
    from apps.campaigns.services import campaign_run_cancel
    from apps.core.redis import get_redis

    campaign_run_cancel(run=CampaignRun.objects.get(pk=run_id))
    get_redis().delete("sends", "audience")


def drain(platform: Platform, *, timeout: float) -> bool:
    """Waits until no message is queued or being sent, none is pending in a run still paging or
    sending, and the send and paging queues are empty; False when that takes longer than `timeout`.
    (Two small queries on partial indexes: the table holds millions of rows by the end.)"""
    from apps.campaigns.models import ACTIVE_RUN_STATES, CampaignRun, Message, MessageStatus
    from apps.core.redis import get_redis

    redis = get_redis()

    def quiet() -> bool:
        platform.stack.check_alive()
        if redis.llen("sends") or redis.llen("audience"):
            return False
        if Message.objects.filter(status__in=(MessageStatus.QUEUED, MessageStatus.SENDING)).exists():
            return False
        active = list(CampaignRun.objects.filter(state__in=ACTIVE_RUN_STATES).values_list("pk", flat=True))
        return not Message.objects.filter(run_id__in=active, status=MessageStatus.PENDING).exists()

    try:
        wait_for(quiet, timeout, "the platform to drain", interval=0.5)
    except WaitTimedOut:
        return False
    return True


# The baseline: the irreducible work, in a plain script
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineSpec:
    """Everything a baseline process needs; it reaches the process through a pipe (spawn), never on a
    command line, since it holds the sandbox account's key."""

    provider: str
    kind: str  # "email" or "webhook"
    sandbox_base: str
    api_key: str
    channel_id: int
    campaign_id: int
    attributes: tuple[str, ...]  # requested from the sandbox, in this order
    address_attribute: str
    page_size: int
    chunk: int
    processes: int
    dsn: str
    table: str
    templates: dict[int, dict[str, Any]]
    webhook_url: str
    signing_secret: str
    smtp_port: int
    from_email: str
    width: int  # concurrent webhook requests, or SMTP connections, per process
    unsubscribe_base: str
    unsubscribe_key: str


@dataclass
class BaselineReport:
    sent: int = 0
    failed: int = 0
    calls: int = 0
    refused: int = 0  # calls answered 429 or 5xx, retried
    pages: int = 0
    pages_done_at: float = 0.0  # time.time() after its last page was stored
    cpu_seconds: float = 0.0  # from the start signal to the end
    error: str = ""


class _Lane:
    """One connection to the receiver (HTTP or SMTP), used by one thread at a time."""

    def __init__(self, spec: BaselineSpec) -> None:
        self.spec = spec
        self.http: http.client.HTTPConnection | None = None
        self.smtp: Any = None
        self.path = urlsplit(spec.webhook_url).path or "/"

    def post(self, body: bytes, headers: dict[str, str]) -> bool:
        for attempt in range(2):  # once more on a fresh connection, as a keep-alive client does
            if self.http is None:
                parts = urlsplit(self.spec.webhook_url)
                self.http = http.client.HTTPConnection(
                    parts.hostname or "127.0.0.1", parts.port or 80, timeout=BASELINE_HTTP_TIMEOUT_SECONDS
                )
            try:
                self.http.request("POST", self.path, body=body, headers=headers)
                response = self.http.getresponse()
                response.read()
                if response.will_close:
                    self.http.close()
                    self.http = None
                return 200 <= response.status < 300
            except (OSError, http.client.HTTPException):
                if self.http is not None:
                    self.http.close()
                self.http = None
                if attempt:
                    return False
        return False

    def mail(self, to: str, data: bytes) -> bool:
        import smtplib

        for attempt in range(2):
            try:
                if self.smtp is None:
                    self.smtp = smtplib.SMTP(
                        "127.0.0.1", self.spec.smtp_port, timeout=BASELINE_HTTP_TIMEOUT_SECONDS
                    )
                    self.smtp.ehlo()
                self.smtp.sendmail(self.spec.from_email, [to], data)
                return True
            except (OSError, smtplib.SMTPException):
                with contextlib.suppress(Exception):
                    self.smtp.close()
                self.smtp = None
                if attempt:
                    return False
        return False

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.smtp is not None:
            with contextlib.suppress(Exception):
                self.smtp.quit()


Row = tuple[str, int, str, dict[str, str]]  # customer id, template id, scheduled time, attributes


class BaselineWorker:
    """One baseline process: pages `index`, `index + processes`, ... of the campaign, each fetched,
    COPYed into the table, then rendered, delivered and marked sent chunk by chunk."""

    def __init__(self, spec: BaselineSpec, index: int) -> None:
        import jinja2
        import psycopg

        self.spec = spec
        self.index = index
        self.report = BaselineReport()
        self.db = psycopg.connect(spec.dsn, autocommit=True)
        self.db.execute("SET TIME ZONE 'UTC'")
        parts = urlsplit(spec.sandbox_base)
        self.sandbox = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port or 80, timeout=BASELINE_HTTP_TIMEOUT_SECONDS
        )
        self.call_times: deque[float] = deque()
        plain, html = jinja2.Environment(autoescape=False), jinja2.Environment(autoescape=True)  # noqa: S701
        self.compiled: dict[int, dict[str, Any]] = {}
        for template_id, parts_of in spec.templates.items():
            if spec.kind == "webhook":
                self.compiled[template_id] = {
                    key: plain.from_string(value) for key, value in parts_of["payload"].items()
                }
            else:
                self.compiled[template_id] = {
                    "subject": plain.from_string(parts_of["subject"]),
                    "text": plain.from_string(parts_of["text"]),
                    "html": html.from_string(parts_of["html"]),
                }
        width = spec.width if spec.provider != "null" else 1
        self.lanes = [_Lane(spec) for _ in range(width)]
        self.pool = ThreadPoolExecutor(width) if width > 1 else None
        self.unsubscribe_key = spec.unsubscribe_key.encode()
        self.secret = spec.signing_secret.encode()

    # Fetching and storing

    def _pace(self) -> None:
        """Keeps this process to its share of the account's rate limit."""
        now = time.monotonic()
        while self.call_times and now - self.call_times[0] > BASELINE_WINDOW_SECONDS:
            self.call_times.popleft()
        if len(self.call_times) >= BASELINE_CALLS_PER_WINDOW:
            time.sleep(BASELINE_WINDOW_SECONDS - (now - self.call_times[0]))
            self.call_times.popleft()
        self.call_times.append(time.monotonic())

    def fetch(self, skip: int) -> list[Row]:
        spec = self.spec
        query = urlencode(
            {
                "ChannelID": spec.channel_id,
                "CampaignID": spec.campaign_id,
                "CustomerAttributes": ";".join(spec.attributes),
                "CustomerAttributesDelimiter": ",",
                "$top": spec.page_size,
                "$skip": skip,
            }
        )
        prefix = urlsplit(spec.sandbox_base).path.rstrip("/")
        path = f"{prefix}/current/customers/GetCustomerSendDetailsByChannel"
        headers = {"X-API-KEY": spec.api_key, "Accept": "application/json"}
        for _ in range(30):
            self._pace()
            self.report.calls += 1
            try:
                self.sandbox.request("GET", f"{path}?{query}", headers=headers)
                response = self.sandbox.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.sandbox.close()
                time.sleep(1)
                continue
            if response.status == 429 or response.status >= 500:
                self.report.refused += 1
                time.sleep(1)
                continue
            if response.status != 200:
                raise RuntimeError(f"the sandbox answered HTTP {response.status}: {data[:200]!r}")
            return [self._row(item) for item in json.loads(data)]
        raise RuntimeError("the sandbox refused 30 calls in a row")

    def _row(self, item: dict[str, Any]) -> Row:
        values = item.get("CustomerAttributes") or []
        if isinstance(values, str):
            values = values.split(",")
        return (
            str(item["CustomerID"]),
            int(item["TemplateID"]),
            str(item["ScheduledTime"]),
            dict(zip(self.spec.attributes, values, strict=False)),
        )

    def store(self, rows: list[Row]) -> None:
        from psycopg import sql

        statement = sql.SQL("COPY {} (customer_id, template_id, send_at, attributes) FROM STDIN").format(
            sql.Identifier(self.spec.table)
        )
        with self.db.cursor() as cursor, cursor.copy(statement) as copy:
            for customer_id, template_id, send_at, attributes in rows:
                copy.write_row((customer_id, template_id, send_at, json.dumps(attributes)))

    def mark_sent(self, customer_ids: list[str]) -> None:
        from psycopg import sql

        self.db.execute(
            sql.SQL(
                "UPDATE {} SET status = 'sent', sent_at = now()"
                " WHERE customer_id = ANY(%s) AND status = 'pending'"
            ).format(sql.Identifier(self.spec.table)),
            [customer_ids],
        )

    # Rendering and delivering

    def _key(self, customer_id: str) -> str:
        material = f"baseline|{self.spec.channel_id}|{self.spec.campaign_id}|{customer_id}"
        return hashlib.sha256(material.encode()).hexdigest()[:40]

    def _unsubscribe_url(self, customer_id: str) -> str:
        token = hmac.new(self.unsubscribe_key, customer_id.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{self.spec.unsubscribe_base}/u/{customer_id}/{token}/"

    def _email(self, row: Row) -> tuple[str, str, str, str]:
        """Subject, text, HTML (with the unsubscribe link) and the link."""
        customer_id, template_id, _, attributes = row
        context = {**attributes, "customer_id": customer_id, "template_id": template_id}
        parts = self.compiled[template_id]
        url = self._unsubscribe_url(customer_id)
        text = parts["text"].render(context) + f"\n\nUnsubscribe: {url}\n"
        html = parts["html"].render(context) + f'<p><a href="{url}">Unsubscribe</a> from these emails.</p>'
        return parts["subject"].render(context), text, html, url

    def _mime(self, row: Row, subject: str, text: str, html: str, url: str) -> tuple[str, bytes]:
        from email.mime.multipart import MIMEMultipart
        from email.mime.text import MIMEText
        from email.utils import formatdate

        to = row[3].get(self.spec.address_attribute, "")
        message = MIMEMultipart("alternative")
        message["Subject"] = subject
        message["From"] = self.spec.from_email
        message["To"] = to
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<{self._key(row[0])}@{self.spec.from_email.rpartition('@')[2]}>"
        message["List-Unsubscribe"] = f"<{url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.attach(MIMEText(text, "plain", "utf-8"))
        message.attach(MIMEText(html, "html", "utf-8"))
        return to, message.as_bytes()

    def _webhook(self, row: Row) -> tuple[bytes, dict[str, str]]:
        customer_id, template_id, _, attributes = row
        context = {**attributes, "customer_id": customer_id, "template_id": template_id}
        key = self._key(customer_id)
        body = json.dumps(
            {
                "id": key,
                "customer_id": customer_id,
                "to": "",
                "metadata": {
                    "campaign_id": str(self.spec.campaign_id),
                    "channel_id": str(self.spec.channel_id),
                    "template_id": str(template_id),
                },
                "content": {name: part.render(context) for name, part in self.compiled[template_id].items()},
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        timestamp = str(int(time.time()))
        signature = hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "X-Partner-Timestamp": timestamp,
            "X-Partner-Signature": f"v1={signature}",
        }
        return body, headers

    def _deliver_share(self, lane: _Lane, rows: Sequence[Row]) -> list[str]:
        """Renders and delivers rows over one lane; the customer ids delivered."""
        done = []
        for row in rows:
            if self.spec.kind == "webhook":
                body, headers = self._webhook(row)
                ok = self.spec.provider == "null" or lane.post(body, headers)
            else:
                subject, text, html, url = self._email(row)
                if self.spec.provider == "null":
                    ok = True
                else:
                    to, data = self._mime(row, subject, text, html, url)
                    ok = lane.mail(to, data)
            if ok:
                done.append(row[0])
            else:
                self.report.failed += 1
        return done

    def deliver(self, rows: Sequence[Row]) -> list[str]:
        width = len(self.lanes)
        if self.pool is None:
            return self._deliver_share(self.lanes[0], rows)
        shares = [rows[i::width] for i in range(width)]
        parts = self.pool.map(lambda i: self._deliver_share(self.lanes[i], shares[i]), range(width))
        return [customer_id for part in parts for customer_id in part]

    def run(self, stop: Any) -> BaselineReport:
        """Until the campaign's last page, or until `stop` is set (the parent's timeout)."""
        spec = self.spec
        page = self.index
        while not stop.is_set():
            rows = self.fetch(page * spec.page_size)
            self.report.pages += 1
            if rows:
                self.store(rows)
                self.report.pages_done_at = time.time()
            for start in range(0, len(rows), spec.chunk):
                if stop.is_set():
                    return self.report
                delivered = self.deliver(rows[start : start + spec.chunk])
                if delivered:
                    self.mark_sent(delivered)
                self.report.sent += len(delivered)
            if len(rows) < spec.page_size:
                return self.report
            page += spec.processes
        return self.report

    def close(self) -> None:
        for lane in self.lanes:
            lane.close()
        if self.pool is not None:
            self.pool.shutdown()
        self.db.close()
        self.sandbox.close()


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _baseline_main(spec: BaselineSpec, index: int, ready: Any, go: Any, stop: Any, out: Connection) -> None:
    """A baseline process: sets up (connections, compiled templates), says so, waits for the start
    signal, does its share (or what it can before `stop`) and sends back its `BaselineReport`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    report = BaselineReport()
    worker = None
    try:
        worker = BaselineWorker(spec, index)
        ready.set()
        go.wait()
        cpu = _cpu_now()
        report = worker.run(stop)
        report.cpu_seconds = _cpu_now() - cpu
    except Exception:
        report.error = traceback.format_exc()[-2000:]
    finally:
        if worker is not None:
            worker.close()
    out.send(report)
    out.close()


def baseline_table_create(dsn: str, table: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
        db.execute(
            sql.SQL(
                """
                CREATE TABLE {} (
                    customer_id text PRIMARY KEY,
                    template_id integer NOT NULL,
                    send_at timestamptz NOT NULL,
                    attributes jsonb NOT NULL,
                    status text NOT NULL DEFAULT 'pending',
                    sent_at timestamptz
                )
                """
            ).format(sql.Identifier(table))
        )


def baseline_table_figures(dsn: str, table: str) -> tuple[int, int, datetime | None]:
    """(rows, rows sent, the last sent_at); the table is dropped afterwards."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as db:
        row = db.execute(
            sql.SQL("SELECT count(*), count(*) FILTER (WHERE status = 'sent'), max(sent_at) FROM {}").format(
                sql.Identifier(table)
            )
        ).fetchone()
        db.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    assert row is not None
    return int(row[0]), int(row[1]), row[2]


def baseline_spec(platform: Platform, *, provider: str, campaign_id: int, table: str) -> BaselineSpec:
    from django.conf import settings

    from apps.campaigns.services import audience_attribute_names
    from apps.channels.backends.email import DEFAULT_CONNECTIONS
    from apps.channels.backends.webhook import DEFAULT_CONCURRENCY
    from apps.clients.models import Channel
    from apps.sandbox.models import SandboxAccount

    channel = Channel.objects.get(pk=platform.channels[provider])
    webhook = provider == "webhook"
    return BaselineSpec(
        provider=provider,
        kind="webhook" if webhook else "email",
        sandbox_base=platform.sandbox_base,
        api_key=SandboxAccount.objects.get(pk=platform.account_id).api_key,
        channel_id=CHANNEL_IDS[provider],
        campaign_id=campaign_id,
        # The same attributes the platform requests for this channel.
        attributes=tuple(audience_attribute_names(channel=channel)),
        address_attribute=channel.address_attribute,
        page_size=PAGE_SIZE,
        chunk=int(settings.SEND_BATCH_SIZE),  # the platform's send batch
        processes=BASELINE_PROCESSES,
        dsn=platform.stack.postgres.url,
        table=table,
        templates=(
            {tid: {"payload": payload} for tid, payload in webhook_payloads().items()}
            if webhook
            else email_templates()
        ),
        webhook_url=platform.receiver.url if platform.receiver else "",
        signing_secret=SIGNING_SECRET,
        smtp_port=platform.sink.port if platform.sink else 0,
        from_email=FROM_EMAIL,
        width=DEFAULT_CONCURRENCY if webhook else DEFAULT_CONNECTIONS,
        unsubscribe_base=platform.public_base,
        unsubscribe_key=secrets.token_hex(16),
    )


def run_baseline(
    platform: Platform, *, provider: str, customers: int, campaign_id: int, timeout: float
) -> RunResult:
    result = RunResult(provider, "baseline", customers, campaign_id)
    stack = platform.stack
    sandbox_campaign_create(platform, provider=provider, campaign_id=campaign_id, customers=customers)
    table = f"bench_baseline_{campaign_id}"
    baseline_table_create(stack.postgres.url, table)
    spec = baseline_spec(platform, provider=provider, campaign_id=campaign_id, table=table)
    go, stop = SPAWN.Event(), SPAWN.Event()
    children: list[tuple[Any, Connection, Any]] = []
    try:
        for index in range(BASELINE_PROCESSES):
            ready = SPAWN.Event()
            receive, send = SPAWN.Pipe(duplex=False)
            child = SPAWN.Process(
                target=_baseline_main,
                args=(spec, index, ready, go, stop, send),
                name=f"baseline-{index + 1}",
                daemon=True,
            )
            child.start()
            send.close()
            stack.children.append(child)  # stopped by close() if we are interrupted meanwhile
            children.append((child, receive, ready))
        for child, receive, ready in children:
            while not ready.wait(0.5):
                if not child.is_alive() or receive.poll():
                    report = receive.recv() if receive.poll() else BaselineReport(error="died while starting")
                    raise HarnessError(f"{child.name} did not start: {report.error}")
        db_before = db_counters(table=table)
        cpu_before = {k: v for k, v in cpu_seconds(stack).items() if not k.startswith("baseline-")}
        started, started_at = clock(), datetime.now(UTC)
        go.set()
        reports = _await_baseline(children, deadline=started + timeout)
        result.timed_out = len(reports) < len(children)
        if result.timed_out:
            # Asked to stop after the chunk in hand, so what it sent is marked and its report comes back.
            stop.set()
            reports = _await_baseline(children, deadline=clock() + BASELINE_STOP_SECONDS, have=reports)
        elapsed = clock() - started
        ended_at = datetime.now(UTC)
    finally:
        for child, receive, _ in children:
            if child.is_alive():
                child.terminate()
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join(5)
            receive.close()
            stack.children.remove(child)
    cpu_after = cpu_seconds(stack)
    names = [child.name for child, _, _ in children]
    cpu_after.update({name: reports[name].cpu_seconds for name in names if name in reports})
    result.cores = cores_busy(cpu_before, cpu_after, elapsed)
    errors = [f"{name}: {reports[name].error}" for name in names if name in reports and reports[name].error]
    if errors:
        raise HarnessError("a baseline process broke:\n" + "\n".join(errors))
    db_work(result, db_before, db_counters(table=table, settle=True))
    result.messages, result.sent, last_sent = baseline_table_figures(stack.postgres.url, table)
    result.sent_distinct = result.sent  # the table's key is the customer id
    result.statuses = {"sent": result.sent} | (
        {"pending": result.messages - result.sent} if result.messages > result.sent else {}
    )
    result.failed_deliveries = sum(r.failed for r in reports.values())
    if result.timed_out or last_sent is None:
        result.seconds = elapsed
        result.note = f"timed out after {timeout:g} s" if result.timed_out else ""
    else:
        result.seconds = (last_sent - started_at).total_seconds()
    if reports and not result.timed_out:
        result.pages_seconds = max(r.pages_done_at for r in reports.values()) - started_at.timestamp()
    result.optimove_calls_by_status = optimove_calls(platform, since=started_at, until=ended_at)
    result.optimove_calls = sum(result.optimove_calls_by_status.values())
    tally = receiver_tally(platform, provider=provider, seed=campaign_id)
    if tally is not None:
        result.delivered_total, result.delivered_distinct, result.delivered_doubled = tally
    return result


def _await_baseline(
    children: list[tuple[Any, Connection, Any]],
    *,
    deadline: float,
    have: dict[str, BaselineReport] | None = None,
) -> dict[str, BaselineReport]:
    reports: dict[str, BaselineReport] = dict(have or {})
    while len(reports) < len(children) and clock() < deadline:
        for child, receive, _ in children:
            if child.name in reports:
                continue
            if receive.poll(0.2):
                reports[child.name] = receive.recv()
            elif not child.is_alive():
                raise HarnessError(f"{child.name} died (exit status {child.exitcode})")
    return reports


# Report
# ------------------------------------------------------------------------------


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _per_second(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _db_work(r: RunResult) -> str:
    """Per customer: WAL bytes, and rows written to the messages table."""
    if r.wal_bytes is None or r.rows_updated is None or not r.customers:
        return "-"
    hot = f" ({(r.rows_hot_updated or 0) / r.rows_updated:.0%} HOT)" if r.rows_updated else ""
    return (
        f"{r.wal_bytes / r.customers:,.0f} WAL bytes, {(r.rows_inserted or 0) / r.customers:.2f} row "
        f"inserts, {r.rows_updated / r.customers:.2f} row updates{hot} per customer"
    )


def _cores(cores: dict[str, float]) -> str:
    busy = sorted(((n, c) for n, c in cores.items() if c >= 0.01), key=lambda item: -item[1])
    return ", ".join(f"{name} {value:.2f}" for name, value in busy) + f" (total {sum(cores.values()):.2f})"


@dataclass
class Results:
    platform: list[RunResult] = field(default_factory=list)  # at --customers, one per provider
    baseline: dict[str, RunResult] = field(default_factory=dict)
    memory_base: RunResult | None = None  # null at --memory-base customers


def report_table(results: Results) -> str:
    headers = [
        "provider",
        "customers",
        "seconds",
        "msgs/s",
        "baseline msgs/s",
        "ratio",
        "Optimove calls",
        "pages stored s",
        "peak RSS pool MiB",
        "peak RSS sum MiB",
        "cores busy",
    ]
    rows = []
    runs = ([results.memory_base] if results.memory_base else []) + results.platform
    for r in runs:
        base = results.baseline.get(r.provider) if r is not results.memory_base else None
        rows.append(
            [
                r.provider + (" (timed out)" if r.timed_out else ""),
                f"{r.customers:,}",
                _seconds(r.seconds),
                _per_second(r.rate),
                _per_second(base.rate) if base else "-",
                ratio(r.rate, base.rate) if base else "-",
                str(r.optimove_calls),
                _seconds(r.pages_seconds),
                _mib(r.peak_rss_pool),
                _mib(r.peak_rss_total),
                _cores(r.cores),
            ]
        )
    return table(headers, rows)


def report_notes(results: Results) -> list[str]:
    notes = []
    for r in ([results.memory_base] if results.memory_base else []) + results.platform:
        calls = ", ".join(f"{k} x{v}" for k, v in sorted(r.optimove_calls_by_status.items()))
        notes.append(
            f"{r.provider} ({r.customers:,}): statuses {r.statuses}; Optimove calls: {calls or 'none'}"
        )
        if r.delivered_total is not None:
            notes.append(
                f"{r.provider} ({r.customers:,}): the receiver got {r.delivered_total:,} "
                f"({r.delivered_distinct:,} distinct customers, {r.delivered_doubled:,} more than once)"
            )
        if r.wal_bytes is not None:
            notes.append(f"{r.provider} ({r.customers:,}): database: {_db_work(r)}")
        if r.note:
            notes.append(f"{r.provider} ({r.customers:,}): {r.note}")
    for provider, b in results.baseline.items():
        calls = ", ".join(f"{k} x{v}" for k, v in sorted(b.optimove_calls_by_status.items()))
        delivered = (
            f"; the receiver got {b.delivered_total:,} ({b.delivered_distinct:,} distinct)"
            if b.delivered_total is not None
            else ""
        )
        notes.append(
            f"baseline {provider}: {b.sent:,} sent in {_seconds(b.seconds)} s ({_per_second(b.rate)}/s), "
            f"pages stored after {_seconds(b.pages_seconds)} s, {b.failed_deliveries} failed deliveries"
            f"{delivered}; "
            f"Optimove calls: {calls or 'none'}; cores busy: {_cores(b.cores)}; database: {_db_work(b)}"
            + (f"; {b.note}" if b.note else "")
        )
    return notes


def verdict(results: Results, *, args: argparse.Namespace) -> tuple[list[str], bool]:
    lines: list[str] = []
    passed = True

    def line(name: str, ok: bool | None, detail: str) -> None:
        nonlocal passed
        if ok is False:
            passed = False
        word = "not measured" if ok is None else ("PASS" if ok else "FAIL")
        lines.append(f"  {name}: {word} ({detail})")

    for r in results.platform:
        base = results.baseline.get(r.provider)
        if base is None:
            line(f"ratio >= {TARGET_RATIO:g}, {r.provider}", None, "--skip-baseline")
            continue
        if r.rate is None or base.rate is None:
            line(f"ratio >= {TARGET_RATIO:g}, {r.provider}", False, "no rate")
            continue
        value = r.rate / base.rate
        line(
            f"ratio >= {TARGET_RATIO:g}, {r.provider}",
            value >= TARGET_RATIO,
            f"{value:.2f}x: {r.rate:,.0f} vs {base.rate:,.0f} msgs/s",
        )
    null = next((r for r in results.platform if r.provider == "null"), None)
    name = f"null, {TARGET_NULL_CUSTOMERS:,} customers in <= {TARGET_NULL_SECONDS:g} s"
    if null is None:
        line(name, None, "null not among --providers")
    elif null.customers < TARGET_NULL_CUSTOMERS:
        line(name, None, f"ran {null.customers:,} customers in {_seconds(null.seconds)} s")
    else:
        ok = not null.timed_out and null.seconds is not None and null.seconds <= TARGET_NULL_SECONDS
        line(name, ok, f"{null.customers:,} in {_seconds(null.seconds)} s")
    name = f"worker memory flat (peak pool RSS within {MEMORY_TOLERANCE:.0%})"
    if results.memory_base is None or null is None:
        line(name, None, "use --memory-check")
    else:
        small, large = results.memory_base.peak_rss_pool or 0, null.peak_rss_pool or 0
        change = (large - small) / small if small else float("inf")
        line(
            name,
            abs(change) <= MEMORY_TOLERANCE,
            f"{_mib(small)} MiB at {results.memory_base.customers:,}, "
            f"{_mib(large)} MiB at {null.customers:,}: {change:+.1%}",
        )
    for r in [*results.platform, *results.baseline.values()]:
        problems = r.correctness_problems()
        who = r.provider if r.kind == "platform" else f"{r.provider} baseline"
        line(
            f"each customer sent exactly once, {who}",
            not problems,
            "; ".join(problems) or f"{r.sent:,} customers",
        )
    return lines, passed


# Main
# ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers per campaign")
    parser.add_argument(
        "--providers", default=",".join(PROVIDERS), help="comma-separated, from null,webhook,smtp"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="measure the platform only")
    parser.add_argument(
        "--memory-check",
        action="store_true",
        help="also run null at --memory-base customers and compare worker memory (default at >= 1,000,000)",
    )
    parser.add_argument(
        "--memory-base", type=int, default=100_000, help="the memory check's smaller campaign"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="seconds a run may take before it is reported and cancelled",
    )
    parser.add_argument(
        "--warmup", type=int, default=2000, help="customers of an unmeasured first campaign (0: none)"
    )
    parser.add_argument(
        "--fast-db", action="store_true", help="PostgreSQL without fsync (default: durable, as in production)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (logs, data) at the end"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    args.providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    unknown = sorted(set(args.providers) - set(PROVIDERS))
    if unknown or not args.providers:
        parser.error(
            f"--providers must list some of {', '.join(PROVIDERS)}; got {', '.join(unknown) or 'none'}"
        )
    if len(set(args.providers)) != len(args.providers):
        parser.error("--providers lists a provider twice")
    if not 1 <= args.customers <= 10_000_000:
        parser.error("--customers must be between 1 and 10,000,000")
    if not 0 <= args.warmup <= 100_000:
        parser.error("--warmup must be between 0 and 100,000")
    if not 0 < args.timeout <= 24 * 3600:
        parser.error("--timeout must be between 0 and 86,400 seconds")
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json: folder {args.json.parent} does not exist")
    if args.memory_check:
        if "null" not in args.providers:
            parser.error("--memory-check measures the null provider: add null to --providers")
        if not 1 <= args.memory_base < args.customers:
            parser.error("--memory-base must be at least 1 and smaller than --customers")
    args.memory_check = args.memory_check or (
        args.customers >= TARGET_NULL_CUSTOMERS
        and "null" in args.providers
        and args.memory_base < args.customers
    )
    return args


def run(args: argparse.Namespace) -> Results:
    stack = Stack(durable_db=not args.fast_db, keep=args.keep)
    results = Results()
    try:
        started = clock()
        platform = start_platform(stack, args.providers)
        print(f"Set-up {clock() - started:.0f} s", flush=True)
        if args.warmup:
            warm = run_platform(
                platform,
                provider=args.providers[0],
                customers=args.warmup,
                campaign_id=WARMUP_CAMPAIGN_ID,
                timeout=args.timeout,
                label="warm-up",
            )
            print(f"Warm-up: {warm.sent:,} of {args.warmup:,} sent in {_seconds(warm.seconds)} s", flush=True)
        campaign_id = CAMPAIGN_BASE_ID
        if args.memory_check:
            results.memory_base = run_platform(
                platform,
                provider="null",
                customers=args.memory_base,
                campaign_id=campaign_id,
                timeout=args.timeout,
                label=f"null at {args.memory_base:,}",
            )
            _print_run(results.memory_base)
        for provider in args.providers:
            campaign_id += 1
            result = run_platform(
                platform,
                provider=provider,
                customers=args.customers,
                campaign_id=campaign_id,
                timeout=args.timeout,
                label=provider,
            )
            results.platform.append(result)
            _print_run(result)
            if not args.skip_baseline:
                base = run_baseline(
                    platform,
                    provider=provider,
                    customers=args.customers,
                    campaign_id=campaign_id + BASELINE_OFFSET,
                    timeout=args.timeout,
                )
                results.baseline[provider] = base
                _print_run(base)
        return results
    finally:
        stack.close()


def _print_run(r: RunResult) -> None:
    print(
        f"{r.provider} {r.kind} at {r.customers:,}: {r.sent:,} sent in {_seconds(r.seconds)} s "
        f"({_per_second(r.rate)}/s), {r.optimove_calls} Optimove calls"
        + (f", peak pool RSS {_mib(r.peak_rss_pool)} MiB" if r.peak_rss_pool is not None else "")
        + (" - TIMED OUT" if r.timed_out else ""),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(sys.orig_argv if argv is None else ["bench/campaign.py", *argv])
    print(f"Campaign throughput benchmark: {machine_description()}", flush=True)
    print(f"Command: {command}", flush=True)
    print(
        f"{args.customers:,} customers per campaign, providers {', '.join(args.providers)}, "
        f"{'durable' if not args.fast_db else 'no-fsync'} PostgreSQL, one worker ({WORKER_QUEUES}) x "
        f"{WORKER_CONCURRENCY} processes, pages of {PAGE_SIZE:,}, the sandbox's rate limit on",
        flush=True,
    )
    started = clock()
    try:
        with interrupts_as_keyboard_interrupt():
            results = run(args)
    except KeyboardInterrupt:
        print("Interrupted; everything started was stopped.", file=sys.stderr)
        return 130
    except HarnessError as exc:
        print(f"The benchmark's harness broke, no figures: {exc}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print(
            "The benchmark's harness broke (above), no figures; everything started was stopped.",
            file=sys.stderr,
        )
        return 1
    print()
    print(
        "seconds: from the notification to the last message sent; msgs/s: customers sent over that span; "
        "peak RSS: the worker's largest pool process / all its processes; cores busy: CPU seconds per "
        "process over the run / its length"
    )
    print(report_table(results))
    print()
    for note in report_notes(results):
        print(f"- {note}")
    lines, passed = verdict(results, args=args)
    print()
    print("Targets")
    print("\n".join(lines))
    print(f"Overall: {'PASS' if passed else 'FAIL'}")
    print(f"Total time {clock() - started:.0f} s")
    if args.json is not None:
        runs = ([results.memory_base] if results.memory_base else []) + results.platform
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine_description(),
                    "command": command,
                    "arguments": {k: str(v) for k, v in vars(args).items()},
                    "platform": [asdict(r) | {"rate": r.rate} for r in runs],
                    "baseline": [asdict(r) | {"rate": r.rate} for r in results.baseline.values()],
                    "targets": lines,
                    "passed": passed,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
