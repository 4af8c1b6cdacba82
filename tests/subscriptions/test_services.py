from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.clients.models import Channel
from apps.subscriptions.models import ConsentSource, ConsentStatus, Subscription, SubscriptionChange
from apps.subscriptions.selectors import opted_out_customers, subscription_status
from apps.subscriptions.services import ConsentUpdate, subscription_opt_out, subscriptions_set

OUT = ConsentStatus.OPTED_OUT
IN = ConsentStatus.OPTED_IN


def test_a_change_stores_the_state_the_history_and_a_sync_version(email: Channel, sms: Channel) -> None:
    at = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert subscription_opt_out(
        channel=email, customer_id="c1", source=ConsentSource.ADMIN, detail="by ops", at=at
    )

    row = Subscription.objects.get(channel=email, customer_id="c1")
    assert (row.status, row.source, row.changed_at, row.sync_version, row.synced_version) == (
        OUT,
        ConsentSource.ADMIN,
        at,
        1,
        0,
    )
    assert list(row.changes.values_list("status", "source", "detail", "created_at")) == [
        (OUT, ConsentSource.ADMIN, "by ops", at)
    ]
    assert opted_out_customers(channel_id=email.pk, customer_ids=["c1", "c2"]) == {"c1"}
    assert opted_out_customers(channel_id=sms.pk, customer_ids=["c1"]) == set()
    assert subscription_status(channel_id=sms.pk, customer_id="c1") == ConsentStatus.UNKNOWN


def test_the_same_state_again_changes_nothing_and_a_new_state_bumps_the_version(email: Channel) -> None:
    subscription_opt_out(channel=email, customer_id="c1", source=ConsentSource.ADMIN)
    assert not subscription_opt_out(channel=email, customer_id="c1", source=ConsentSource.API)
    assert SubscriptionChange.objects.count() == 1

    changed = subscriptions_set(
        channel=email, updates=[ConsentUpdate("c1", IN), ConsentUpdate("c2", IN)], source=ConsentSource.API
    )
    assert changed == 2
    row = Subscription.objects.get(customer_id="c1")
    assert (row.status, row.source, row.sync_version) == (IN, ConsentSource.API, 2)
    assert subscription_status(channel_id=email.pk, customer_id="c1") == IN
    assert SubscriptionChange.objects.count() == 3


def test_the_last_update_of_a_customer_in_one_call_wins(email: Channel) -> None:
    updates = [ConsentUpdate("c1", OUT), ConsentUpdate("c1", IN)]
    assert subscriptions_set(channel=email, updates=updates, source=ConsentSource.CSV_IMPORT) == 1
    assert subscription_status(channel_id=email.pk, customer_id="c1") == IN


@pytest.mark.parametrize(
    ("update", "message"),
    [
        (ConsentUpdate("", OUT), "updates[1]: a customer id must be a non-empty string"),
        (ConsentUpdate(" c9", OUT), "updates[1]: a customer id must be a non-empty string"),
        (ConsentUpdate("x" * 129, OUT), "updates[1]: a customer id is at most 128 characters"),
        (
            ConsentUpdate("c9", "unsubscribed"),
            "updates[1]: status must be one of opted_in, opted_out, unknown",
        ),
    ],
)
def test_bad_input_names_the_update_and_writes_nothing(
    email: Channel, update: ConsentUpdate, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        subscriptions_set(channel=email, updates=[ConsentUpdate("c1", OUT), update], source=ConsentSource.API)
    assert not Subscription.objects.exists()
    assert not SubscriptionChange.objects.exists()


def test_an_unknown_source_is_refused(email: Channel) -> None:
    with pytest.raises(ValueError, match="unknown consent source 'carrier'"):
        subscriptions_set(channel=email, updates=[ConsentUpdate("c1", OUT)], source="carrier")
