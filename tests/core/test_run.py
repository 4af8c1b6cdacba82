"""`make run` stops what it started, whether by Ctrl-C or a SIGTERM, and starts again after a run that
was killed outright (its private PostgreSQL and Redis still running on their folders)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tools.devservers import PostgresServer, RedisServer, free_port, port_is_free
from tools.run import ROOT


def _wait(condition: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _answers_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


def test_a_postgresql_left_running_on_the_folder_is_stopped_and_started_on_the_new_port(folder: Path) -> None:
    left = PostgresServer(folder / "pg", free_port())
    left.start()
    again = PostgresServer(folder / "pg", free_port())
    try:
        again.start()
        assert again.is_running()
        assert port_is_free(left.port)
        assert not port_is_free(again.port)
    finally:
        again.stop()
    assert not again.is_running()


def test_a_redis_left_running_on_the_folder_is_stopped(folder: Path) -> None:
    left = RedisServer(folder / "redis", free_port(), persist=False)
    left.start()
    assert left.process is not None
    again = RedisServer(folder / "redis", free_port(), persist=False)
    try:
        again.start()
        assert left.process.wait(timeout=10) == 0
        assert _answers_ping(again.port)
    finally:
        again.stop()
        if left.process.poll() is None:
            left.process.kill()


CHILD = """
import pathlib, signal, sys, time
folder = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: (folder.joinpath("child stopped").touch(), sys.exit(0)))
folder.joinpath("child ready").touch()
time.sleep(60)
"""

PARENT = """
import os, pathlib, sys
sys.path.insert(0, sys.argv[2])
from tools.run import supervise
folder = pathlib.Path(sys.argv[1])
try:
    rc = supervise([sys.executable, "-c", sys.argv[3], str(folder)], env=dict(os.environ))
finally:
    folder.joinpath("servers stopped").write_text(str(rc))
"""


def test_a_sigterm_stops_the_processes_and_then_the_servers(folder: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(folder), str(ROOT), CHILD])
    try:
        _wait((folder / "child ready").exists, "the supervised process to start")
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=10) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
    assert (folder / "child stopped").exists()  # it was asked to stop, not killed
    assert (folder / "servers stopped").read_text() == "0"  # after it had stopped
