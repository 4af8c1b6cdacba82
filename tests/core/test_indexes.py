"""The tables written for every message, trigger and provider event carry no index that another index
already serves. Each index is written on every insert and on every update that cannot stay in place (a
message is updated three times), and Django adds one to every foreign key unless told not to."""

from __future__ import annotations

import pytest
from django.db import connection

# Written once or more for each message sent.
HOT_TABLES = ("campaigns_message", "optimove_notification", "delivery_deliveryevent")

# Index A is redundant when index B starts with A's columns, with the same operator classes, and neither
# is partial, unique or on expressions: every query A serves, B serves.
REDUNDANT = """
SELECT a.indrelid::regclass::text, a.indexrelid::regclass::text, b.indexrelid::regclass::text
  FROM pg_index a
  JOIN pg_index b ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid
 WHERE a.indrelid::regclass::text = ANY(%s)
   AND NOT a.indisunique AND a.indpred IS NULL AND a.indexprs IS NULL
   AND b.indpred IS NULL AND b.indexprs IS NULL
   AND (b.indkey::text || ' ') LIKE (a.indkey::text || ' %%')
   AND (b.indclass::text || ' ') LIKE (a.indclass::text || ' %%')
 ORDER BY 1, 2, 3
"""


@pytest.mark.django_db
def test_no_index_on_a_hot_table_is_served_by_another() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s)", [list(HOT_TABLES)])
        assert cursor.fetchone()[0] == len(HOT_TABLES)
        cursor.execute(REDUNDANT, [list(HOT_TABLES)])
        assert cursor.fetchall() == []


@pytest.mark.django_db
def test_the_check_finds_a_redundant_index() -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE INDEX probe_customer_run ON campaigns_message (customer_id, run_id)")
        cursor.execute(REDUNDANT, [list(HOT_TABLES)])
        assert cursor.fetchall() == [("campaigns_message", "message_customer", "probe_customer_run")]
