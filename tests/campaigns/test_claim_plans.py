"""Statements that move a batch of messages find them by primary key, whatever PostgreSQL's statistics
say. Statistics are taken by autovacuum now and then; at the start of a campaign they still say that no
message is queued or sending, and a plain `status = 'queued'` then made the planner scan every queued
row (a partial index it believed empty) for each batch: seconds per claim at tens of thousands queued."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.campaigns import services
from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunState
from apps.clients.models import Client
from apps.message_templates.models import MessageTemplate
from tests.messages import messages_add
from tests.tenants import console_email_channel

MESSAGES = 3000
BATCH = 200
PARTIAL_STATUS_INDEXES = ("message_in_flight", "message_pending_due_id")


def _messages(run: CampaignRun, status: MessageStatus) -> list[int]:
    return messages_add(run, MESSAGES, status=status, at=timezone.now() - timedelta(seconds=1))


def _statistics_say_none_are(status: MessageStatus, ids: list[int]) -> None:
    """Statistics taken while every row was still pending (as autovacuum last saw them), then the rows
    moved on."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE campaigns_message")
    Message.objects.filter(pk__in=ids).update(status=status, queued_at=timezone.now())


def _plans_of_message_updates(queries: list[dict[str, Any]]) -> list[str]:
    plans = []
    with connection.cursor() as cursor:
        for query in queries:
            if query["sql"].lstrip().startswith("UPDATE campaigns_message"):
                cursor.execute(f"EXPLAIN {query['sql']}")
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


@pytest.fixture
def run(db: None, redis_client: Any) -> CampaignRun:
    client = Client.objects.create(slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net")
    channel = console_email_channel(client, provider="null")
    MessageTemplate.objects.create(client=client, channel=channel, template_id=1, name="T", subject="Hi")
    return CampaignRun.objects.create(
        client=client, channel=channel, campaign_id=1, state=RunState.SENDING, paging_done=True
    )


def test_a_send_batch_claims_and_records_its_rows_by_primary_key(run: CampaignRun) -> None:
    ids = _messages(run, MessageStatus.PENDING)
    _statistics_say_none_are(MessageStatus.QUEUED, ids)
    with CaptureQueriesContext(connection) as queries:
        outcome = services.message_batch_send(message_ids=ids[:BATCH])
    assert outcome.sent == BATCH
    plans = _plans_of_message_updates(queries.captured_queries)
    assert len(plans) == 2  # the claim and the record
    for plan in plans:
        assert not any(index in plan for index in PARTIAL_STATUS_INDEXES), plan
