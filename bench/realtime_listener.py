"""The real-time listener under load (issue 4, "Performance").

    .venv/bin/python bench/realtime_listener.py [--rates 50,200,500] [--seconds 20] [--campaign-size 100000]

Starts a private PostgreSQL and Redis, migrates a fresh database, and runs the platform as production
would (its production settings): gunicorn (2 workers x 4 threads) serving the listener, a Celery
worker for `realtime` (concurrency 2), one for `sends,audience` (concurrency 2), and beat. The sandbox
plays Optimove from its own gunicorn, so paging a campaign does not take the listener's workers. Two
provider stand-ins on loopback, each its own process, answer the webhooks: one for the real-time
channel, one for the scheduled campaign. The campaign's stand-ins (the sandbox, its provider) still take
CPU, as a remote Optimove or provider would not; they run at the bulk workers' priority
(STANDIN_NICENESS), each as a scheduling group of its own, so they take what the campaign may. The
poster and the real-time stand-in, which take the times, keep the default priority in groups of their
own.

For each rate, two phases of `--seconds` each:
- baseline: EventTypeID 11 notifications only, posted by a separate process at a steady rate on a
  schedule fixed in advance (open loop), over `--connections` keep-alive connections;
- loaded: the same, while a fresh `--campaign-size` scheduled campaign (EventTypeID 13, fired just
  before posting starts) pages its audience and sends, its send times spread over the phase.

Times count from each notification's scheduled start, so a request that waited for a free connection
counts that wait. Listener response time: until the whole answer was read. Trigger to provider: until
the real-time provider stand-in received the webhook. Errors: answers other than 2xx and connection
errors. Lost: answered 2xx but not at the provider within `--grace` seconds after the last post.
Doubled: reached the provider more than once. After each phase the scheduled campaign is cancelled and
the platform given `--drain-timeout` seconds to finish the real-time messages; what it has not sent by
then is cancelled (and reported), so each phase starts quiet and a run's length stays bounded.

Exit status: 0 when the figures were measured, whether they meet the targets (PASS) or not (FAIL); 1
when the harness itself broke; 130 when interrupted. Everything started is stopped and the temporary
folder removed in every case.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Arrival,
    HarnessError,
    PostRun,
    Receiver,
    Stack,
    WaitTimedOut,
    clock,
    cores_busy,
    cpu_group_nice,
    cpu_seconds,
    interrupts_as_keyboard_interrupt,
    machine_description,
    ms,
    percentile,
    post_open_loop,
    ratio,
    table,
    wait_for,
)
from tools.devservers import free_port  # noqa: E402

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from apps.campaigns.models import Message

REALTIME_CHANNEL_ID = 505
REALTIME_TEMPLATE_ID = 7
# Each phase's triggers belong to a campaign of their own (2001, 2002...; the warm-up's is 2000), so a
# backlog the platform could not send by the end of a phase can be cancelled without touching the next.
REALTIME_CAMPAIGN_BASE_ID = 2000
SCHEDULED_CHANNEL_ID = 510
SCHEDULED_TEMPLATE_IDS = (14, 15, 16)
SCHEDULED_CAMPAIGN_BASE_ID = 3000
# Scheduled customers are due at these offsets (seconds) within a phase, so sends run all through it.
SEND_OFFSET_STEP_SECONDS = 5

# The campaign's stand-ins (its Optimove, its provider) run elsewhere in production; here they take CPU
# at the campaign's own priority (the bulk workers' BULK_WORKER_NICENESS), not the platform's.
STANDIN_NICENESS = 10

TARGET_RATE = 200
TARGET_LISTENER_P99_MS = 50.0
TARGET_TRIGGER_P99_MS = 500.0

# A notification not answered within this long (from its slot in the schedule) counts as an error.
POSTER_TIMEOUT_SECONDS = 10.0
# After cancelling a phase's unsent messages, how long those already being sent may take to finish.
DISCARD_DRAIN_SECONDS = 60.0
WEB_WORKERS = 2
WEB_THREADS = 4
WARMUP_RATE = 50
WARMUP_SECONDS = 2
PLATFORM_SETTINGS = "config.settings.production"
# The main process and the sandbox's server need the sandbox's models and URLs, which production
# settings turn off; they share the platform's database, keys and secret.
SANDBOX_SETTINGS = "config.settings.dev"


@dataclass
class PhaseResult:
    rate: int
    phase: str  # "baseline" or "loaded"
    posted: int
    errors: int
    error_kinds: dict[str, int]
    lost: int
    late: int  # of the lost: reached the provider after the grace period, while draining
    doubled: int  # reached the provider more than once (by the end of draining)
    unexpected: int  # reached the provider although its post failed
    listener_p50_ms: float | None
    listener_p99_ms: float | None
    trigger_p50_ms: float | None
    trigger_p99_ms: float | None
    poster_lag_p99_ms: float | None  # how late the poster itself started requests
    achieved_rate: float  # requests actually sent per second, from the first start to the last
    campaign_sends: int | None = None  # scheduled webhooks delivered during the posting window
    campaign_fetched: int | None = None  # scheduled customers stored by the end of the posting window
    window_seconds: float = 0.0
    drained: bool = True
    discarded: int = 0  # this phase's messages cancelled because the drain took too long
    stranded: int = 0  # of those, left pending in the cancelled run (see _stranded)
    stuck: str = ""  # what was still in flight even after the backlog was cancelled
    # Average cores each process kept busy while posting: where the machine's CPU went.
    cores: dict[str, float] = field(default_factory=dict)


@dataclass
class Platform:
    stack: Stack
    listener_url: str
    realtime_receiver: Receiver
    campaign_receiver: Receiver
    account_id: int
    client_id: int


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
        }
    )
    import django
    from django.core.management import call_command

    django.setup()
    # This process only sets up and reads figures: its log lines would bury the report.
    logging.getLogger().setLevel(logging.WARNING)
    call_command("migrate", interactive=False, verbosity=0)


def create_tenant(*, sandbox_base: str, realtime_url: str, campaign_url: str) -> tuple[int, int]:
    """One client with a real-time webhook channel (505, template 7) and a scheduled one (510); the
    sandbox account that plays its Optimove; listeners registered there. Templates are made with the
    ORM: pushing them to Optimove (the template outbox) is not what this benchmark measures."""
    from apps.clients.models import Channel, ChannelKind, Client
    from apps.message_templates.models import MessageTemplate
    from apps.optimove.listeners import listeners_sync
    from apps.sandbox.models import SandboxAccount

    account = SandboxAccount.objects.create(name="bench")
    client = Client.objects.create(
        slug="bench", name="Bench", optimove_base_url=sandbox_base, optimove_api_key=account.api_key
    )
    realtime = Channel.objects.create(
        client=client,
        name="Real-time webhook",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=REALTIME_CHANNEL_ID,
        provider="webhook",
        provider_options={"url": realtime_url},
        provider_secrets={"signing_secret": "s"},
        is_realtime=True,
    )
    MessageTemplate.objects.create(
        client=client,
        channel=realtime,
        template_id=REALTIME_TEMPLATE_ID,
        name="RT",
        payload={"hi": "{{ FirstName }}"},
    )
    scheduled = Channel.objects.create(
        client=client,
        name="Scheduled webhook",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=SCHEDULED_CHANNEL_ID,
        provider="webhook",
        provider_options={"url": campaign_url},
        provider_secrets={"signing_secret": "s"},
    )
    for template_id in SCHEDULED_TEMPLATE_IDS:
        MessageTemplate.objects.create(
            client=client,
            channel=scheduled,
            template_id=template_id,
            name=f"Scheduled {template_id}",
            payload={"greeting": "Hi {{ FirstName }}", "country": "{{ Country }}"},
        )
    listeners_sync(client=client)
    return account.pk, client.pk


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

    wait_for(ready, 90, f"the workers to consume from {', '.join(queues)}", interval=0.2)


def start_platform(stack: Stack) -> Platform:
    stack.start_services()
    platform_port, sandbox_port = free_port(), free_port()
    platform_base = f"http://127.0.0.1:{platform_port}"
    configure_django(stack, platform_base=platform_base)
    # The real-time stand-in times arrivals, so it keeps its priority; the campaign's take the campaign's.
    realtime_receiver = Receiver(stack, "realtime-receiver", niceness=0)
    campaign_receiver = Receiver(stack, "campaign-receiver", niceness=STANDIN_NICENESS)
    sandbox_base = stack.start_gunicorn("sandbox", workers=1, threads=4, env=stack.env(), port=sandbox_port)
    cpu_group_nice(stack.processes[-1].process.pid, STANDIN_NICENESS)
    platform_env = stack.env(DJANGO_SETTINGS_MODULE=PLATFORM_SETTINGS, SANDBOX_ENABLED="false")
    stack.start_gunicorn(
        "web", workers=WEB_WORKERS, threads=WEB_THREADS, env=platform_env, port=platform_port
    )
    account_id, client_id = create_tenant(
        sandbox_base=sandbox_base, realtime_url=realtime_receiver.url, campaign_url=campaign_receiver.url
    )
    stack.start_worker("worker-realtime", queues="realtime", concurrency=2, env=platform_env)
    stack.start_worker("worker-sends", queues="sends,audience", concurrency=2, env=platform_env)
    wait_for_workers(stack, ["realtime", "sends", "audience"])
    stack.start_beat(platform_env)

    from apps.clients.models import Client
    from apps.optimove.listeners import listener_url

    url = listener_url(
        client=Client.objects.get(pk=client_id), channel_id=REALTIME_CHANNEL_ID, public_base_url=platform_base
    )
    return Platform(stack, url, realtime_receiver, campaign_receiver, account_id, client_id)


# One phase
# ------------------------------------------------------------------------------


def trigger_body(*, customer_id: str, campaign_id: int, stamp: str) -> bytes:
    return json.dumps(
        {
            "eventTypeID": 11,
            "timeStamp": stamp,
            "campaignID": campaign_id,
            "channelID": REALTIME_CHANNEL_ID,
            "templateID": REALTIME_TEMPLATE_ID,
            "customerID": customer_id,
            "personalization": {"FirstName": "Ada"},
        }
    ).encode()


def post_triggers(
    platform: Platform, *, group: str, campaign_id: int, rate: int, seconds: float, connections: int
) -> tuple[list[str], PostRun]:
    """Customer ids `<group>-<n>`, unique in the whole run, so lost and doubled are exact."""
    customers = [f"{group}-{n}" for n in range(max(1, round(rate * seconds)))]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    bodies = [trigger_body(customer_id=c, campaign_id=campaign_id, stamp=stamp) for c in customers]
    run = post_open_loop(
        platform.stack,
        url=platform.listener_url,
        bodies=bodies,
        rate=rate,
        connections=connections,
        timeout=POSTER_TIMEOUT_SECONDS,
    )
    platform.stack.check_alive()
    return customers, run


def wait_for_arrivals(receiver: Receiver, *, group: str, expected: int, until: float) -> None:
    """Until every accepted trigger has arrived, or the grace period is over; then a moment more, so a
    second delivery following close behind is counted too."""
    while clock() < until and receiver.count(group) < expected:
        time.sleep(0.2)
    time.sleep(max(0.0, min(1.0, until - clock())))


def measure(
    *,
    rate: int,
    phase: str,
    customers: list[str],
    run: PostRun,
    arrivals: list[Arrival],
    cutoff: float,
) -> tuple[PhaseResult, set[str]]:
    """The phase's figures, and the customers lost (accepted, not at the provider by `cutoff`)."""
    posted = dict(zip(customers, run.posted, strict=True))
    accepted = {c: p for c, p in posted.items() if p.ok}
    by_customer: defaultdict[str, list[float]] = defaultdict(list)
    for arrival in arrivals:
        by_customer[arrival.customer_id].append(arrival.at)
    first = {c: min(times) for c, times in by_customer.items()}
    in_time = {c: first[c] for c in accepted if c in first and first[c] <= cutoff}
    errors = [p for p in run.posted if not p.ok]
    span = run.last_scheduled - run.posted[0].scheduled if len(run.posted) > 1 else 0.0
    result = PhaseResult(
        rate=rate,
        phase=phase,
        posted=len(run.posted),
        errors=len(errors),
        error_kinds=dict(Counter(p.error or f"HTTP {p.status}" for p in errors)),
        lost=len(accepted) - len(in_time),
        late=0,
        doubled=sum(1 for times in by_customer.values() if len(times) > 1),
        unexpected=sum(1 for c in by_customer if c not in accepted),
        listener_p50_ms=_ms(percentile([p.finished - p.scheduled for p in run.posted], 50)),
        listener_p99_ms=_ms(percentile([p.finished - p.scheduled for p in run.posted], 99)),
        trigger_p50_ms=_ms(percentile([at - accepted[c].scheduled for c, at in in_time.items()], 50)),
        trigger_p99_ms=_ms(percentile([at - accepted[c].scheduled for c, at in in_time.items()], 99)),
        poster_lag_p99_ms=_ms(percentile([p.started - p.scheduled for p in run.posted], 99)),
        achieved_rate=_rate([p.started for p in run.posted if p.sent]),
        window_seconds=span,
    )
    return result, set(accepted) - set(in_time)


def _rate(starts: list[float]) -> float:
    if len(starts) < 2 or max(starts) <= min(starts):
        return 0.0
    return (len(starts) - 1) / (max(starts) - min(starts))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def run_phase(
    platform: Platform,
    *,
    rate: int,
    phase: str,
    args: argparse.Namespace,
    realtime_campaign_id: int,
    scheduled_campaign_id: int | None = None,
) -> PhaseResult:
    group = f"rt-{rate}-{phase[0]}"
    cpu_before, cpu_since = cpu_seconds(platform.stack), clock()
    customers, run = post_triggers(
        platform,
        group=group,
        campaign_id=realtime_campaign_id,
        rate=rate,
        seconds=args.seconds,
        connections=args.connections,
    )
    cores = cores_busy(cpu_before, cpu_seconds(platform.stack), clock() - cpu_since)
    window = (run.posted[0].scheduled, run.last_scheduled)
    fetched = _campaign_fetched(platform, scheduled_campaign_id) if scheduled_campaign_id else None
    accepted = sum(1 for p in run.posted if p.ok)
    cutoff = run.last_scheduled + args.grace
    wait_for_arrivals(platform.realtime_receiver, group=group, expected=accepted, until=cutoff)
    result, lost = measure(
        rate=rate,
        phase=phase,
        customers=customers,
        run=run,
        arrivals=platform.realtime_receiver.records(group),
        cutoff=cutoff,
    )
    result.cores = cores
    if scheduled_campaign_id is not None:
        result.campaign_sends = platform.campaign_receiver.count_between(*window)
        result.campaign_fetched = fetched
        _campaign_cancel(platform, scheduled_campaign_id)
    result.drained = drain(platform, timeout=args.drain_timeout)
    # Repeats and stragglers that came while draining count too.
    arrivals = Counter(a.customer_id for a in platform.realtime_receiver.records(group))
    accepted_customers = {c for c, p in zip(customers, run.posted, strict=True) if p.ok}
    result.late = len(lost & set(arrivals))
    result.doubled = sum(1 for n in arrivals.values() if n > 1)
    result.unexpected = len(set(arrivals) - accepted_customers)
    if not result.drained:
        result.discarded = discard_backlog(platform, realtime_campaign_id=realtime_campaign_id)
        if not drain(platform, timeout=DISCARD_DRAIN_SECONDS):
            # The platform is stuck rather than slow: say on what, and measure on (the figures so far
            # are valid; the following phases are marked as not starting quiet).
            result.stuck = _in_flight_description()
        result.stranded = _stranded(campaign_id=realtime_campaign_id)
    return result


def _campaign_fire(platform: Platform, *, campaign_id: int, size: int, seconds: float) -> None:
    from apps.sandbox.models import SandboxAccount, SandboxCampaign
    from apps.sandbox.services import sandbox_fire

    account = SandboxAccount.objects.get(pk=platform.account_id)
    SandboxCampaign.objects.create(
        account=account,
        campaign_id=campaign_id,
        channel_id=SCHEDULED_CHANNEL_ID,
        size=size,
        seed=campaign_id,
        template_ids=list(SCHEDULED_TEMPLATE_IDS),
        send_offsets_seconds=list(range(0, max(1, int(seconds)), SEND_OFFSET_STEP_SECONDS)),
        attributes={"FirstName": "first_name", "Country": "country"},
        # ScheduledTime has whole seconds: start on the next one, so "now" is not already past.
        base_time=datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1),
    )
    notifications = sandbox_fire(
        account=account, event_type_id=13, campaign_id=campaign_id, channel_id=SCHEDULED_CHANNEL_ID
    )
    if [n.status_code for n in notifications] != [200]:
        raise HarnessError(
            f"the listener did not accept the scheduled campaign's notification: "
            f"{[(n.status_code, n.error) for n in notifications]}"
        )


def _campaign_fetched(platform: Platform, campaign_id: int) -> int:
    from apps.campaigns.models import CampaignRun

    run = CampaignRun.objects.filter(client_id=platform.client_id, campaign_id=campaign_id).first()
    return run.fetched_count if run else 0


def _campaign_cancel(platform: Platform, campaign_id: int) -> None:
    """The operator's cancel: pending and queued messages become cancelled, those being handed to the
    provider finish. The next phase starts without a campaign running."""
    from apps.campaigns.models import CampaignRun
    from apps.campaigns.services import campaign_run_cancel

    for run in CampaignRun.objects.filter(client_id=platform.client_id, campaign_id=campaign_id):
        campaign_run_cancel(run=run)


def _in_flight_messages() -> QuerySet[Message]:
    """Messages the platform will still act on: queued or being sent, or pending in a run that is
    paging or sending. (A pending message of a cancelled run is never sent: see `_stranded`.)"""
    from django.db.models import Q

    from apps.campaigns.models import ACTIVE_RUN_STATES, Message, MessageStatus

    return Message.objects.filter(
        Q(status__in=(MessageStatus.QUEUED, MessageStatus.SENDING))
        | Q(status=MessageStatus.PENDING, run__state__in=ACTIVE_RUN_STATES)
    )


def _stranded(*, campaign_id: int) -> int:
    """Pending messages left in the campaign's cancelled run: triggers stored while it was being
    cancelled, whose task went with the emptied queue. Nothing will send or cancel them."""
    from apps.campaigns.models import Message, MessageStatus, RunState

    return Message.objects.filter(
        status=MessageStatus.PENDING, run__state=RunState.CANCELLED, run__campaign_id=campaign_id
    ).count()


def _in_flight() -> int:
    return _in_flight_messages().count()


def _in_flight_description() -> str:
    """Which messages are still in flight, by campaign, run state and status: what a stuck drain is
    waiting for."""
    from django.db.models import Count

    rows = (
        _in_flight_messages()
        .values_list("run__campaign_id", "run__state", "status")
        .annotate(n=Count("id"))
        .order_by("run__campaign_id", "status")
    )
    return "; ".join(f"campaign {c} (run {state}): {n} {status}" for c, state, status, n in rows)


def drain(platform: Platform, *, timeout: float) -> bool:
    """Waits until no message is left for the platform to act on (`_in_flight_messages`) and the send
    and paging queues are empty; False when that takes longer than `timeout`."""
    from apps.core.redis import get_redis

    redis = get_redis()

    def quiet() -> bool:
        platform.stack.check_alive()
        return _in_flight() == 0 and redis.llen("sends") == 0 and redis.llen("audience") == 0

    try:
        wait_for(quiet, timeout, "the platform to drain", interval=0.5)
    except WaitTimedOut:
        return False
    time.sleep(1.0)
    return True


def discard_backlog(platform: Platform, *, realtime_campaign_id: int) -> int:
    """The platform did not catch up in time: the phase's real-time run is cancelled (its unsent
    messages with it) and the broker's queues emptied, whose tasks would only find cancelled rows, so
    the next phase starts quiet. Returns how many messages were cancelled."""
    from apps.campaigns.models import CampaignRun
    from apps.campaigns.services import campaign_run_cancel
    from apps.core.redis import get_redis

    cancelled = 0
    for run in CampaignRun.objects.filter(client_id=platform.client_id, campaign_id=realtime_campaign_id):
        cancelled += campaign_run_cancel(run=run)
    get_redis().delete("realtime", "sends", "audience")
    return cancelled


def warm_up(platform: Platform, *, args: argparse.Namespace) -> int:
    """Opens every process's connections and fills its caches; returns how many triggers reached the
    provider."""
    _, run = post_triggers(
        platform,
        group="warm",
        campaign_id=REALTIME_CAMPAIGN_BASE_ID,
        rate=WARMUP_RATE,
        seconds=WARMUP_SECONDS,
        connections=args.connections,
    )
    accepted = sum(1 for p in run.posted if p.ok)
    wait_for_arrivals(
        platform.realtime_receiver, group="warm", expected=accepted, until=run.last_scheduled + args.grace
    )
    if not drain(platform, timeout=args.drain_timeout):
        discard_backlog(platform, realtime_campaign_id=REALTIME_CAMPAIGN_BASE_ID)
        drain(platform, timeout=DISCARD_DRAIN_SECONDS)
    return platform.realtime_receiver.count("warm")


# Report
# ------------------------------------------------------------------------------


def report_table(results: list[PhaseResult]) -> str:
    headers = [
        "rate/s",
        "phase",
        "posted",
        "errors",
        "lost",
        "doubled",
        "listener p50 ms",
        "listener p99 ms",
        "to provider p50 ms",
        "to provider p99 ms",
        "campaign sends/s",
    ]
    rows: list[list[str]] = []
    baselines = {r.rate: r for r in results if r.phase == "baseline"}
    for r in results:
        sends = "-"
        if r.campaign_sends is not None and r.window_seconds > 0:
            sends = f"{r.campaign_sends / r.window_seconds:.0f}"
        rows.append(
            [
                str(r.rate),
                r.phase,
                str(r.posted),
                str(r.errors),
                str(r.lost),
                str(r.doubled),
                ms(r.listener_p50_ms),
                ms(r.listener_p99_ms),
                ms(r.trigger_p50_ms),
                ms(r.trigger_p99_ms),
                sends,
            ]
        )
        base = baselines.get(r.rate)
        if r.phase == "loaded" and base is not None:
            rows.append(
                [
                    "",
                    "loaded/baseline",
                    "",
                    "",
                    "",
                    "",
                    ratio(r.listener_p50_ms, base.listener_p50_ms),
                    ratio(r.listener_p99_ms, base.listener_p99_ms),
                    ratio(r.trigger_p50_ms, base.trigger_p50_ms),
                    ratio(r.trigger_p99_ms, base.trigger_p99_ms),
                    "",
                ]
            )
    return table(headers, rows)


def report_notes(results: list[PhaseResult]) -> list[str]:
    notes = []
    for r in results:
        name = f"{r.rate}/s {r.phase}"
        notes.append(
            f"{name}: sent at {r.achieved_rate:.1f}/s; requests started p99 {ms(r.poster_lag_p99_ms)} ms "
            "after their slot (every connection busy, or the poster itself slow)"
        )
        if r.campaign_sends is not None:
            notes.append(
                f"{name}: campaign: {r.campaign_sends} webhooks delivered during the posting window, "
                f"{r.campaign_fetched} customers stored by its end"
            )
        busy = ", ".join(f"{process} {cores:.2f}" for process, cores in r.cores.items() if cores >= 0.01)
        notes.append(f"{name}: cores busy while posting: {busy} (total {sum(r.cores.values()):.2f})")
        if r.error_kinds:
            notes.append(
                f"{name}: errors " + ", ".join(f"{k} x{v}" for k, v in sorted(r.error_kinds.items()))
            )
        if r.lost:
            notes.append(f"{name}: {r.late} of the {r.lost} lost reached the provider after the grace period")
        if r.unexpected:
            notes.append(f"{name}: {r.unexpected} reached the provider although their post failed")
        if not r.drained:
            notes.append(
                f"{name}: the platform had not caught up by the end of --drain-timeout; its "
                f"{r.discarded} unsent real-time messages were cancelled so the next phase starts quiet"
            )
        if r.stuck:
            notes.append(
                f"{name}: still in flight after cancelling, so the next phase was not quiet: {r.stuck}"
            )
        if r.stranded:
            notes.append(
                f"{name}: {r.stranded} triggers stored while their run was being cancelled stayed pending "
                "in the cancelled run"
            )
    return notes


def verdict(results: list[PhaseResult]) -> tuple[list[str], bool | None]:
    """PASS/FAIL against the issue's targets at 200/s, for both phases; None when 200/s was not run."""
    lines = []
    passed: bool | None = None
    for r in results:
        if r.rate != TARGET_RATE:
            continue
        problems = []
        if r.errors:
            problems.append(f"{r.errors} errors")
        if r.listener_p99_ms is None or r.listener_p99_ms >= TARGET_LISTENER_P99_MS:
            problems.append(f"listener p99 {ms(r.listener_p99_ms)} ms (target < {TARGET_LISTENER_P99_MS:g})")
        if r.trigger_p99_ms is None or r.trigger_p99_ms >= TARGET_TRIGGER_P99_MS:
            problems.append(
                f"trigger-to-provider p99 {ms(r.trigger_p99_ms)} ms (target < {TARGET_TRIGGER_P99_MS:g})"
            )
        if r.lost:
            problems.append(f"{r.lost} lost")
        if r.doubled:
            problems.append(f"{r.doubled} doubled")
        ok = not problems
        passed = ok if passed is None else passed and ok
        lines.append(f"  {r.rate}/s {r.phase}: " + ("PASS" if ok else "FAIL: " + "; ".join(problems)))
    return lines, passed


# Main
# ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rates", default="50,200,500", help="notifications per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="posting time per phase")
    parser.add_argument(
        "--campaign-size", type=int, default=100_000, help="customers in the loaded phase's campaign"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds after the last post before a trigger counts as lost",
    )
    # 16: at 500/s a 32 ms answer keeps 16 requests in flight; fewer would make the poster the limit.
    parser.add_argument("--connections", type=int, default=16, help="the poster's keep-alive connections")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=20.0,
        help="seconds after the grace period for the platform to finish a phase's messages",
    )
    parser.add_argument(
        "--fast-db", action="store_true", help="PostgreSQL without fsync (default: durable, as in production)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary folder (logs, data) at the end"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    try:
        args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--rates must be whole numbers separated by commas, got {args.rates!r}")
    if not args.rates or any(not 1 <= r <= 5000 for r in args.rates):
        parser.error("--rates must list rates between 1 and 5000 per second")
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be between 1 and 600")
    if not 1 <= args.campaign_size <= 10_000_000:
        parser.error("--campaign-size must be between 1 and 10,000,000")
    if not 0 < args.grace <= 600:
        parser.error("--grace must be between 0 and 600 seconds")
    if not 1 <= args.connections <= 256:
        parser.error("--connections must be between 1 and 256")
    if not 0 < args.drain_timeout <= 3600:
        parser.error("--drain-timeout must be between 0 and 3600 seconds")
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json: folder {args.json.parent} does not exist")
    return args


def run(args: argparse.Namespace) -> list[PhaseResult]:
    stack = Stack(durable_db=not args.fast_db, keep=args.keep)
    try:
        started = clock()
        platform = start_platform(stack)
        arrived = warm_up(platform, args=args)
        print(
            f"Set-up {clock() - started:.0f} s; warm-up: {arrived} of {WARMUP_RATE * WARMUP_SECONDS} "
            "triggers reached the provider",
            flush=True,
        )
        if arrived == 0:
            print(
                "  warning: no real-time trigger reached the provider; is EventTypeID 11 handled?", flush=True
            )
        results: list[PhaseResult] = []
        for rate in args.rates:
            for phase in ("baseline", "loaded"):
                scheduled_campaign_id = None
                if phase == "loaded":
                    scheduled_campaign_id = SCHEDULED_CAMPAIGN_BASE_ID + len(results)
                    _campaign_fire(
                        platform,
                        campaign_id=scheduled_campaign_id,
                        size=args.campaign_size,
                        seconds=args.seconds,
                    )
                result = run_phase(
                    platform,
                    rate=rate,
                    phase=phase,
                    args=args,
                    realtime_campaign_id=REALTIME_CAMPAIGN_BASE_ID + 1 + len(results),
                    scheduled_campaign_id=scheduled_campaign_id,
                )
                results.append(result)
                print(
                    f"{rate}/s {phase}: listener p99 {ms(result.listener_p99_ms)} ms, to provider p99 "
                    f"{ms(result.trigger_p99_ms)} ms, {result.errors} errors, {result.lost} lost, "
                    f"{result.doubled} doubled",
                    flush=True,
                )
        return results
    finally:
        stack.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"Real-time listener benchmark: {machine_description()}", flush=True)
    print(
        f"Rates {', '.join(map(str, args.rates))}/s, {args.seconds:g} s per phase, campaign of "
        f"{args.campaign_size:,} customers, {'durable' if not args.fast_db else 'no-fsync'} PostgreSQL",
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
        "Times from each notification's slot in the open-loop schedule: listener = until its answer was "
        "read, to provider = until the real-time webhook arrived."
    )
    print(report_table(results))
    print()
    for note in report_notes(results):
        print(f"- {note}")
    lines, passed = verdict(results)
    print()
    print(
        f"Targets at {TARGET_RATE}/s: listener p99 < {TARGET_LISTENER_P99_MS:g} ms, trigger-to-provider "
        f"p99 < {TARGET_TRIGGER_P99_MS:g} ms, no error, nothing lost or doubled"
    )
    print("\n".join(lines) if lines else f"  not measured ({TARGET_RATE} is not among --rates)")
    if passed is not None:
        print(f"Overall: {'PASS' if passed else 'FAIL'}")
    print(f"Total time {clock() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine_description(),
                    "arguments": {k: str(v) for k, v in vars(args).items()},
                    "phases": [asdict(r) for r in results],
                    "passed": passed,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
