"""The private PostgreSQL (`make run`, the benchmarks) creates a new WAL file without writing it full of
zeros: PostgreSQL does that in the commit path, holding the WAL write lock, and while a campaign stored
its pages every commit on the server waited for it (docs/BENCHMARKS.md, session 12)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from tools.devservers import WAL_SETTINGS, PostgresServer, free_port
from tools.run import ROOT

SEGMENT_BYTES = 16 * 1024 * 1024


@pytest.fixture
def durable(folder: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(folder / "pg", free_port())  # durable, as `make run` starts it
    server.start()
    yield server
    server.stop()


def _connect(server: PostgresServer) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host="127.0.0.1", port=server.port, user="postgres", dbname="postgres", autocommit=True
    )


def test_a_new_wal_file_is_not_filled_with_zeros(durable: PostgresServer) -> None:
    with _connect(durable) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS filler (id bigserial PRIMARY KEY, body text)")
        for _ in range(3):  # three new files, each started by a switch and then written a little
            connection.execute("SELECT pg_switch_wal()")
            connection.execute(
                "INSERT INTO filler (body) SELECT repeat('x', 100) FROM generate_series(1, 99)"
            )
        row = connection.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn())").fetchone()
    assert row is not None
    segment = durable.data_dir / "data" / "pg_wal" / str(row[0])
    status = segment.stat()
    assert status.st_size == SEGMENT_BYTES
    # Zero-filled, all 16 MB would be allocated; written only where the WAL reached, a few pages are.
    assert status.st_blocks * 512 < SEGMENT_BYTES // 4


def test_the_server_keeps_its_wal_files_for_the_next_campaign(durable: PostgresServer) -> None:
    with _connect(durable) as connection:
        shown = {
            name: connection.execute("SELECT current_setting(%s)", [name]).fetchone() for name in WAL_SETTINGS
        }
    assert shown == {name: (value,) for name, value in WAL_SETTINGS.items()}


def test_the_compose_files_postgresql_has_the_same_wal_settings() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    command = compose["services"]["postgres"]["command"].split()
    settings = dict(command[index + 1].split("=", 1) for index, word in enumerate(command) if word == "-c")
    assert settings == WAL_SETTINGS
