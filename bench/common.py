"""What every benchmark needs: private services and processes, a provider stand-in that records
arrivals, an open-loop poster, percentiles and the table with ratios.

Times that cross processes are CLOCK_MONOTONIC readings (`clock()`): on Linux that clock is one for the
whole machine, so the poster's send time and the receiver's arrival time can be subtracted.

Children that must not share the benchmark's GIL (receivers, the poster) are `spawn`ed: they start
clean, import only the standard library, and get their arguments (a listener URL carries its token)
through a pipe, never on a command line.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import math
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.devservers import (  # noqa: E402
    PostgresServer,
    RedisServer,
    celery_worker_command,
    free_port,
    gunicorn_command,
)

SPAWN = multiprocessing.get_context("spawn")
HTTP_TIMEOUT_SECONDS = 30.0
NOT_SENT = "not sent"


class HarnessError(RuntimeError):
    """The benchmark's own machinery broke (a process died, a service did not start): its figures
    would mean nothing, so it stops with a non-zero exit status."""


class WaitTimedOut(HarnessError):
    """What was awaited did not happen in time."""


def clock() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = clock() + timeout
    while clock() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise WaitTimedOut(f"timed out after {timeout:g} s waiting for {what}")


# Figures
# ------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile: a value that was actually measured, None when there is none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def ratio(loaded: float | None, baseline: float | None) -> str:
    if loaded is None or baseline is None or baseline <= 0:
        return "-"
    return f"{loaded / baseline:.2f}x"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, numbers right-aligned, that reads the same in a terminal and in a log."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for i, row in enumerate([headers, *rows]):
        # The first two columns (what was measured) to the left, the figures to the right.
        cells = [
            cell.rjust(width) if j > 1 else cell.ljust(width)
            for j, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def machine_description() -> str:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average at start {load}"
    )


# Processes
# ------------------------------------------------------------------------------


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stops the whole process group (a Celery worker's pool children, gunicorn's workers)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # Children that outlived their leader (a pool process still finishing) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


class Stack:
    """A private PostgreSQL and Redis in a temporary folder, and the processes started against them.
    `close()` stops everything it started and removes the folder (unless `keep`)."""

    def __init__(self, *, durable_db: bool = True, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="optimove-bench-"))
        self.root.chmod(0o711)  # PostgreSQL runs as its own user when we are root
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.keep = keep
        self.postgres = PostgresServer(self.root / "pg", free_port(), fast=not durable_db)
        self.redis = RedisServer(self.root / "redis", free_port(), persist=False)
        self.processes: list[ManagedProcess] = []
        self.children: list[multiprocessing.process.BaseProcess] = []
        self._services_started = False

    def start_services(self) -> None:
        self._services_started = True
        try:
            self.postgres.start()
            self.redis.start()
        except (subprocess.CalledProcessError, RuntimeError) as exc:
            raise HarnessError(f"private PostgreSQL/Redis did not start: {exc}") from exc

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": self.postgres.url,
                "REDIS_URL": self.redis.url,
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra)
        return env

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> ManagedProcess:
        log_path = self.logs / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                args,
                env=env,
                cwd=ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: stopped as a whole, untouched by the terminal's ^C
            )
        managed = ManagedProcess(name, process, log_path)
        self.processes.append(managed)
        return managed

    def start_gunicorn(self, name: str, *, workers: int, threads: int, env: dict[str, str], port: int) -> str:
        server = self.spawn(
            name,
            gunicorn_command(port=port, workers=workers, threads=threads),
            env,
        )
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            self.check_alive()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", "/healthz")
                return connection.getresponse().status == 200
            except OSError:
                return False

        wait_for(up, 60, f"{server.name} to answer /healthz")
        return base

    def start_worker(
        self, name: str, *, queues: str, concurrency: int, env: dict[str, str]
    ) -> ManagedProcess:
        return self.spawn(
            name,
            celery_worker_command(name=name, queues=queues, concurrency=concurrency),
            env,
        )

    def start_beat(self, env: dict[str, str]) -> ManagedProcess:
        beat = self.spawn(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "-s",
                str(self.root / "beat-schedule"),
            ],
            env,
        )

        def ticked() -> bool:
            self.check_alive()
            return "Sending due task" in beat.log_tail(200_000)

        wait_for(ticked, 60, "celery beat's first tick")
        return beat

    def check_alive(self) -> None:
        for managed in self.processes:
            if not managed.alive():
                raise HarnessError(
                    f"{managed.name} exited with status {managed.process.returncode}; "
                    f"the end of its log:\n{managed.log_tail()}"
                )
        for child in self.children:
            if not child.is_alive():
                raise HarnessError(f"{child.name} exited with status {child.exitcode}")

    def close(self) -> None:
        for managed in reversed(self.processes):
            managed.stop()
        for child in self.children:
            if child.is_alive():
                child.terminate()
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join(5)
        if self._services_started:
            self.redis.stop()
            self.postgres.stop()
        if self.keep:
            print(f"Logs and data kept in {self.root}", flush=True)
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by each live process the stack started, by name: a process group's
    members count for its leader (gunicorn's and Celery's workers), PostgreSQL's backends for
    "postgresql". Each process also counts the children it has reaped (cutime, cstime): a PostgreSQL
    backend that exits between two readings (a closed connection) moves its CPU into the postmaster's
    figure instead of vanishing. Two readings around a phase show where the machine's cores went."""
    tick = os.sysconf("SC_CLK_TCK")
    by_group = {m.process.pid: m.name for m in stack.processes}
    by_pid = {c.pid: c.name for c in stack.children if c.pid is not None}
    if stack.redis.process is not None:
        by_pid[stack.redis.process.pid] = "redis"
    postmaster = -1
    with contextlib.suppress(OSError, ValueError, IndexError):
        postmaster = int((stack.postgres.data_dir / "data" / "postmaster.pid").read_text().split()[0])
    totals: defaultdict[str, float] = defaultdict(float)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        pid = int(entry.name)
        # The command name may hold spaces and parentheses: the fields start after the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        ppid, pgid = int(fields[1]), int(fields[2])
        used = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        name = by_group.get(pgid) or by_pid.get(pid)
        if name is None and postmaster in (pid, ppid):
            name = "postgresql"
        if name is not None:
            totals[name] += used / tick
    return dict(totals)


def cores_busy(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Average cores each process kept busy between two `cpu_seconds` readings."""
    if seconds <= 0:
        return {}
    return {
        name: round((after[name] - before.get(name, 0.0)) / seconds, 2)
        for name in sorted(after, key=lambda n: before.get(n, 0.0) - after[n])
    }


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM (a CI timeout, `kill`) cleans up like Ctrl-C does; so does SIGINT even when the shell
    started us in the background with SIGINT ignored."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# The provider stand-in
# ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # clock() when the request's headers had arrived
    key: str  # the Idempotency-Key header
    customer_id: str


class _ProviderHandler(BaseHTTPRequestHandler):
    """What every provider stand-in's handler shares: keep-alive, the request's arrival, JSON answers."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a real provider offers
    disable_nagle_algorithm = True

    def _arrival(self) -> tuple[float, str, str] | None:
        """(clock() when the headers had arrived, the Idempotency-Key, the body's customer_id), or None
        when the sender's connection ended before the whole body came: a sender killed mid-request
        sent no request a provider would act on, so it is neither recorded nor answered."""
        at = clock()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return None
        try:
            customer = str(json.loads(body).get("customer_id") or "")
        except (ValueError, AttributeError):
            customer = ""
        return at, self.headers.get("Idempotency-Key") or "", customer

    def _answer(self, payload: Any, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return


class _ProviderServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 overflows when a batch opens several connections at once;
    # the kernel then drops the handshake and the client's retry costs a whole second.
    request_queue_size = 256


def cpu_group_own(niceness: int = 0) -> None:
    """Makes this (child) process a session of its own, so Linux weighs it as a group of its own
    ("autogroup", apps/core/priority.py), at `niceness`. A stand-in for something that runs elsewhere
    in production then takes CPU only at the priority it is given, and a process that measures is not
    slowed by the stand-ins sharing its group."""
    os.setsid()
    if niceness:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(niceness))


def cpu_group_nice(pid: int, niceness: int) -> None:
    """Gives the session `pid` leads (a server started by `Stack.spawn`) the niceness `niceness`."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(niceness))


def _receiver_main(port: int, ready: Any, niceness: int | None = None) -> None:
    """Runs in its own process, as a provider would. Answers every POST 200 with the idempotency key as
    the provider's id. `GET /_count?group=` and `GET /_records?group=` report what arrived for customer
    ids `<group>-<n>`; `GET /_window?since=&until=` counts every arrival between two clock() readings."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it; no traceback on ^C
    if niceness is not None:
        cpu_group_own(niceness)
    arrivals: list[Arrival] = []
    by_group: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(_ProviderHandler):
        def do_POST(self) -> None:
            arrival = self._arrival()
            if arrival is None:
                return
            at, key, customer = arrival
            with lock:
                arrivals.append(Arrival(at, key, customer))
                by_group[customer.rpartition("-")[0]] += 1
            self._answer({"id": key})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            with lock:
                if url.path == "/_count":
                    answer: Any = {"count": by_group[query.get("group", "")]}
                elif url.path == "/_records":
                    group = query.get("group", "")
                    answer = [
                        [a.at, a.key, a.customer_id]
                        for a in arrivals
                        if a.customer_id.rpartition("-")[0] == group
                    ]
                elif url.path == "/_window":
                    since, until = float(query["since"]), float(query["until"])
                    answer = {"count": sum(1 for a in arrivals if since <= a.at <= until)}
                else:
                    answer = {"count": len(arrivals)}  # everything, whatever the path
            self._answer(answer)

    server = _ProviderServer(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


class Receiver:
    """The parent's handle on a provider stand-in running in its own process."""

    def __init__(self, stack: Stack, name: str, *, niceness: int | None = None) -> None:
        """`niceness`: run in a CPU group of its own at that niceness (`cpu_group_own`); None shares the
        harness's group."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        ready = SPAWN.Event()
        self.process = SPAWN.Process(
            target=_receiver_main, args=(self.port, ready, niceness), name=name, daemon=True
        )
        self.process.start()
        stack.children.append(self.process)
        if not ready.wait(30):
            raise HarnessError(f"the {name} receiver did not start")

    def _get(self, path: str) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_SECONDS)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return json.loads(response.read())
        except OSError as exc:
            raise HarnessError(f"the receiver on port {self.port} did not answer: {exc}") from exc
        finally:
            connection.close()

    def count(self, group: str) -> int:
        return int(self._get(f"/_count?group={group}")["count"])

    def records(self, group: str) -> list[Arrival]:
        return [
            Arrival(float(at), key, customer) for at, key, customer in self._get(f"/_records?group={group}")
        ]

    def count_between(self, since: float, until: float) -> int:
        return int(self._get(f"/_window?since={since!r}&until={until!r}")["count"])


# The open-loop poster
# ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Posted:
    scheduled: float  # clock() at which the schedule says this request starts
    started: float  # clock() when it did start (later if every connection was busy)
    finished: float  # clock() when the whole response was read, or the error came
    status: int  # HTTP status; 0 for a connection error or timeout
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def sent(self) -> bool:
        return not self.error.startswith(NOT_SENT)


def _poster_main(
    url: str, bodies: list[bytes], rate: float, connections: int, timeout: float, out: Connection
) -> None:
    """Posts `bodies` at `rate` per second on a schedule fixed in advance (request i starts at
    t0 + i / rate), over `connections` keep-alive connections. A request whose slot comes while every
    connection is busy starts late, and the lateness counts, so a slow server shows as latency rather
    than as a lower rate. A request not answered within `timeout` of its slot is an error (one that
    could not even start by then is not sent), which bounds the run however slow the server is."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cpu_group_own()  # its timings are not slowed by the stand-ins sharing the harness's group
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = {"Content-Type": "application/json"}
    results: list[tuple[float, float, float, int, str] | None] = [None] * len(bodies)
    indexes = itertools.count()
    index_lock = threading.Lock()

    def connect() -> http.client.HTTPConnection:
        # http.client sets TCP_NODELAY, and reconnects by itself after close(): a connection the server
        # closed, or one dropped after an error, is open again for the next request.
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.connect()
        return connection

    pool = [connect() for _ in range(connections)]
    t0 = clock() + 0.2

    def run(connection: http.client.HTTPConnection) -> None:
        while True:
            with index_lock:
                i = next(indexes)
            if i >= len(bodies):
                connection.close()
                return
            scheduled = t0 + i / rate
            delay = scheduled - clock()
            if delay > 0:
                time.sleep(delay)
            started = clock()
            status, error = 0, ""
            if started - scheduled >= timeout:
                results[i] = (
                    scheduled,
                    started,
                    started,
                    0,
                    f"{NOT_SENT}: no connection free within {timeout:g} s",
                )
                continue
            try:
                connection.request("POST", target, body=bodies[i], headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
                if status >= 300:
                    error = f"HTTP {status}"
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException) as exc:
                error = type(exc).__name__
                connection.close()
            results[i] = (scheduled, started, clock(), status, error)

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in pool]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.send(results)
    out.close()


@dataclass
class PostRun:
    posted: list[Posted] = field(default_factory=list)

    @property
    def last_scheduled(self) -> float:
        return max((p.scheduled for p in self.posted), default=clock())


def post_open_loop(
    stack: Stack, *, url: str, bodies: list[bytes], rate: float, connections: int, timeout: float
) -> PostRun:
    """Runs the poster in its own process and waits for it; returns one `Posted` per body, in order."""
    receive, send = SPAWN.Pipe(duplex=False)
    child = SPAWN.Process(
        target=_poster_main,
        args=(url, bodies, rate, connections, timeout, send),
        name="poster",
        daemon=True,
    )
    child.start()
    stack.children.append(child)  # stopped by close() if we are interrupted meanwhile
    send.close()
    try:
        budget = len(bodies) / rate + 2 * timeout + 30
        if not receive.poll(budget):
            raise HarnessError(f"the poster gave no results within {budget:.0f} s")
        try:
            raw = receive.recv()
        except EOFError:
            raise HarnessError(f"the poster died (exit status {child.exitcode})") from None
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join(5)
        stack.children.remove(child)
    if any(item is None for item in raw):
        raise HarnessError("the poster did not finish every request")
    return PostRun([Posted(*item) for item in raw])


# --- fault suite (bench/faults.py): a provider stand-in that fails a share of requests ---
# ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answered:
    """One request a `FlakyReceiver` answered, and how."""

    at: float  # clock() when the request's headers had arrived
    key: str  # the Idempotency-Key header
    customer_id: str
    status: int  # the HTTP status it was answered with

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _flaky_receiver_main(
    port: int, fault_rate: float, fault_statuses: tuple[int, ...], seed: int | None, ready: Any
) -> None:
    """Like `_receiver_main`, but answers each POST, at random with probability `fault_rate`, with one of
    `fault_statuses` instead of 200, and records every answer. `GET /_delivered` counts the customers
    answered 2xx at least once (cheap enough to poll); `GET /_answered` lists every answer."""
    import random

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rng = random.Random(seed)
    answered: list[Answered] = []
    delivered: set[str] = set()
    lock = threading.Lock()

    class Handler(_ProviderHandler):
        def do_POST(self) -> None:
            arrival = self._arrival()
            if arrival is None:
                return
            at, key, customer = arrival
            with lock:
                status = rng.choice(fault_statuses) if rng.random() < fault_rate else 200
                answered.append(Answered(at, key, customer, status))
                if status == 200:
                    delivered.add(customer)
            self._answer({"id": key} if status == 200 else {"error": "injected fault (bench)"}, status)

        def do_GET(self) -> None:
            with lock:
                if urlsplit(self.path).path == "/_answered":
                    payload: Any = [[a.at, a.key, a.customer_id, a.status] for a in answered]
                else:
                    payload = {"delivered": len(delivered), "answered": len(answered)}
            self._answer(payload)

    class Server(_ProviderServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            # A sender killed mid-request resets its connection: that is the fault under test, not an
            # error worth a traceback.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


class FlakyReceiver:
    """The parent's handle on a provider stand-in, in its own process, that answers a share of the
    requests (`fault_rate`, 0..1, drawn per request) with a server error."""

    def __init__(
        self,
        stack: Stack,
        name: str,
        *,
        fault_rate: float,
        fault_statuses: Sequence[int] = (500, 502, 503),
        seed: int | None = None,
    ) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate!r}")
        if not fault_statuses or any(not 400 <= s <= 599 for s in fault_statuses):
            raise ValueError(f"fault_statuses must be HTTP error statuses, got {list(fault_statuses)!r}")
        self.fault_rate = fault_rate
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        ready = SPAWN.Event()
        self.process = SPAWN.Process(
            target=_flaky_receiver_main,
            args=(self.port, fault_rate, tuple(fault_statuses), seed, ready),
            name=name,
            daemon=True,
        )
        self.process.start()
        stack.children.append(self.process)
        if not ready.wait(30):
            raise HarnessError(f"the {name} receiver did not start")

    def _get(self, path: str) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_SECONDS)
        try:
            connection.request("GET", path)
            return json.loads(connection.getresponse().read())
        except OSError as exc:
            raise HarnessError(f"the receiver on port {self.port} did not answer: {exc}") from exc
        finally:
            connection.close()

    def delivered(self) -> int:
        """Customers answered 2xx at least once so far."""
        return int(self._get("/_delivered")["delivered"])

    def answered_count(self) -> int:
        return int(self._get("/_delivered")["answered"])

    def answered(self) -> list[Answered]:
        """Every request answered so far, in order of arrival."""
        return [
            Answered(float(at), key, customer, int(status))
            for at, key, customer, status in self._get("/_answered")
        ]


# --- end of the fault suite's section ---


# --- throughput benchmark (bench/campaign.py): worker memory, an SMTP provider stand-in, CPU totals ---
# ------------------------------------------------------------------------------

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def process_group_members(pgid: int) -> list[int]:
    """The live processes of a process group (a Celery worker and its pool children), leader first."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
            members.append(int(entry.name))
    return sorted(members, key=lambda pid: pid != pgid)


def rss_bytes(pid: int) -> int | None:
    """Resident memory of one process (statm's second field), None when it has ended."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class MemoryPeak:
    largest_child: int  # bytes: the most any one member but the leader held at a sample
    total: int  # bytes: the most the whole group held together at a sample
    samples: int


class MemorySampler:
    """Samples the resident memory of every process in a group every `interval` seconds, in a thread,
    between `start()` and `stop()`. A pool child replaced meanwhile is simply a new member."""

    def __init__(self, pgid: int, *, interval: float = 0.5) -> None:
        self.pgid = pgid
        self.interval = interval
        self._largest_child = 0
        self._total = 0
        self._samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pgid}", daemon=True)

    def _sample(self) -> None:
        sizes = {pid: rss_bytes(pid) for pid in process_group_members(self.pgid)}
        children = [size for pid, size in sizes.items() if pid != self.pgid and size is not None]
        self._largest_child = max(self._largest_child, max(children, default=0))
        self._total = max(self._total, sum(size for size in sizes.values() if size is not None))
        self._samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> MemoryPeak:
        self._stop.set()
        self._thread.join(10)
        self._sample()  # the state at the end counts too
        return MemoryPeak(self._largest_child, self._total, self._samples)


@dataclass(frozen=True, slots=True)
class MailTally:
    total: int  # mails received for the matching addresses, repeats included
    distinct: int  # distinct addresses among them
    doubled: int  # addresses that received more than one


def _smtp_sink_main(port: int, ready: Any, queries: Connection) -> None:
    """Runs tools.smtpsink in its own process, as a mail provider would, counting the mails received
    per recipient address. The parent asks over `queries`: `("tally", suffix)` answers a `MailTally`
    of the addresses ending in `suffix`; the pipe closing stops the server."""
    from tools.smtpsink import smtp_sink_serve

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it; no traceback on ^C
    received: Counter[str] = Counter()
    lock = threading.Lock()  # `accepted` runs on the server's loop, queries on a thread of their own
    stop = threading.Event()

    def accepted(mail_from: str, rcpt_tos: list[str], content: bytes) -> None:
        with lock:
            received.update(rcpt_tos)

    def answer_queries() -> None:
        while True:
            try:
                what, suffix = queries.recv()
            except (EOFError, OSError):
                stop.set()
                return
            if what != "tally":
                queries.send(None)
                continue
            with lock:
                counts = [n for address, n in received.items() if address.endswith(suffix)]
            queries.send((sum(counts), len(counts), sum(1 for n in counts if n > 1)))

    threading.Thread(target=answer_queries, name="queries", daemon=True).start()
    smtp_sink_serve("127.0.0.1", port, accepted, ready=ready.set, stop=stop.wait)


class SmtpSinkProcess:
    """The parent's handle on an SMTP server in its own process that accepts every mail and counts
    them per recipient (tools.smtpsink: a fraction of aiosmtpd's CPU per mail)."""

    def __init__(self, stack: Stack, name: str) -> None:
        self.port = free_port()
        ready = SPAWN.Event()
        self._queries, child_end = SPAWN.Pipe()
        self.process = SPAWN.Process(
            target=_smtp_sink_main, args=(self.port, ready, child_end), name=name, daemon=True
        )
        self.process.start()
        child_end.close()
        stack.children.append(self.process)
        if not ready.wait(30):
            raise HarnessError(f"the {name} SMTP server did not start")

    def tally(self, suffix: str) -> MailTally:
        """Mails received for addresses ending in `suffix` (e.g. ".4001@example.test")."""
        self._queries.send(("tally", suffix))
        if not self._queries.poll(HTTP_TIMEOUT_SECONDS):
            raise HarnessError(f"the SMTP server on port {self.port} did not answer")
        total, distinct, doubled = self._queries.recv()
        return MailTally(total, distinct, doubled)


# --- end of the throughput benchmark's section ---
