"""Private PostgreSQL and Redis servers for `make run` and the test suite.

PostgreSQL refuses to run as root, so when we are root its commands run through
`runuser -u postgres --` (the user Debian's package creates) on a data folder that user owns.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PG_USER = "postgres"

# How the servers keep their write-ahead log. By default PostgreSQL creates each new 16 MB WAL file
# full of zeros, in the commit path and holding the WAL write lock, so every commit on the server waits
# for that write and its fsync (60-190 ms on the 2-core benchmark machine while a campaign stores its
# pages; docs/BENCHMARKS.md, session 12). `wal_init_zero=off` creates the file by writing its last
# byte. `min_wal_size` keeps the files a campaign has used for the next one instead of removing them at
# a checkpoint, and `max_wal_size` spaces a big campaign's checkpoints out (each is followed by a
# burst of full-page images). deploy/docker-compose.yml gives its PostgreSQL the same settings.
WAL_SETTINGS = {"wal_init_zero": "off", "min_wal_size": "1GB", "max_wal_size": "4GB"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise RuntimeError(f"PostgreSQL's {name} was not found; install the 'postgresql' package.")
    return candidates[0]


def redis_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if not found:
        raise RuntimeError("redis-server was not found; install the 'redis-server' package.")
    return found


def _as_pg_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *cmd]
    return cmd


def _chown_to_pg(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user=PG_USER, group=PG_USER)


@dataclass
class PostgresServer:
    data_dir: Path
    port: int
    fast: bool = False  # tests: no fsync, the data is thrown away

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/optimove_partner"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Let the unprivileged user reach its folder.
        for parent in [self.data_dir.parent]:
            parent.chmod(parent.stat().st_mode | 0o711)
        _chown_to_pg(self.data_dir)
        self.data_dir.chmod(0o700)
        pgdata = self.data_dir / "data"
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                _as_pg_user(
                    [
                        pg_binary("initdb"),
                        "-D",
                        str(pgdata),
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                        "--no-instructions",
                    ]
                ),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        if self.is_running():  # left by a run that was killed before it could stop it
            self.stop()
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        options += "".join(f" -c {name}={value}" for name, value in WAL_SETTINGS.items())
        if self.fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(
            _as_pg_user(
                [
                    pg_binary("pg_ctl"),
                    "-D",
                    str(pgdata),
                    "-o",
                    options,
                    "-l",
                    str(self.data_dir / "postgres.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self._create_database("optimove_partner")

    def _create_database(self, name: str) -> None:
        psql = [
            pg_binary("psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ]
        exists = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],  # noqa: S608 (our own constant)
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run([*psql, f'CREATE DATABASE "{name}"'], check=True, stdout=subprocess.DEVNULL)

    def is_running(self) -> bool:
        pgdata = self.data_dir / "data"
        if not (pgdata / "postmaster.pid").exists():
            return False
        result = subprocess.run(
            _as_pg_user([pg_binary("pg_ctl"), "-D", str(pgdata), "status"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return result.returncode == 0

    def stop(self) -> None:
        pgdata = self.data_dir / "data"
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(
                _as_pg_user([pg_binary("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )


@dataclass
class RedisServer:
    data_dir: Path
    port: int
    persist: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        args = [
            redis_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.data_dir / "redis.log"),
            "--pidfile",
            str(self.pid_file),
        ]
        args += (
            ["--save", "60 1", "--appendonly", "no"] if self.persist else ["--save", "", "--appendonly", "no"]
        )
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(
            f"redis-server did not start on port {self.port}; see {self.data_dir / 'redis.log'}"
        )

    def _stop_leftover(self) -> None:
        """Stops a redis-server that a killed run left on this folder (its pid file names it)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"redis-server" not in command:  # the pid went to another process since
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_test_services() -> None:
    """Throwaway servers on free ports for one pytest run; their addresses go into the environment."""
    root = Path(tempfile.mkdtemp(prefix="optimove-partner-test-"))
    root.chmod(0o711)
    postgres = PostgresServer(root / "pg", free_port(), fast=True)
    redis_server = RedisServer(root / "redis", free_port(), persist=False)
    postgres.start()
    redis_server.start()

    def _cleanup() -> None:
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(_cleanup)
    os.environ.setdefault("DATABASE_URL", postgres.url)
    os.environ.setdefault("REDIS_URL", redis_server.url)
    os.environ["TEST_REDIS_DIR"] = str(redis_server.data_dir)
    os.environ["TEST_REDIS_PORT"] = str(redis_server.port)


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


# The platform's processes, as the tests and the benchmarks start them
# ------------------------------------------------------------------------------

VENV_BIN = Path(sys.executable).parent


def gunicorn_command(*, port: int, workers: int, threads: int) -> list[str]:
    return [
        str(VENV_BIN / "gunicorn"),
        "config.wsgi:application",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(workers),
        "--threads",
        str(threads),
        "--timeout",
        "120",
    ]


def celery_worker_command(*, name: str, queues: str, concurrency: int) -> list[str]:
    return [
        str(VENV_BIN / "celery"),
        "-A",
        "config",
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
