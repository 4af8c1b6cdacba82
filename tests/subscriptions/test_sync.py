"""Consent reaches Optimove (the sandbox, served by a real gunicorn): SetCustomerChannelPreference in
calls of at most 50,000 with the right CommunicationMode, the consent attribute created once and
filled in calls of at most 1,000, each customer once, nothing pushed twice, later changes pushed once.
The sync runs in-process; Optimove's side is what the sandbox recorded."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import F

from apps.clients.models import Channel
from apps.clients.push_apps import push_app_upsert
from apps.sandbox.models import SandboxAttribute, SandboxAttributeUpdate
from apps.subscriptions.models import ConsentAttribute, ConsentSyncCall, Subscription
from apps.subscriptions.sync import ChannelSyncResult, subscriptions_sync
from tests.conftest import wait_for
from tests.subscriptions.sync_support import (
    ATTRIBUTE,
    IN,
    MODES,
    OUT,
    UNKNOWN,
    Consent,
    accepted,
    after_each_call,
    consent,
    pending,
    sandbox_server,
    set_states,
)

__all__ = ["after_each_call", "consent", "sandbox_server"]


def result(channel: Channel, **counts: Any) -> ChannelSyncResult:
    return ChannelSyncResult(
        channel_id=channel.pk,
        optimove_channel_id=channel.optimove_channel_id,
        method=channel.consent_sync,
        **counts,
    )


def test_120000_changes_reach_optimove_in_calls_of_at_most_50000_each_customer_once(consent: Consent) -> None:
    # One in six opted in, the rest opted out, interleaved: the opted-out fill two full calls while the
    # opted-in wait for the end of the walk.
    states = {f"c{i:06d}": IN if i % 6 == 0 else OUT for i in range(120_000)}
    set_states(consent.email, states)

    first = subscriptions_sync(channel=consent.email)

    calls = consent.preference_calls()
    assert [(mode, app_id, len(ids)) for mode, app_id, ids in calls] == [
        (MODES[OUT], "", 50_000),
        (MODES[OUT], "", 50_000),
        (MODES[IN], "", 20_000),
    ]
    sent = [(customer_id, mode) for mode, _app, ids in calls for customer_id in ids]
    assert len(sent) == len(set(sent)) == 120_000
    assert dict(sent) == {customer_id: MODES[status] for customer_id, status in states.items()}
    assert first == result(consent.email, pushed=120_000, calls=3)
    assert consent.statuses("SetCustomerChannelPreference") == [200, 200, 200]
    assert len(accepted(consent.email)) == 120_000
    assert pending(consent.email) == {}
    assert list(
        ConsentSyncCall.objects.order_by("id").values_list("state", "communication_mode", "customers")
    ) == [
        ("accepted", MODES[OUT], 50_000),
        ("accepted", MODES[OUT], 50_000),
        ("accepted", MODES[IN], 20_000),
    ]

    # Nothing new: nothing is pushed.
    second = subscriptions_sync(channel=consent.email)

    assert second == result(consent.email)
    assert len(consent.preference_calls()) == 3

    # Two changes after the sync (one customer opts in again, a new one is unknown) and one no-op
    # (already opted out): the next sync pushes exactly the two, once.
    set_states(consent.email, {"c000001": IN, "new-1": UNKNOWN, "c000002": OUT})

    third = subscriptions_sync(channel=consent.email)
    fourth = subscriptions_sync(channel=consent.email)

    assert consent.preference_calls()[3:] == [(MODES[IN], "", ["c000001"]), (MODES[UNKNOWN], "", ["new-1"])]
    assert third == result(consent.email, pushed=2, calls=2)
    assert fourth == result(consent.email)
    assert len(accepted(consent.email)) == 120_001


def test_a_push_channel_names_its_first_active_app(consent: Consent) -> None:
    push_app_upsert(channel=consent.push, app_id="app-retired", name="Old app", is_active=False)
    push_app_upsert(channel=consent.push, app_id="app-main", name="Main app")
    push_app_upsert(channel=consent.push, app_id="app-second", name="Second app")
    set_states(consent.push, {"p1": OUT, "p2": OUT})

    subscriptions_sync(channel=consent.push)

    assert consent.preference_calls(506) == [(MODES[OUT], "app-main", ["p1", "p2"])]


def test_the_attribute_is_created_once_and_filled_in_calls_of_at_most_1000(consent: Consent) -> None:
    # 3,500 customers: three full calls and an uneven last one of 500.
    states = {f"s{i:05d}": (IN, OUT, UNKNOWN)[i % 3] for i in range(3_500)}
    set_states(consent.sms, states)

    first = subscriptions_sync(channel=consent.sms)

    assert consent.statuses("AddCustomerAttribute") == [200]
    created = SandboxAttribute.objects.get(account=consent.account)
    assert (created.name, created.type, created.default_value) == (ATTRIBUTE, "VARCHAR(10)", "unknown")
    assert list(ConsentAttribute.objects.values_list("client__slug", "name", "note")) == [
        ("acme", ATTRIBUTE, "")
    ]
    calls = consent.attribute_calls()
    assert [len(call) for call in calls] == [1_000, 1_000, 1_000, 500]
    sent = [(customer_id, attributes) for call in calls for customer_id, attributes in call]
    assert len({customer_id for customer_id, _ in sent}) == len(sent) == 3_500
    assert dict(sent) == {customer_id: [(ATTRIBUTE, status)] for customer_id, status in states.items()}
    assert first == result(consent.sms, pushed=3_500, calls=4)
    assert len(accepted(consent.sms)) == 3_500
    # Each call's callback (the sandbox answers after the call) arrives and reports success.
    wait_for(
        lambda: not ConsentSyncCall.objects.filter(channel=consent.sms, callback_received_at=None).exists(),
        15,
        "the four callbacks",
    )
    assert list(
        ConsentSyncCall.objects.order_by("id").values_list("customers", "callback_success", "rejected")
    ) == [
        (1_000, True, 0),
        (1_000, True, 0),
        (1_000, True, 0),
        (500, True, 0),
    ]

    second = subscriptions_sync(channel=consent.sms)
    set_states(consent.sms, {"s00000": OUT, "s00001": OUT})  # s00001 was opted out already
    third = subscriptions_sync(channel=consent.sms)

    assert second == result(consent.sms)
    assert third == result(consent.sms, pushed=1, calls=1)
    assert consent.attribute_calls()[4:] == [[("s00000", [(ATTRIBUTE, OUT)])]]
    assert consent.statuses("AddCustomerAttribute") == [200]  # once across all the syncs


def test_a_change_made_while_its_call_is_in_flight_is_pushed_again(
    consent: Consent, after_each_call: Any
) -> None:
    set_states(consent.email, {"a": OUT, "b": OUT})

    # The customer opts in again after Optimove took the opt-out, before the sync recorded it.
    after_each_call(
        "set_customer_channel_preference",
        lambda made: set_states(consent.email, {"a": IN}) if made == 1 else None,
    )
    first = subscriptions_sync(channel=consent.email)

    assert consent.preference_calls() == [(MODES[OUT], "", ["a", "b"])]
    assert first == result(consent.email, pushed=2, calls=1)
    assert accepted(consent.email) == {"b"}
    assert pending(consent.email) == {"a": ""}

    second = subscriptions_sync(channel=consent.email)

    assert consent.preference_calls()[1:] == [(MODES[IN], "", ["a"])]
    assert second == result(consent.email, pushed=1, calls=1)
    assert accepted(consent.email) == {"a", "b"}


def test_channels_off_or_inactive_are_skipped_and_push_nothing(consent: Consent) -> None:
    set_states(consent.email, {"x": OUT})
    set_states(consent.sms, {"x": OUT})
    Channel.objects.filter(pk=consent.email.pk).update(consent_sync="off")
    Channel.objects.filter(pk=consent.sms.pk).update(is_active=False)
    consent.email.refresh_from_db()
    consent.sms.refresh_from_db()

    off = subscriptions_sync(channel=consent.email)
    inactive = subscriptions_sync(channel=consent.sms)

    assert off.skipped == "consent sync is off for this channel (shared through Optimove's batch process)"
    assert inactive.skipped == "the channel is inactive"
    assert consent.statuses("SetCustomerChannelPreference") == []
    assert consent.statuses("UpdateCustomerAttributes") == consent.statuses("AddCustomerAttribute") == []
    assert Subscription.objects.filter(synced_version=F("sync_version")).count() == 0


def test_two_channels_filling_one_attribute_are_refused(consent: Consent) -> None:
    Channel.objects.filter(pk=consent.email.pk).update(
        consent_sync="attribute", consent_attribute="smsconsent"
    )
    set_states(consent.sms, {"x": OUT})

    outcome = subscriptions_sync(channel=consent.sms)

    assert (
        outcome.skipped
        == "channel 504 fills the consent attribute 'SmsConsent' too: each channel needs its own"
    )
    assert consent.statuses("AddCustomerAttribute") == []
    assert pending(consent.sms) == {"x": ""}


def test_callbacks_name_each_call(consent: Consent) -> None:
    """Every UpdateCustomerAttributes call carries a CallbackURL of ours with a signed token, never
    the API key."""
    set_states(consent.sms, {f"s{i}": OUT for i in range(3)})
    subscriptions_sync(channel=consent.sms)

    url = SandboxAttributeUpdate.objects.get().callback_url
    assert url.startswith(f"{consent.base_url}/optimove/attributes-callback/?token=")
    assert consent.account.api_key not in url
    wait_for(lambda: SandboxAttributeUpdate.objects.get().callback_status == "delivered", 10, "the callback")
    call = ConsentSyncCall.objects.get()
    assert (call.callback_success, call.rejected, call.callback_note) == (True, 0, "")
    assert Counter(SandboxAttributeUpdate.objects.values_list("callback_http_status", flat=True)) == {200: 1}


def test_a_full_sync_pushes_every_state_again_each_once(consent: Consent, settings: Any) -> None:
    settings.SUBSCRIPTIONS_SYNC_PREFERENCE_BATCH_SIZE = 2
    states = {"c1": OUT, "c2": IN, "c3": OUT, "c4": OUT, "c5": OUT}
    set_states(consent.email, states)
    subscriptions_sync(channel=consent.email)
    before = len(consent.preference_calls())
    set_states(consent.email, {"c6": OUT})  # one pending among the accepted

    full = subscriptions_sync(channel=consent.email, full=True)

    again = consent.preference_calls()[before:]
    assert [(mode, len(ids)) for mode, _app, ids in again] == [
        (MODES[OUT], 2),
        (MODES[OUT], 2),
        (MODES[IN], 1),
        (MODES[OUT], 1),
    ]
    assert sorted(customer_id for _mode, _app, ids in again for customer_id in ids) == [
        "c1",
        "c2",
        "c3",
        "c4",
        "c5",
        "c6",
    ]
    assert full == result(consent.email, pushed=6, calls=4)
    assert accepted(consent.email) == {"c1", "c2", "c3", "c4", "c5", "c6"}
