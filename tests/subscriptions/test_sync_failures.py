"""A consent sync that fails: Optimove down (503) or rate-limiting (429) half-way through stops the run
and the next run sends exactly what was not accepted; a refusal (400) marks its call's customers with
the error and the run goes on; the periodic run leaves refused rows alone until a person sends them."""

from __future__ import annotations

from typing import Any

import pytest

from apps.sandbox.models import SandboxAttribute
from apps.subscriptions.models import ConsentAttribute, ConsentSyncCall
from apps.subscriptions.sync import ChannelSyncResult, channels_due, subscriptions_sync
from tests.subscriptions.sync_support import (
    ATTRIBUTE,
    MODES,
    OUT,
    Consent,
    accepted,
    after_each_call,
    consent,
    pending,
    sandbox_server,
    set_states,
)

__all__ = ["after_each_call", "consent", "sandbox_server"]

FIVE = {f"c{i}": OUT for i in range(1, 6)}


def result(consent: Consent, **counts: Any) -> ChannelSyncResult:
    channel = consent.email
    return ChannelSyncResult(
        channel_id=channel.pk,
        optimove_channel_id=channel.optimove_channel_id,
        method=channel.consent_sync,
        **counts,
    )


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (503, "Optimove SetCustomerChannelPreference answered 503 after 2 attempts"),
        (429, "Optimove SetCustomerChannelPreference answered 429 after 2 attempts"),
    ],
)
def test_an_outage_half_way_is_retried_by_the_next_run_without_loss_or_repeats(
    consent: Consent, after_each_call: Any, settings: Any, status: int, error: str
) -> None:
    settings.SUBSCRIPTIONS_SYNC_PREFERENCE_BATCH_SIZE = 2  # five customers: calls of 2, 2 and 1
    set_states(consent.email, FIVE)
    # Optimove accepts the first call, then answers `status` to everything (the client retries once).
    after_each_call(
        "set_customer_channel_preference",
        lambda made: consent.set_faults(1.0, [status]) if made == 1 else None,
    )

    failed = subscriptions_sync(channel=consent.email)

    assert consent.statuses("SetCustomerChannelPreference") == [200, status, status]
    assert consent.preference_calls() == [(MODES[OUT], "", ["c1", "c2"])]
    assert failed == result(consent, pushed=2, calls=1, complete=False, stopped=error)
    assert accepted(consent.email) == {"c1", "c2"}
    assert pending(consent.email) == {"c3": "", "c4": "", "c5": ""}  # untouched: no error recorded
    assert list(ConsentSyncCall.objects.order_by("id").values_list("state", "customers", "error")) == [
        ("accepted", 2, ""),
        ("failed", 2, error),
    ]
    assert channels_due() == [consent.email.pk]  # the periodic run comes back for them

    consent.set_faults(0.0)
    recovered = subscriptions_sync(channel=consent.email)

    assert recovered == result(consent, pushed=3, calls=2)
    assert consent.preference_calls()[1:] == [(MODES[OUT], "", ["c3", "c4"]), (MODES[OUT], "", ["c5"])]
    every_id = [customer_id for _mode, _app, ids in consent.preference_calls() for customer_id in ids]
    assert sorted(every_id) == sorted(FIVE)  # each customer exactly once, over both runs
    assert accepted(consent.email) == set(FIVE)
    assert channels_due() == []


def test_a_refused_call_marks_its_customers_and_the_run_goes_on(
    consent: Consent, after_each_call: Any, settings: Any
) -> None:
    settings.SUBSCRIPTIONS_SYNC_PREFERENCE_BATCH_SIZE = 2
    set_states(consent.email, FIVE)
    consent.set_faults(1.0, [400])  # the first call is refused, then Optimove takes the rest
    after_each_call("set_customer_channel_preference", lambda made: consent.set_faults(0.0))

    run = subscriptions_sync(channel=consent.email)

    refusal = "SetCustomerChannelPreference refused: Optimove SetCustomerChannelPreference answered 400"
    assert consent.statuses("SetCustomerChannelPreference") == [400, 200, 200]
    assert run == result(consent, pushed=3, calls=2, refused=2, refused_calls=1)
    assert accepted(consent.email) == {"c3", "c4", "c5"}
    assert pending(consent.email) == {"c1": refusal, "c2": refusal}
    assert list(ConsentSyncCall.objects.order_by("id").values_list("state", "error")) == [
        ("refused", "Optimove SetCustomerChannelPreference answered 400"),
        ("accepted", ""),
        ("accepted", ""),
    ]

    # The periodic run does not send a refused state again every minute...
    assert channels_due() == []
    assert subscriptions_sync(channel=consent.email) == result(consent)
    # ...a person does (the command passes include_failed), and a later change of the customer does.
    retried = subscriptions_sync(channel=consent.email, include_failed=True)
    assert retried == result(consent, pushed=2, calls=1)
    assert consent.preference_calls()[-1] == (MODES[OUT], "", ["c1", "c2"])
    assert pending(consent.email) == {}


def test_a_refused_change_is_due_again_once_the_customer_changes(consent: Consent) -> None:
    set_states(consent.email, {"c1": OUT})
    consent.set_faults(1.0, [400])
    subscriptions_sync(channel=consent.email)
    assert channels_due() == []

    set_states(consent.email, {"c1": "opted_in"})  # the service clears the error with the change

    assert pending(consent.email) == {"c1": ""}
    assert channels_due() == [consent.email.pk]


def test_wrong_credentials_stop_the_run_and_touch_no_row(consent: Consent) -> None:
    consent.client.optimove_api_key = "not-the-key"
    consent.client.save()
    set_states(consent.email, FIVE)

    run = subscriptions_sync(channel=consent.email)

    assert run == result(
        consent,
        complete=False,
        stopped="Optimove SetCustomerChannelPreference rejected the credentials (401): "
        "check the client's Optimove credentials",
    )
    assert pending(consent.email) == dict.fromkeys(FIVE, "")
    assert "not-the-key" not in run.stopped


def test_an_outage_while_creating_the_attribute_stops_before_any_update(consent: Consent) -> None:
    set_states(consent.sms, {"s1": OUT, "s2": OUT})
    consent.set_faults(1.0, [503])

    failed = subscriptions_sync(channel=consent.sms)

    assert consent.statuses("AddCustomerAttribute") == [503, 503]
    assert consent.statuses("UpdateCustomerAttributes") == []
    assert (
        failed.stopped == "AddCustomerAttribute: Optimove AddCustomerAttribute answered 503 after 2 attempts"
    )
    assert not failed.complete
    assert not ConsentAttribute.objects.exists()
    assert pending(consent.sms) == {"s1": "", "s2": ""}

    consent.set_faults(0.0)
    recovered = subscriptions_sync(channel=consent.sms)

    assert consent.statuses("AddCustomerAttribute") == [503, 503, 200]
    assert consent.attribute_calls() == [[("s1", [(ATTRIBUTE, OUT)]), ("s2", [(ATTRIBUTE, OUT)])]]
    assert (recovered.pushed, recovered.calls, recovered.complete) == (2, 1, True)


def test_an_attribute_that_exists_already_is_taken_as_existing(consent: Consent) -> None:
    """Optimove answers 400 to a second AddCustomerAttribute of the same name (the sandbox does): the
    attribute is recorded with a note and filled."""
    SandboxAttribute.objects.create(account=consent.account, name=ATTRIBUTE, type="VARCHAR(10)")
    set_states(consent.sms, {"s1": OUT})

    run = subscriptions_sync(channel=consent.sms)

    assert consent.statuses("AddCustomerAttribute") == [400]
    assert list(ConsentAttribute.objects.values_list("name", "note")) == [
        (ATTRIBUTE, "Optimove answered 400 (it does so for a name that exists already): taken as existing")
    ]
    assert consent.attribute_calls() == [[("s1", [(ATTRIBUTE, OUT)])]]
    assert (run.pushed, run.calls) == (1, 1)
