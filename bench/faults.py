"""The fault suite (issue 7): a scheduled campaign delivered while things break.

    .venv/bin/python bench/faults.py [--customers 100000] [--window 60] [--timeout 1200]

Starts a private PostgreSQL and Redis, migrates a fresh database, and runs the platform as production
would (its production settings, its DEFAULT retry policy unless `--setting` says otherwise): gunicorn
serving the listener, a Celery worker for `sends,audience` (concurrency 2), a control worker for
`realtime` (the dispatcher and the sweeper, concurrency 2), and beat. The sandbox plays Optimove from its
own gunicorn and answers `--sandbox-fault-rate` (20 %) of the platform's calls with 429, 500, 502 or 503.
A provider stand-in in its own process receives the signed webhooks and answers `--receiver-fault-rate`
(10 %) of them, drawn per request, with 500, 502 or 503.

The sandbox fires one scheduled campaign (EventTypeID 13) of `--customers` customers, their send times
spread over the first `--window` seconds. As the deliveries progress (share of customers the receiver
has accepted), the harness:
- at 10 %: kills the sends worker with SIGKILL (the main process and its pool children) and starts a
  replacement, as an operator's supervisor would;
- at 25 %: restarts Redis on the same port (stopped, down `--redis-down` seconds, started again), once
  the broker holds queued tasks (or after REDIS_WAIT_FOR_QUEUED_SECONDS); without `--redis-persist` it
  keeps nothing, so those tasks are lost and only the database knows what was in flight;
- at 40 %: cuts every PostgreSQL connection of the platform's processes (pg_terminate_backend from a
  separate superuser connection; the platform's processes are told apart by their application_name).
  Celery closes a worker's connections after every task, so the cut hits the tasks running at that
  moment, plus the connections web and beat keep;
- at 55 %: kills the control worker (dispatcher, sweeper) with SIGKILL and starts a replacement;
- at 70 %: kills one pool child (the busiest) of the sends worker with SIGKILL; Celery's pool replaces it.
A platform process that exits by itself is restarted too, and counts as a failed check.

Then it waits until the run is over (every customer fetched and no message left pending, queued or
sending) or `--timeout` seconds after the notification, and checks: every customer was delivered (the
receiver answered 2xx at least once); no message is left pending, queued or sending; none ended failed;
every repeat delivery of a customer carried the same Idempotency-Key as its first (and as the message's
stored key); the run completed; every planned fault was injected; no platform process died by itself.
It prints the fault timeline and the counts: deliveries and repeats (after a 5xx answer, or after a 2xx
one, that is a repeat of a delivery the platform did not record: a crash or a cut connection), messages
by status, Optimove calls and how many were answered with a fault.

Exit status: 0 when every check passed, 2 when one failed, 1 when the harness itself broke, 130 when
interrupted. Everything started is stopped and the temporary folder removed in every case (`--keep`
keeps it, with every process's log).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import secrets
import signal
import sys
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    Answered,
    FlakyReceiver,
    HarnessError,
    ManagedProcess,
    Stack,
    WaitTimedOut,
    clock,
    interrupts_as_keyboard_interrupt,
    machine_description,
    table,
    wait_for,
)
from bench.realtime_listener import configure_django, wait_for_workers  # noqa: E402
from tools.devservers import free_port  # noqa: E402

CHANNEL_ID = 510
TEMPLATE_IDS = (14, 15, 16)
CAMPAIGN_ID = 7001
SANDBOX_FAULT_STATUSES = (429, 500, 502, 503)
RECEIVER_FAULT_STATUSES = (500, 502, 503)
PLATFORM_SETTINGS = "config.settings.production"
# Every platform process connects to PostgreSQL under an application_name with this prefix (libpq reads
# PGAPPNAME), so the connection cut hits them and neither the sandbox (Optimove) nor this harness.
PLATFORM_APP_PREFIX = "platform:"
HARNESS_APP_NAME = "bench-faults"
SEND_WORKER_CONCURRENCY = 2
CONTROL_WORKER_CONCURRENCY = 2
PROGRESS_EVERY_SECONDS = 15.0
POLL_SECONDS = 0.25
DONE_CHECK_SECONDS = 2.0
# Faults come at least this far apart, so each one's effect shows on its own in a small, fast run.
FAULT_MIN_GAP_SECONDS = 3.0
# Redis is restarted when the broker holds tasks waiting in a queue, so the restart loses some; when the
# queues stay empty this long (the workers keep up), it is restarted anyway.
REDIS_WAIT_FOR_QUEUED_SECONDS = 10.0
# After the run is over, deliveries still in flight (a batch whose messages the sweeper had already put
# back) may arrive: the answers are read once no new request came for this long.
SETTLE_QUIET_SECONDS = 3.0
SETTLE_MAX_SECONDS = 60.0
# The settings that decide what a fault costs; printed with their values.
POLICY_SETTINGS = (
    "MESSAGE_MAX_ATTEMPTS",
    "MESSAGE_RETRY_BASE_SECONDS",
    "MESSAGE_RETRY_MAX_SECONDS",
    "MESSAGE_SENDING_TIMEOUT_SECONDS",
    "MESSAGE_QUEUED_TIMEOUT_SECONDS",
    "PAGING_STALL_SECONDS",
    "PAGING_MAX_ATTEMPTS",
    "SWEEP_INTERVAL_SECONDS",
    "DISPATCH_INTERVAL_SECONDS",
    "SEND_BATCH_SIZE",
    "OPTIMOVE_PAGE_SIZE",
    "OPTIMOVE_MAX_RETRIES",
    "OPTIMOVE_BACKOFF_BASE_SECONDS",
    "OPTIMOVE_BACKOFF_MAX_SECONDS",
    "CELERY_TASK_ACKS_LATE",
    "CELERY_TASK_REJECT_ON_WORKER_LOST",
    "CELERY_BROKER_TRANSPORT_OPTIONS",
)
SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# What the harness itself sets for the processes it starts: `--setting` may not change these.
RESERVED_SETTINGS = frozenset(
    {
        "CELERY_BROKER_URL",
        "DATABASE_URL",
        "DJANGO_ALLOWED_HOSTS",
        "DJANGO_DEBUG",
        "DJANGO_SECRET_KEY",
        "DJANGO_SETTINGS_MODULE",
        "FIELD_ENCRYPTION_KEYS",
        "PGAPPNAME",
        "PROMETHEUS_MULTIPROC_DIR",
        "PUBLIC_BASE_URL",
        "PYTHONPATH",
        "REDIS_URL",
        "SANDBOX_ENABLED",
    }
)


# The plan
# ------------------------------------------------------------------------------

KILL_WORKER = "kill-worker"
KILL_POOL_CHILD = "kill-pool-child"
RESTART_REDIS = "restart-redis"
CUT_POSTGRES = "cut-postgres"
SENDS = "sends"
CONTROL = "control"


@dataclass(frozen=True, slots=True)
class Fault:
    at_fraction: float  # injected once this share of the customers has been delivered
    kind: str
    target: str = ""  # for kills: which worker (SENDS or CONTROL)

    def describe(self) -> str:
        what = {
            KILL_WORKER: f"SIGKILL the {self.target} worker (main process and pool children)",
            KILL_POOL_CHILD: f"SIGKILL a pool child of the {self.target} worker",
            RESTART_REDIS: "restart Redis",
            CUT_POSTGRES: "cut the platform's PostgreSQL connections",
        }[self.kind]
        return f"{self.at_fraction:.0%} delivered: {what}"


DEFAULT_PLAN = (
    Fault(0.10, KILL_WORKER, SENDS),
    Fault(0.25, RESTART_REDIS),
    Fault(0.40, CUT_POSTGRES),
    Fault(0.55, KILL_WORKER, CONTROL),
    Fault(0.70, KILL_POOL_CHILD, SENDS),
)


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the timeline: what the harness did (or saw) and when."""

    at: float  # seconds since the notification was fired
    what: str
    detail: str = ""
    delivered: int = 0  # customers delivered at that moment
    fault: bool = False  # one of the planned faults (not a restart or an observation)


# Figures and checks (plain functions of what was recorded: tests/bench/test_faults.py tests them)
# ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryFigures:
    customers: int  # expected (the campaign's audience)
    delivered: int  # of those, answered 2xx at least once
    requests: int  # every webhook that reached the receiver
    answered_ok: int
    answered_fault: int  # answered with an injected 5xx
    repeats: int  # requests beyond each customer's first
    repeats_after_fault: int  # the previous request for that customer was answered 5xx: a retry
    repeats_after_ok: int  # the previous one was answered 2xx: a repeat after a crash or a cut
    customers_repeated_after_ok: int
    undelivered: tuple[str, ...]  # expected customers never answered 2xx
    key_mismatches: tuple[str, ...]  # customers whose requests carried more than one key, or not theirs
    unknown_customers: tuple[str, ...]  # requests for customers the campaign does not have


def analyse_deliveries(
    *, expected: Collection[str], answered: Iterable[Answered], stored_keys: Mapping[str, str]
) -> DeliveryFigures:
    """Sorts every answered request by customer and arrival time. A repeat is classified by the answer
    its predecessor got: after a 5xx the platform was right to retry; after a 2xx it sent again a
    delivery it had not recorded (its worker died, its connection was cut), which the same key lets the
    receiver drop."""
    by_customer: defaultdict[str, list[Answered]] = defaultdict(list)
    requests = ok = 0
    for item in answered:
        by_customer[item.customer_id].append(item)
        requests += 1
        ok += item.ok
    expected_set = set(expected)
    after_fault = after_ok = 0
    repeated_after_ok: set[str] = set()
    mismatches: list[str] = []
    for customer, items in by_customer.items():
        items.sort(key=lambda a: a.at)
        for previous, _ in itertools.pairwise(items):
            if previous.ok:
                after_ok += 1
                repeated_after_ok.add(customer)
            else:
                after_fault += 1
        keys = {a.key for a in items}
        stored = stored_keys.get(customer)
        if len(keys) != 1 or (stored is not None and keys != {stored}):
            mismatches.append(customer)
    delivered = {c for c, items in by_customer.items() if c in expected_set and any(a.ok for a in items)}
    return DeliveryFigures(
        customers=len(expected_set),
        delivered=len(delivered),
        requests=requests,
        answered_ok=ok,
        answered_fault=requests - ok,
        repeats=requests - len(by_customer),
        repeats_after_fault=after_fault,
        repeats_after_ok=after_ok,
        customers_repeated_after_ok=len(repeated_after_ok),
        undelivered=tuple(sorted(expected_set - delivered)),
        key_mismatches=tuple(sorted(mismatches)),
        unknown_customers=tuple(sorted(set(by_customer) - expected_set)),
    )


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


def _sample(values: Sequence[str], n: int = 10) -> str:
    shown = ", ".join(values[:n])
    return shown + (f" and {len(values) - n} more" if len(values) > n else "")


def evaluate_checks(
    *,
    figures: DeliveryFigures,
    statuses: Mapping[str, int],
    run_state: str,
    planned: Sequence[Fault],
    injected: Sequence[Fault],
    unexpected_exits: Sequence[str],
) -> list[Check]:
    """The suite's verdict, one check per promise the platform makes."""
    stored = sum(statuses.values())
    in_flight = {s: statuses.get(s, 0) for s in ("pending", "queued", "sending")}
    not_injected = [f.describe() for f in planned if f not in injected]
    return [
        Check(
            "every customer delivered (a 2xx answer at least once)",
            figures.delivered == figures.customers and not figures.unknown_customers,
            f"{figures.delivered:,} of {figures.customers:,}"
            + (f"; never accepted: {_sample(figures.undelivered)}" if figures.undelivered else "")
            + (
                f"; requests for customers not in the campaign: {_sample(figures.unknown_customers)}"
                if figures.unknown_customers
                else ""
            ),
        ),
        Check(
            "one message stored per customer",
            stored == figures.customers,
            f"{stored:,} messages for {figures.customers:,} customers",
        ),
        Check(
            "none left pending, queued or sending",
            not any(in_flight.values()),
            ", ".join(f"{n:,} {s}" for s, n in in_flight.items()),
        ),
        Check("none failed", statuses.get("failed", 0) == 0, f"{statuses.get('failed', 0):,} failed"),
        Check(
            "every message ended sent",
            statuses.get("sent", 0) == figures.customers == stored,
            ", ".join(f"{n:,} {s}" for s, n in sorted(statuses.items())) or "no messages",
        ),
        Check(
            "every repeat carried the first delivery's Idempotency-Key (the stored one)",
            not figures.key_mismatches,
            f"{len(figures.key_mismatches):,} customers with another key"
            + (f": {_sample(figures.key_mismatches)}" if figures.key_mismatches else ""),
        ),
        Check("the run completed", run_state == "completed", f"run state {run_state or 'missing'}"),
        Check(
            "every planned fault was injected",
            not not_injected,
            f"{len(injected)} of {len(planned)}"
            + (f"; not injected: {'; '.join(not_injected)}" if not_injected else ""),
        ),
        Check(
            "no platform process died by itself",
            not unexpected_exits,
            "; ".join(unexpected_exits) or "none",
        ),
    ]


def retry_policy_description(*, max_attempts: int, base: float, cap: float) -> str:
    """The waits between a message's attempts (apps.campaigns.services._retry_delay: base * 2**(n-1),
    capped, then jittered to between half and the whole of it; a Retry-After longer than that wins)."""
    waits = []
    for attempt in range(1, max_attempts):
        delay = min(cap, base * 2 ** (attempt - 1))
        waits.append(f"{delay / 2:g}-{delay:g} s")
    return (
        f"at most {max_attempts} attempts; waits between them: {', '.join(waits) or 'none'} "
        f"(base {base:g} s doubling, capped at {cap:g} s, jittered to half..whole)"
    )


# The platform under test
# ------------------------------------------------------------------------------


@dataclass
class Role:
    """One platform process as a supervisor sees it: how to start it again, and its current process."""

    name: str
    env: dict[str, str]
    args: list[str]
    current: ManagedProcess
    generation: int = 1


@dataclass
class Platform:
    stack: Stack
    receiver: FlakyReceiver
    roles: dict[str, Role]
    account_id: int
    policy: dict[str, Any]
    overridden: dict[str, str]
    harness_children: list[ManagedProcess] = field(default_factory=list)  # the sandbox's gunicorn


def platform_env(stack: Stack, role: str, overrides: Mapping[str, str]) -> dict[str, str]:
    return stack.env(
        DJANGO_SETTINGS_MODULE=PLATFORM_SETTINGS,
        SANDBOX_ENABLED="false",
        PGAPPNAME=f"{PLATFORM_APP_PREFIX}{role}",
        PROMETHEUS_MULTIPROC_DIR=str(stack.root / "metrics"),
        **overrides,
    )


def create_tenant(*, sandbox_base: str, hook_url: str) -> int:
    """One client with a scheduled webhook channel (510, templates 14-16) and the sandbox account that
    plays its Optimove (its id is returned); listeners registered there. Templates are made with the
    ORM: pushing them to Optimove (the template outbox) is not what this suite is about."""
    from apps.clients.models import Channel, ChannelKind, Client
    from apps.message_templates.models import MessageTemplate
    from apps.optimove.listeners import listeners_sync
    from apps.sandbox.models import SandboxAccount

    account = SandboxAccount.objects.create(name="faults")
    client = Client.objects.create(
        slug="faults", name="Faults", optimove_base_url=sandbox_base, optimove_api_key=account.api_key
    )
    channel = Channel.objects.create(
        client=client,
        name="Webhook",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=CHANNEL_ID,
        provider="webhook",
        provider_options={"url": hook_url},
        provider_secrets={"signing_secret": secrets.token_urlsafe(16)},
    )
    for template_id in TEMPLATE_IDS:
        MessageTemplate.objects.create(
            client=client,
            channel=channel,
            template_id=template_id,
            name=f"Hook {template_id}",
            payload={
                "greeting": "Hi {{ FirstName }}",
                "country": "{{ Country }}",
                "template": str(template_id),
            },
        )
    listeners_sync(client=client)
    return account.pk


def _start_role(stack: Stack, name: str, args: list[str], env: dict[str, str]) -> Role:
    return Role(name=name, env=env, args=args, current=stack.spawn(name, args, env))


def start_platform(stack: Stack, args: argparse.Namespace, overrides: dict[str, str]) -> Platform:
    from django.conf import settings

    from tools.devservers import celery_worker_command, gunicorn_command

    stack.start_services()
    platform_port, sandbox_port = free_port(), free_port()
    platform_base = f"http://127.0.0.1:{platform_port}"
    # This process's own connections (set-up, figures) are not the platform's: the cut spares them.
    os.environ["PGAPPNAME"] = HARNESS_APP_NAME
    os.environ.update(overrides)  # so the policy printed below is the platform's
    configure_django(stack, platform_base=platform_base)
    policy = {name: getattr(settings, name, None) for name in POLICY_SETTINGS}
    receiver = FlakyReceiver(
        stack,
        "receiver",
        fault_rate=args.receiver_fault_rate,
        fault_statuses=RECEIVER_FAULT_STATUSES,
        seed=args.seed,
    )
    sandbox_base = stack.start_gunicorn(
        "sandbox", workers=1, threads=4, env=stack.env(PGAPPNAME="sandbox"), port=sandbox_port
    )
    roles: dict[str, Role] = {}
    web_env = platform_env(stack, "web", overrides)
    roles["web"] = _start_role(
        stack, "web", gunicorn_command(port=platform_port, workers=1, threads=4), web_env
    )
    _wait_for_web(stack, platform_port)
    account_id = create_tenant(sandbox_base=sandbox_base, hook_url=receiver.url)
    for role, queues, concurrency in (
        (SENDS, "sends,audience", SEND_WORKER_CONCURRENCY),
        (CONTROL, "realtime", CONTROL_WORKER_CONCURRENCY),
    ):
        name = f"worker-{role}"
        roles[name] = _start_role(
            stack,
            name,
            celery_worker_command(name=name, queues=queues, concurrency=concurrency),
            platform_env(stack, name, overrides),
        )
    wait_for_workers(stack, ["realtime", "sends", "audience"])
    beat_args = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "config",
        "beat",
        "--loglevel",
        "INFO",
        "-s",
        str(stack.root / "beat-schedule"),
    ]
    roles["beat"] = _start_role(stack, "beat", beat_args, platform_env(stack, "beat", overrides))
    beat = roles["beat"].current
    wait_for(
        lambda: _alive_or_raise(beat) and "Sending due task" in beat.log_tail(200_000),
        60,
        "celery beat's first tick",
    )
    return Platform(
        stack=stack,
        receiver=receiver,
        roles=roles,
        account_id=account_id,
        policy=policy,
        overridden=overrides,
    )


def _alive_or_raise(process: ManagedProcess) -> bool:
    if not process.alive():
        raise HarnessError(
            f"{process.name} exited with status {process.process.returncode} while starting; "
            f"the end of its log:\n{process.log_tail()}"
        )
    return True


def _wait_for_web(stack: Stack, port: int) -> None:
    import http.client

    def up() -> bool:
        for process in stack.processes:
            _alive_or_raise(process)
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False

    wait_for(up, 60, "the platform's web server to answer /healthz")


def fire_campaign(platform: Platform, *, customers: int, window: int, seed: int) -> datetime:
    """Fires the campaign from the sandbox, its send times spread over `window` seconds from the next
    whole second; returns when the notification went."""
    from apps.sandbox.models import SandboxAccount, SandboxCampaign
    from apps.sandbox.services import sandbox_fire

    account = SandboxAccount.objects.get(pk=platform.account_id)
    step = max(1, window // 60)
    SandboxCampaign.objects.create(
        account=account,
        campaign_id=CAMPAIGN_ID,
        channel_id=CHANNEL_ID,
        size=customers,
        seed=seed,
        template_ids=list(TEMPLATE_IDS),
        send_offsets_seconds=list(range(0, window, step)) if window > 0 else [0],
        attributes={"FirstName": "first_name", "Country": "country"},
        # ScheduledTime has whole seconds: start on the next one, so "now" is not already past.
        base_time=datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1),
    )
    fired_at = datetime.now(UTC)
    notifications = sandbox_fire(
        account=account, event_type_id=13, campaign_id=CAMPAIGN_ID, channel_id=CHANNEL_ID
    )
    if [n.status_code for n in notifications] != [200]:
        raise HarnessError(
            "the listener did not accept the campaign's notification: "
            f"{[(n.status_code, n.error) for n in notifications]}"
        )
    return fired_at


def enable_sandbox_faults(platform: Platform, *, rate: float) -> None:
    from apps.sandbox.models import SandboxAccount

    SandboxAccount.objects.filter(pk=platform.account_id).update(
        fault_rate=rate, fault_statuses=list(SANDBOX_FAULT_STATUSES)
    )


# Injecting the faults
# ------------------------------------------------------------------------------


class Injector:
    """Injects the planned faults and plays the supervisor: a worker it killed, or a platform process
    that died by itself, is started again under a new name (the old log stays)."""

    def __init__(self, platform: Platform, *, started: float, redis_down: float) -> None:
        self.platform = platform
        self.started = started
        self.redis_down = redis_down
        self.events: list[Event] = []
        self.injected: list[Fault] = []
        self.unexpected_exits: list[str] = []
        self.delivered = 0
        self._redis_first_try: float | None = None

    def log(self, what: str, detail: str = "", *, fault: bool = False) -> None:
        event = Event(round(clock() - self.started, 1), what, detail, self.delivered, fault)
        self.events.append(event)
        print(f"  t={event.at:7.1f} s  [{event.delivered:,} delivered]  {what}: {detail}", flush=True)

    # Supervision

    def supervise(self) -> None:
        for process in self.platform.harness_children:
            if not process.alive():
                raise HarnessError(f"{process.name} exited with status {process.process.returncode}")
        if not self.platform.receiver.process.is_alive():
            raise HarnessError("the receiver exited")
        for role in self.platform.roles.values():
            current = role.current
            if current.alive():
                continue
            summary = f"{current.name} exited by itself with status {current.process.returncode}"
            self.unexpected_exits.append(summary)
            self.log("platform process died", f"{summary}; the end of its log:\n{current.log_tail(1500)}")
            self._respawn(role)

    def _respawn(self, role: Role) -> ManagedProcess:
        with contextlib.suppress(ValueError):
            self.platform.stack.processes.remove(role.current)
        role.generation += 1
        name = f"{role.name}-{role.generation}"
        args = [a.replace(f"{role.name}@", f"{name}@") for a in role.args]  # a Celery node name of its own
        role.current = self.platform.stack.spawn(name, args, role.env)
        self.log("started a replacement", f"{name} (pid {role.current.process.pid})")
        return role.current

    # The faults

    def inject(self, fault: Fault) -> bool:
        """True when done; False when it cannot be done yet (a worker without pool children, still
        starting), to be tried again on the next poll."""
        if fault.kind == KILL_WORKER:
            done = self._kill_worker(fault.target)
        elif fault.kind == KILL_POOL_CHILD:
            done = self._kill_pool_child(fault.target)
        elif fault.kind == RESTART_REDIS:
            done = self._restart_redis()
        elif fault.kind == CUT_POSTGRES:
            done = self._cut_postgres()
        else:
            raise HarnessError(f"unknown fault {fault.kind!r}")
        if done:
            self.injected.append(fault)
        return done

    def _kill_worker(self, target: str) -> bool:
        role = self.platform.roles[f"worker-{target}"]
        victim = role.current
        members = _group_members(victim.process.pid)
        if len(members) < 2:
            return False  # not up yet: no pool
        in_flight = _in_flight_counts()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(victim.process.pid, signal.SIGKILL)
        victim.process.wait(timeout=30)
        self.platform.stack.processes.remove(victim)
        self.log(
            "SIGKILL worker",
            f"{victim.name}: main pid {victim.process.pid} and {len(members) - 1} pool children; "
            f"messages at that moment: {in_flight}",
            fault=True,
        )
        self._respawn(role)
        return True

    def _kill_pool_child(self, target: str) -> bool:
        role = self.platform.roles[f"worker-{target}"]
        worker = role.current
        children = [pid for pid in _group_members(worker.process.pid) if pid != worker.process.pid]
        if not children:
            return False
        victim = _busiest(children)
        in_flight = _in_flight_counts()
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return False  # it ended meanwhile; try again
        self.log(
            "SIGKILL pool child",
            f"pid {victim} of {worker.name} (the busiest of {len(children)}); the worker's pool replaces "
            f"it; messages at that moment: {in_flight}",
            fault=True,
        )
        return True

    def _restart_redis(self) -> bool:
        server = self.platform.stack.redis
        before = _queue_lengths(server.url)
        if self._redis_first_try is None:
            self._redis_first_try = clock()
        queued = sum(int(before.get(q, 0)) for q in ("sends", "audience"))
        if not queued and clock() - self._redis_first_try < REDIS_WAIT_FOR_QUEUED_SECONDS:
            return False
        stopped = clock()
        server.stop()
        time.sleep(self.redis_down)
        try:
            server.start()
        except RuntimeError as exc:
            raise HarnessError(f"Redis did not start again: {exc}") from exc
        after = _queue_lengths(server.url)
        kept = "persistence on: saved at shutdown, loaded at start" if server.persist else "no persistence"
        self.log(
            "restarted Redis",
            f"down {clock() - stopped:.1f} s on port {server.port} ({kept}); broker queues before "
            f"{before}, after {after}",
            fault=True,
        )
        return True

    def _cut_postgres(self) -> bool:
        import psycopg

        with psycopg.connect(
            self.platform.stack.postgres.url, application_name=f"{HARNESS_APP_NAME}:cut", autocommit=True
        ) as connection:
            rows = connection.execute(
                """
                SELECT application_name, pg_terminate_backend(pid)
                  FROM pg_stat_activity
                 WHERE application_name LIKE %s AND pid <> pg_backend_pid()
                """,
                [PLATFORM_APP_PREFIX + "%"],
            ).fetchall()
        terminated = Counter(str(name) for name, ok in rows if ok)
        if not terminated:
            return False  # the processes are between connections: try again on the next poll
        self.log(
            "cut PostgreSQL connections",
            f"pg_terminate_backend on {sum(terminated.values())} connections: "
            + ", ".join(
                f"{name.removeprefix(PLATFORM_APP_PREFIX)} {n}" for name, n in sorted(terminated.items())
            ),
            fault=True,
        )
        return True


def _group_members(pgid: int) -> list[int]:
    """The live processes of a process group (a Celery worker's main process and its pool children)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _busiest(pids: Sequence[int]) -> int:
    """The process that used the most CPU over a short look: the one most likely in the middle of a
    batch."""
    before = {pid: _cpu_ticks(pid) for pid in pids}
    time.sleep(0.3)
    return max(pids, key=lambda pid: _cpu_ticks(pid) - before[pid])


def _queue_lengths(url: str) -> dict[str, int | str]:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        lengths: dict[str, int | str] = {q: int(client.llen(q)) for q in ("sends", "audience", "realtime")}
        # Tasks handed to a worker and not yet acknowledged (kombu's Redis transport keeps them here).
        lengths["unacked"] = int(client.hlen("unacked"))
        lengths["keys"] = int(client.dbsize())
        return lengths
    except redis.RedisError as exc:
        return {"error": type(exc).__name__}
    finally:
        client.close()


def _in_flight_counts() -> str:
    from django.db.models import Count

    from apps.campaigns.models import Message

    counts = dict(
        Message.objects.filter(status__in=("pending", "queued", "sending"))
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return ", ".join(f"{counts.get(s, 0):,} {s}" for s in ("pending", "queued", "sending"))


# Watching the run
# ------------------------------------------------------------------------------


def status_counts() -> dict[str, int]:
    from django.db.models import Count

    from apps.campaigns.models import CampaignRun, Message

    run = CampaignRun.objects.filter(campaign_id=CAMPAIGN_ID).first()
    if run is None:
        return {}
    return dict(
        Message.objects.filter(run=run)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )


def run_is_over() -> bool:
    """Every customer fetched, and no message left for the platform to act on."""
    from apps.campaigns.models import CampaignRun, Message

    run = CampaignRun.objects.filter(campaign_id=CAMPAIGN_ID).first()
    if run is None or not run.paging_done:
        return False
    return not Message.objects.filter(run=run, status__in=("pending", "queued", "sending")).exists()


def watch(
    platform: Platform, injector: Injector, *, plan: Sequence[Fault], customers: int, timeout: float
) -> bool:
    """Injects the plan as deliveries progress and waits for the run to be over; False on timeout."""
    pending = list(plan)
    deadline = injector.started + timeout
    next_progress = injector.started + PROGRESS_EVERY_SECONDS
    next_done_check = clock()
    last_fault = -FAULT_MIN_GAP_SECONDS
    while clock() < deadline:
        injector.supervise()
        injector.delivered = platform.receiver.delivered()
        now = clock()
        if (
            pending
            and injector.delivered >= pending[0].at_fraction * customers
            and now - last_fault >= FAULT_MIN_GAP_SECONDS
            and injector.inject(pending[0])
        ):
            pending.pop(0)
            last_fault = clock()
            continue  # the next fault waits for its own threshold, read afresh
        if now >= next_progress:
            next_progress = now + PROGRESS_EVERY_SECONDS
            counts = status_counts()
            injector.log(
                "progress",
                ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items())) or "no messages stored yet",
            )
        if not pending and now >= next_done_check:
            next_done_check = now + DONE_CHECK_SECONDS
            if run_is_over():
                injector.log("run over", "every customer fetched; no message pending, queued or sending")
                return True
        time.sleep(POLL_SECONDS)
    injector.log("timed out", f"the run was not over {timeout:g} s after the notification")
    return False


def settle(receiver: FlakyReceiver) -> None:
    """Waits until no webhook has arrived for SETTLE_QUIET_SECONDS (a straggler from a batch the
    sweeper had put back counts too)."""
    last = receiver.answered_count()
    quiet_since = clock()
    give_up = clock() + SETTLE_MAX_SECONDS
    while clock() - quiet_since < SETTLE_QUIET_SECONDS and clock() < give_up:
        time.sleep(0.5)
        now = receiver.answered_count()
        if now != last:
            last, quiet_since = now, clock()


# Results
# ------------------------------------------------------------------------------


@dataclass
class Result:
    customers: int
    window: int
    seconds: float  # from the notification until the run was over (or the timeout)
    over: bool
    figures: DeliveryFigures
    statuses: dict[str, int]
    run_state: str
    run_error: str
    optimove_calls: dict[str, dict[str, int]]  # function -> status -> calls, since the notification
    events: list[Event]
    checks: list[Check]
    policy: dict[str, Any]
    overridden: dict[str, str]
    log_errors: dict[str, int]  # error lines per process log
    stuck_samples: list[str]  # messages not sent: status, attempts, error (no personal data)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def optimove_calls(*, account_id: int, since: datetime) -> dict[str, dict[str, int]]:
    from django.db.models import Count

    from apps.sandbox.models import SandboxCall

    calls: defaultdict[str, dict[str, int]] = defaultdict(dict)
    rows = (
        SandboxCall.objects.filter(account_id=account_id, received_at__gte=since)
        .values_list("function", "status")
        .annotate(n=Count("id"))
    )
    for function, status, n in rows:
        calls[function][str(status)] = n
    return dict(calls)


def _stuck_samples(limit: int = 10) -> list[str]:
    """What became of messages that were not sent: their status, attempts, error and history's
    statuses. Customer ids are the sandbox's generated ones; no attributes are shown."""
    from apps.campaigns.models import Message

    samples = []
    for message in Message.objects.exclude(status="sent").order_by("id")[:limit]:
        steps = " > ".join(str(h.get("status")) for h in message.history if isinstance(h, dict))
        samples.append(
            f"customer {message.customer_id}: {message.status} after {message.attempts} attempts, "
            f"error {message.error[:200]!r}, history {steps}"
        )
    return samples


def _log_errors(stack: Stack) -> dict[str, int]:
    """Error lines in each platform process's log (the sandbox's are its injected faults)."""
    errors = {}
    for path in sorted(stack.logs.glob("*.log")):
        if path.stem == "sandbox":
            continue
        text = path.read_text(errors="replace")
        n = sum(
            1
            for line in text.splitlines()
            if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line or "ERROR/" in line
        )
        if n:
            errors[path.stem] = n
    return errors


def collect(
    platform: Platform,
    injector: Injector,
    *,
    plan: Sequence[Fault],
    customers: int,
    window: int,
    seed: int,
    fired_at: datetime,
    seconds: float,
    over: bool,
) -> Result:
    from apps.campaigns.models import CampaignRun, Message
    from apps.sandbox.generator import customer_id_for

    run = CampaignRun.objects.filter(campaign_id=CAMPAIGN_ID).first()
    stored_keys = dict(Message.objects.values_list("customer_id", "idempotency_key"))
    figures = analyse_deliveries(
        expected=[customer_id_for(seed=seed, index=i) for i in range(customers)],
        answered=platform.receiver.answered(),
        stored_keys=stored_keys,
    )
    statuses = status_counts()
    checks = evaluate_checks(
        figures=figures,
        statuses=statuses,
        run_state=run.state if run else "",
        planned=plan,
        injected=injector.injected,
        unexpected_exits=injector.unexpected_exits,
    )
    return Result(
        customers=customers,
        window=window,
        seconds=seconds,
        over=over,
        figures=figures,
        statuses=statuses,
        run_state=run.state if run else "",
        run_error=run.error if run else "",
        optimove_calls=optimove_calls(account_id=platform.account_id, since=fired_at),
        events=injector.events,
        checks=checks,
        policy=platform.policy,
        overridden=platform.overridden,
        log_errors=_log_errors(platform.stack),
        stuck_samples=_stuck_samples(),
    )


def report(result: Result) -> str:
    f = result.figures
    lines = ["", "Fault timeline (t = seconds after the notification):"]
    for event in result.events:
        if event.what != "progress":
            detail = event.detail.splitlines()[0] if event.detail else ""
            lines.append(f"  t={event.at:7.1f} s  {event.delivered:>9,} delivered  {event.what}: {detail}")
    lines += [
        "",
        f"Run {'over' if result.over else 'NOT over'} {result.seconds:.0f} s after the notification",
    ]
    lines.append(f"  run state {result.run_state}" + (f" ({result.run_error})" if result.run_error else ""))
    rows = [
        ["customers", "", f"{f.customers:,}"],
        ["delivered (2xx at least once)", "", f"{f.delivered:,}"],
        ["webhook requests", "", f"{f.requests:,}"],
        ["", "answered 2xx", f"{f.answered_ok:,}"],
        ["", "answered 5xx (injected)", f"{f.answered_fault:,}"],
        ["repeats (requests beyond a customer's first)", "", f"{f.repeats:,}"],
        ["", "after a 5xx answer (retries)", f"{f.repeats_after_fault:,}"],
        ["", "after a 2xx answer (crash/cut repeats)", f"{f.repeats_after_ok:,}"],
        ["", "customers repeated after a 2xx", f"{f.customers_repeated_after_ok:,}"],
    ]
    rows += [["messages by status", status, f"{n:,}"] for status, n in sorted(result.statuses.items())]
    total_calls = faulty = 0
    for function, by_status in sorted(result.optimove_calls.items()):
        calls = sum(by_status.values())
        bad = sum(n for status, n in by_status.items() if not status.startswith("2"))
        total_calls, faulty = total_calls + calls, faulty + bad
        shown = ", ".join(f"{status} x{n}" for status, n in sorted(by_status.items()))
        rows.append(["Optimove calls", function, f"{calls:,} ({shown})"])
    rows.append(["Optimove calls", "total / answered with a fault", f"{total_calls:,} / {faulty:,}"])
    lines += ["", table(["what", "", "count"], rows)]
    if result.log_errors:
        lines += [
            "",
            "Error lines in the processes' logs: "
            + ", ".join(f"{name} {n}" for name, n in result.log_errors.items()),
        ]
    if result.stuck_samples:
        lines += ["", "Messages not sent (first few):", *(f"  {s}" for s in result.stuck_samples)]
    lines += ["", "Checks:"]
    lines += [f"  {'PASS' if c.passed else 'FAIL'}  {c.name}: {c.detail}" for c in result.checks]
    lines.append(f"Overall: {'PASS' if result.passed else 'FAIL'}")
    return "\n".join(lines)


# Main
# ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=100_000, help="the campaign's audience")
    parser.add_argument(
        "--window", type=int, default=60, help="send times spread over this many seconds (0: all due now)"
    )
    parser.add_argument(
        "--timeout", type=float, default=1200.0, help="seconds after the notification before giving up"
    )
    parser.add_argument(
        "--sandbox-fault-rate", type=float, default=0.2, help="share of Optimove calls failed"
    )
    parser.add_argument("--receiver-fault-rate", type=float, default=0.1, help="share of webhooks failed")
    parser.add_argument("--redis-down", type=float, default=2.0, help="seconds Redis stays down")
    parser.add_argument(
        "--redis-persist",
        action="store_true",
        help="Redis saves at shutdown and reloads at start (default: nothing kept, as a lost cache)",
    )
    parser.add_argument("--seed", type=int, default=7, help="the audience's and the receiver's random seed")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a platform setting read from the environment (e.g. MESSAGE_RETRY_BASE_SECONDS=2); repeatable",
    )
    parser.add_argument(
        "--fast-db", action="store_true", help="PostgreSQL without fsync (default: durable, as in production)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, data)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.customers <= 10_000_000:
        parser.error("--customers must be between 1 and 10,000,000")
    if not 0 <= args.window <= 3600:
        parser.error("--window must be between 0 and 3600 seconds")
    if not 1 <= args.timeout <= 86_400:
        parser.error("--timeout must be between 1 and 86,400 seconds")
    for name in ("sandbox_fault_rate", "receiver_fault_rate"):
        if not 0.0 <= getattr(args, name) < 1.0:
            parser.error(f"--{name.replace('_', '-')} must be at least 0 and below 1")
    if not 0 <= args.redis_down <= 60:
        parser.error("--redis-down must be between 0 and 60 seconds")
    if not 1 <= args.seed <= 999_999:
        parser.error("--seed must be between 1 and 999,999")
    overrides: dict[str, str] = {}
    for item in args.setting:
        name, sep, value = item.partition("=")
        if not sep or not SETTING_NAME.match(name) or not value:
            parser.error(f"--setting must look like NAME=VALUE with an upper-case NAME, got {item!r}")
        if name in RESERVED_SETTINGS:
            parser.error(f"--setting {name}: the harness sets {name} itself; it cannot be overridden")
        overrides[name] = value
    args.overrides = overrides
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json: folder {args.json.parent} does not exist")
    return args


def describe_policy(policy: Mapping[str, Any], overridden: Mapping[str, str]) -> list[str]:
    lines = [
        "Platform policy in effect"
        + (
            f" (overridden: {', '.join(sorted(overridden))}; the rest defaults)"
            if overridden
            else " (defaults)"
        )
        + ":"
    ]
    lines += [f"  {name} = {value!r}" for name, value in policy.items()]
    with contextlib.suppress(KeyError, TypeError, ValueError):
        lines.append(
            "  message retries: "
            + retry_policy_description(
                max_attempts=int(policy["MESSAGE_MAX_ATTEMPTS"]),
                base=float(policy["MESSAGE_RETRY_BASE_SECONDS"]),
                cap=float(policy["MESSAGE_RETRY_MAX_SECONDS"]),
            )
        )
    return lines


def run(args: argparse.Namespace, plan: Sequence[Fault] = DEFAULT_PLAN) -> Result:
    stack = Stack(durable_db=not args.fast_db, keep=args.keep)
    stack.redis.persist = args.redis_persist
    try:
        set_up = clock()
        platform = start_platform(stack, args, args.overrides)
        platform.harness_children = [p for p in stack.processes if p.name == "sandbox"]
        print("\n".join(describe_policy(platform.policy, platform.overridden)), flush=True)
        print(f"Set-up {clock() - set_up:.0f} s. Fault plan:", flush=True)
        for fault in plan:
            print(f"  {fault.describe()}", flush=True)
        enable_sandbox_faults(platform, rate=args.sandbox_fault_rate)
        started = clock()
        fired_at = fire_campaign(platform, customers=args.customers, window=args.window, seed=args.seed)
        injector = Injector(platform, started=started, redis_down=args.redis_down)
        injector.log(
            "fired",
            f"campaign {CAMPAIGN_ID}: {args.customers:,} customers due over {args.window} s; sandbox fault "
            f"rate {args.sandbox_fault_rate:.0%}, receiver fault rate {args.receiver_fault_rate:.0%}",
        )
        over = watch(platform, injector, plan=plan, customers=args.customers, timeout=args.timeout)
        seconds = clock() - started
        if over:
            settle(platform.receiver)
        return collect(
            platform,
            injector,
            plan=plan,
            customers=args.customers,
            window=args.window,
            seed=args.seed,
            fired_at=fired_at,
            seconds=seconds,
            over=over,
        )
    finally:
        stack.close()


def result_json(result: Result, args: argparse.Namespace) -> dict[str, Any]:
    figures = asdict(result.figures)
    for name in ("undelivered", "key_mismatches", "unknown_customers"):
        figures[f"{name}_count"] = len(figures[name])
        figures[name] = list(figures[name])[:100]
    return {
        "machine": machine_description(),
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "customers": result.customers,
        "window": result.window,
        "seconds": round(result.seconds, 1),
        "over": result.over,
        "run_state": result.run_state,
        "run_error": result.run_error,
        "figures": figures,
        "statuses": result.statuses,
        "optimove_calls": result.optimove_calls,
        "events": [asdict(e) for e in result.events],
        "checks": [asdict(c) for c in result.checks],
        "policy": {
            k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in result.policy.items()
        },
        "overridden": result.overridden,
        "log_errors": result.log_errors,
        "stuck_samples": result.stuck_samples,
        "passed": result.passed,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"Fault suite: {machine_description()}", flush=True)
    print(
        f"{args.customers:,} customers over {args.window} s to the signed webhook channel; timeout "
        f"{args.timeout:g} s; {'durable' if not args.fast_db else 'no-fsync'} PostgreSQL; Redis "
        f"{'with' if args.redis_persist else 'without'} persistence",
        flush=True,
    )
    try:
        with interrupts_as_keyboard_interrupt():
            result = run(args)
    except KeyboardInterrupt:
        print("Interrupted; everything started was stopped.", file=sys.stderr)
        return 130
    except (HarnessError, WaitTimedOut) as exc:
        print(f"The fault suite's harness broke, no verdict: {exc}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print(
            "The fault suite's harness broke (above), no verdict; everything started was stopped.",
            file=sys.stderr,
        )
        return 1
    print(report(result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result_json(result, args), indent=2, default=str))
    return 0 if result.passed else 2


if __name__ == "__main__":
    sys.exit(main())
