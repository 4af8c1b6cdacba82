"""prometheus_client's multiprocess mode as the platform sets it up (apps/metrics/multiproc.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from apps.metrics.multiproc import multiprocess_dir_reset, multiprocess_process_dead, process_identifier
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_a_process_is_named_by_host_and_pid_without_the_file_names_separator() -> None:
    assert re.fullmatch(rf"[A-Za-z0-9.-]+-{os.getpid()}", process_identifier())
    assert process_identifier(42).endswith("-42")
    assert "_" not in process_identifier(42)


def test_a_process_writes_its_values_to_files_named_by_host_and_pid_in_a_directory_it_creates(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "not" / "there" / "yet"
    script = (
        "import os\n"
        "from apps.metrics.multiproc import multiprocess_configure, process_identifier\n"
        "assert multiprocess_configure()\n"
        "from prometheus_client import Counter\n"
        "Counter('demo_things', 'things', ['kind']).labels('a').inc(3)\n"
        "print(process_identifier())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)

    identifier = done.stdout.strip()
    assert [p.name for p in shared.iterdir()] == [f"counter_{identifier}.db"]
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(shared))
    assert 'demo_things_total{kind="a"} 3.0' in generate_latest(registry).decode()


def test_an_empty_directory_setting_means_no_multiprocess_mode(tmp_path: Path) -> None:
    script = (
        "from apps.metrics.multiproc import multiprocess_configure\n"
        "assert not multiprocess_configure()\n"
        "from prometheus_client import Counter, values\n"
        "assert values.ValueClass is values.MutexValue\n"
        "Counter('demo_things', 'things').inc()\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": "", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, check=True)
    assert list(tmp_path.iterdir()) == []  # nothing written to the working directory


def test_a_dead_process_loses_its_live_gauges_and_keeps_its_counters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    dead, alive = process_identifier(1001), process_identifier(1002)
    for name in (
        f"gauge_livesum_{dead}.db",
        f"gauge_liveall_{dead}.db",
        f"counter_{dead}.db",
        f"histogram_{dead}.db",
        f"gauge_livesum_{alive}.db",
    ):
        (tmp_path / name).write_bytes(b"")

    multiprocess_process_dead(1001)

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{dead}.db", f"histogram_{dead}.db", f"gauge_livesum_{alive}.db"]
    )


def test_a_dead_process_changes_nothing_without_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    multiprocess_process_dead(1001)  # plain development: nothing to do, nothing raised
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "gone"))
    multiprocess_process_dead(1001)
    assert not (tmp_path / "gone").exists()


def test_resetting_the_directory_removes_metric_files_only(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    multiprocess_dir_reset(folder)
    assert folder.is_dir()
    (folder / "counter_host-1.db").write_bytes(b"x")
    (folder / "histogram_host-2.db").write_bytes(b"x")
    (folder / "README").write_text("kept")

    multiprocess_dir_reset(folder)

    assert [p.name for p in folder.iterdir()] == ["README"]


@pytest.mark.worker
def test_gunicorn_reads_the_repositorys_config_and_does_the_bookkeeping_when_a_worker_exits(
    web_server: Any, tmp_path: Path
) -> None:
    shared = tmp_path / "metrics"
    base = web_server(workers=2, PROMETHEUS_MULTIPROC_DIR=str(shared))
    web = _processes_with_argument(base.removeprefix("http://"))  # the master and its workers
    [worker, *_] = sorted(pid for pid, parent in web.items() if parent in web)
    live = shared / f"gauge_livesum_{process_identifier(worker)}.db"
    live.write_bytes(b"")
    kept = shared / f"counter_{process_identifier(worker)}.db"
    kept.write_bytes(b"")

    os.kill(worker, signal.SIGTERM)  # gunicorn starts another and calls child_exit for this one

    wait_for(lambda: not live.exists(), 15, "child_exit to remove the dead worker's live gauges")
    assert kept.exists()


def _processes_with_argument(argument: str) -> dict[int, int]:
    """{pid: parent pid} of the processes whose command line holds `argument`."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if argument.encode() in (proc / "cmdline").read_bytes().split(b"\0"):
                found[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue  # gone meanwhile
    return found
