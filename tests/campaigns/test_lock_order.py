"""Statements that move many messages and may wait for a row another session holds lock their rows in id
order, so that no two of them can each hold a row the other waits for. PostgreSQL breaks such a deadlock
by aborting one side; in the 2026-12-06 benchmark that was an operator's cancel, beside a send batch.

Each test lays three messages in the table in the reverse of their id order (as rows that have moved
lie), lets another session hold the middle one, runs the statement in a thread of its own, and looks at
which of the other two rows it had locked by the time it waited: in id order, only the lowest."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from apps.campaigns import services
from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunState
from apps.clients.models import Client
from apps.message_templates.models import MessageTemplate
from tests.messages import messages_add
from tests.tenants import console_email_channel

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 10


@pytest.fixture
def runs(redis_client: Any) -> list[CampaignRun]:
    """Two sending runs of campaign 1 on two channels of one client."""
    client = Client.objects.create(slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net")
    made = []
    for channel_id in (504, 505):
        channel = console_email_channel(client, provider="null", optimove_channel_id=channel_id)
        MessageTemplate.objects.create(client=client, channel=channel, template_id=1, name="T", subject="Hi")
        made.append(
            CampaignRun.objects.create(
                client=client, channel=channel, campaign_id=1, state=RunState.SENDING, paging_done=True
            )
        )
    return made


def _three(runs: list[CampaignRun], status: MessageStatus, **fields: Any) -> list[int]:
    """Three messages (of `runs` in turn) in `status`, whose rows lie in the table highest id first."""
    ids = [messages_add(runs[n % len(runs)], 1, status=MessageStatus.SKIPPED)[0] for n in range(3)]
    for pk in reversed(ids):  # a status change writes a new row version at the table's end
        Message.objects.filter(pk=pk).update(status=status, **fields)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM campaigns_message WHERE id = ANY(%s) ORDER BY ctid", [ids])
        assert [row[0] for row in cursor.fetchall()] == ids[::-1]
    return ids


@pytest.fixture
def other_session() -> Iterator[BaseDatabaseWrapper]:
    session = connections.create_connection(DEFAULT_DB_ALIAS)
    session.set_autocommit(False)
    yield session
    session.rollback()
    session.close()


def _held_while_waiting(
    statement: Callable[[], object], ids: list[int], holder: BaseDatabaseWrapper
) -> list[int]:
    """Runs `statement` while `holder` holds the middle row, and returns which of the lowest and highest
    rows it held when it waited for the middle one. Then lets it finish."""
    low, middle, high = ids
    failures: list[BaseException] = []

    def run() -> None:
        try:
            statement()
        except BaseException as exc:  # reported by the test
            failures.append(exc)
        finally:
            connection.close()

    with holder.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        holder_pid = cursor.fetchone()[0]
        cursor.execute("SELECT id FROM campaigns_message WHERE id = %s FOR UPDATE", [middle])
    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        with connection.cursor() as cursor:
            while True:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                    [holder_pid],
                )
                if cursor.fetchone()[0]:
                    break
                assert thread.is_alive(), f"the statement finished without waiting: {failures}"
                assert time.monotonic() < deadline, "the statement never waited for the held row"
                time.sleep(0.01)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM campaigns_message WHERE id = ANY(%s) FOR UPDATE SKIP LOCKED", [[low, high]]
            )
            free = {row[0] for row in cursor.fetchall()}
            transaction.set_rollback(True)
    finally:
        holder.rollback()
        thread.join(WAIT_SECONDS)
    assert not thread.is_alive()
    assert not failures, failures
    return sorted({low, high} - free)


@pytest.mark.parametrize("status", [MessageStatus.PENDING, MessageStatus.QUEUED])
def test_an_operator_cancel_locks_its_rows_in_id_order(
    runs: list[CampaignRun], other_session: BaseDatabaseWrapper, status: MessageStatus
) -> None:
    ids = _three(runs[:1], status)
    assert _held_while_waiting(lambda: services.campaign_run_cancel(run=runs[0]), ids, other_session) == [
        ids[0]
    ]
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.CANCELLED}


def test_optimoves_cancel_locks_the_rows_of_all_its_runs_in_id_order(
    runs: list[CampaignRun], other_session: BaseDatabaseWrapper
) -> None:
    ids = _three(runs, MessageStatus.QUEUED)  # the middle row is the second run's
    client = runs[0].client
    held = _held_while_waiting(
        lambda: services.campaign_cancel(client=client, campaign_id=1), ids, other_session
    )
    assert held == [ids[0]]
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.CANCELLED}


def test_an_operator_retry_locks_its_rows_in_id_order(
    runs: list[CampaignRun], other_session: BaseDatabaseWrapper
) -> None:
    ids = _three(runs[:1], MessageStatus.FAILED)
    held = _held_while_waiting(lambda: services.campaign_run_retry_failed(run=runs[0]), ids, other_session)
    assert held == [ids[0]]
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.PENDING}


def test_a_send_batch_claims_its_rows_in_id_order(
    runs: list[CampaignRun], other_session: BaseDatabaseWrapper
) -> None:
    ids = _three(runs[:1], MessageStatus.QUEUED, queued_at=timezone.now())
    held = _held_while_waiting(lambda: services.message_batch_send(message_ids=ids[::-1]), ids, other_session)
    assert held == [ids[0]]
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.SENT}


@pytest.mark.parametrize(
    ("outcome", "recorded"),
    [
        (MessageStatus.SENT, MessageStatus.SENT),
        (MessageStatus.FAILED, MessageStatus.FAILED),
        (MessageStatus.SKIPPED, MessageStatus.SKIPPED),
        ("retry", MessageStatus.PENDING),
    ],
)
def test_a_send_batch_records_its_outcomes_in_id_order(
    runs: list[CampaignRun], other_session: BaseDatabaseWrapper, outcome: str, recorded: MessageStatus
) -> None:
    ids = _three(runs[:1], MessageStatus.SENDING, claimed_at=timezone.now(), attempts=1)
    outcomes = [services._Outcome(pk, outcome, reason="r", provider_message_id="p") for pk in ids[::-1]]

    def record() -> None:
        services._record_outcomes(outcomes, attempts=dict.fromkeys(ids, 1), outcome=services.BatchOutcome())

    assert _held_while_waiting(record, ids, other_session) == [ids[0]]
    assert set(Message.objects.values_list("status", flat=True)) == {recorded}


def test_a_send_batch_gives_back_unsent_rows_in_id_order(
    runs: list[CampaignRun], other_session: BaseDatabaseWrapper
) -> None:
    ids = _three(runs[:1], MessageStatus.SENDING, claimed_at=timezone.now(), attempts=1)
    CampaignRun.objects.filter(pk=runs[0].pk).update(state=RunState.PAUSED)
    held = _held_while_waiting(lambda: services._release_unsent(runs[0].pk, ids[::-1]), ids, other_session)
    assert held == [ids[0]]
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.PENDING}


@pytest.mark.parametrize("status", [MessageStatus.QUEUED, MessageStatus.SENDING])
def test_the_sweeper_skips_a_row_another_session_holds(
    runs: list[CampaignRun], other_session: BaseDatabaseWrapper, status: MessageStatus
) -> None:
    long_ago = timezone.now() - timedelta(hours=1)
    ids = _three(runs[:1], status, queued_at=long_ago, claimed_at=long_ago)
    with other_session.cursor() as cursor:
        cursor.execute("SELECT id FROM campaigns_message WHERE id = %s FOR UPDATE", [ids[1]])
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '5s'")  # waiting would fail the test instead of hanging it
    first = services.campaigns_sweep()
    other_session.rollback()
    second = services.campaigns_sweep()
    reset = "queued_reset" if status == MessageStatus.QUEUED else "sending_reset"
    assert (getattr(first, reset), getattr(second, reset)) == (2, 1)
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.PENDING}
