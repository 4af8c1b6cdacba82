"""Shared fixtures. PostgreSQL and Redis are real (started by config.settings.test on free ports);
`celery_worker` and `web_server` start real processes against the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection

from tests.metrics.support import session_multiproc_dir
from tools.devservers import celery_worker_command, free_port, gunicorn_command

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _listener_targets_forgotten() -> Iterator[None]:
    """Each test's clients are new rows: no listener target kept from an earlier test."""
    from apps.clients.selectors import listener_targets_forget

    listener_targets_forget()
    yield
    listener_targets_forget()


@pytest.fixture
def redis_client() -> Any:
    from apps.core.redis import get_redis

    client = get_redis()
    client.flushdb()
    return client


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a process that must see the test database (not the dev one)."""
    db = connection.settings_dict
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["PYTHONPATH"] = str(ROOT)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", session_multiproc_dir())  # apps.metrics
    env.update(extra)
    return env


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kills the whole process group (a Celery worker's pool children included)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _spawn(name: str, args: list[str], env: dict[str, str], tmp_path: Path) -> ManagedProcess:
    log_path = tmp_path / f"{name}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        args,
        env=env,
        cwd=ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return ManagedProcess(name, process, log_path)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def celery_worker(
    transactional_db: None, redis_client: Any, tmp_path: Path
) -> Iterator[Callable[..., ManagedProcess]]:
    """Starts real `celery worker` processes; each is ready (consuming) when returned."""
    started: list[ManagedProcess] = []

    def start(
        queues: str = "realtime,audience,sends,reporting", concurrency: int = 2, **env: str
    ) -> ManagedProcess:
        name = f"worker{len(started) + 1}-{uuid.uuid4().hex[:6]}"
        worker = _spawn(
            name,
            celery_worker_command(name=name, queues=queues, concurrency=concurrency),
            subprocess_env(**env),
            tmp_path,
        )
        started.append(worker)
        from apps.core.tasks import ping

        key = f"ready:{name}"
        for queue in queues.split(","):
            ping.apply_async(args=[key], queue=queue)
        try:
            wait_for(lambda: bool(redis_client.get(key)), 60, f"{name} to consume")
        except AssertionError:
            raise AssertionError(f"{name} did not start:\n{worker.log()[-3000:]}") from None
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture
def web_server(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Starts gunicorn serving the platform (and the sandbox) on a free port; returns its base URL."""
    started: list[ManagedProcess] = []

    def start(workers: int = 2, **env: str) -> str:
        port = free_port()
        server = _spawn(
            f"web{len(started) + 1}",
            gunicorn_command(port=port, workers=workers, threads=4),
            subprocess_env(PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **env),
            tmp_path,
        )
        started.append(server)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return requests.get(f"{base}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        try:
            wait_for(up, 60, "the web server")
        except AssertionError:
            raise AssertionError(f"web server did not start:\n{server.log()[-3000:]}") from None
        return base

    yield start
    for server in started:
        server.kill(signal.SIGTERM)


@pytest.fixture
def celery_beat(transactional_db: None, tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """Starts a real `celery beat` with the database scheduler (the dispatcher and the sweeper); it has
    sent its first tick when returned, so its start-up does not compete with what the test measures."""
    started: list[ManagedProcess] = []

    def start(**env: str) -> ManagedProcess:
        beat = _spawn(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "-s",
                str(tmp_path / "beat-schedule"),
            ],
            subprocess_env(**env),
            tmp_path,
        )
        started.append(beat)
        ticked = lambda: "Sending due task" in beat.log() or beat.process.poll() is not None  # noqa: E731
        wait_for(ticked, 60, "beat to tick")
        if beat.process.poll() is not None:
            raise AssertionError(f"celery beat exited:\n{beat.log()[-4000:]}")
        return beat

    yield start
    for beat in started:
        beat.kill(signal.SIGTERM)
