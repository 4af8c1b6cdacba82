"""`manage.py optimove_sync_subscriptions SLUG [--channel ID] [--full]` against the sandbox: what it
prints per channel, --full pushing everything, --channel, and clear errors for bad input."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.clients.models import Channel
from tests.subscriptions.sync_support import (
    ATTRIBUTE,
    IN,
    MODES,
    OUT,
    Consent,
    accepted,
    consent,
    pending,
    sandbox_server,
    set_states,
)

__all__ = ["consent", "sandbox_server"]


def run(*args: str) -> str:
    out = StringIO()
    call_command("optimove_sync_subscriptions", *args, stdout=out)
    return out.getvalue()


def test_it_pushes_each_channel_and_says_how_many_in_how_many_calls(consent: Consent) -> None:
    set_states(consent.email, {"e1": OUT, "e2": IN, "e3": OUT})
    set_states(consent.sms, {"s1": OUT})

    output = run("acme")

    assert output.splitlines() == [
        "channel 504 (Email, preference): pushed 3 customers in 2 calls.",
        "channel 505 (SMS, attribute): pushed 1 customer in 1 call.",
        "channel 506 (Push, preference): pushed 0 customers in 0 calls.",
    ]
    assert consent.preference_calls() == [(MODES[IN], "", ["e2"]), (MODES[OUT], "", ["e1", "e3"])]
    assert consent.attribute_calls() == [[("s1", [(ATTRIBUTE, OUT)])]]

    # Nothing new: nothing is pushed; --full pushes every state again.
    assert (
        run("acme", "--channel", "504") == "channel 504 (Email, preference): pushed 0 customers in 0 calls.\n"
    )
    full = run("acme", "--channel", "504", "--full")

    assert full == "channel 504 (Email, preference): pushed 3 customers in 2 calls.\n"
    assert consent.preference_calls()[2:] == [(MODES[IN], "", ["e2"]), (MODES[OUT], "", ["e1", "e3"])]
    assert len(consent.attribute_calls()) == 1  # --channel 504 left the SMS channel alone
    assert accepted(consent.email) == {"e1", "e2", "e3"}


def test_it_sends_refused_states_again_and_fails_when_a_channel_stops(consent: Consent) -> None:
    set_states(consent.email, {"e1": OUT})
    consent.set_faults(1.0, [400])
    with pytest.raises(CommandError, match=r"^1 channel of 'acme' did not sync completely\.$"):
        run("acme", "--channel", "504")
    assert pending(consent.email) == {
        "e1": "SetCustomerChannelPreference refused: Optimove SetCustomerChannelPreference answered 400"
    }

    consent.set_faults(0.0)
    output = run("acme", "--channel", "504")

    assert output == "channel 504 (Email, preference): pushed 1 customer in 1 call.\n"
    assert pending(consent.email) == {}

    set_states(consent.email, {"e1": IN})
    consent.set_faults(1.0, [503])
    out = StringIO()
    with pytest.raises(CommandError, match=r"^1 channel of 'acme' did not sync completely\.$"):
        call_command("optimove_sync_subscriptions", "acme", "--channel", "504", stdout=out)
    assert out.getvalue() == (
        "channel 504 (Email, preference): pushed 0 customers in 0 calls; STOPPED: Optimove "
        "SetCustomerChannelPreference answered 503 after 2 attempts. What was not accepted is pushed by "
        "the next sync.\n"
    )
    assert pending(consent.email) == {"e1": ""}


def test_skipped_channels_say_why(consent: Consent) -> None:
    Channel.objects.filter(pk=consent.sms.pk).update(is_active=False)
    Channel.objects.filter(pk=consent.push.pk).update(consent_sync="off")

    output = run("acme")

    assert output.splitlines() == [
        "channel 504 (Email, preference): pushed 0 customers in 0 calls.",
        "channel 505 (SMS, attribute): skipped: the channel is inactive.",
        "channel 506 (Push, off): skipped: consent sync is off for this channel (shared through Optimove's "
        "batch process).",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "No client with slug 'nope'. Known slugs: acme."),
        (
            ["acme", "--channel", "999"],
            "Client 'acme' has no channel with ChannelID 999. Its channels: 504, 505, 506.",
        ),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(consent: Consent, args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as raised:
        run(*args)
    assert str(raised.value) == message
    assert consent.statuses("SetCustomerChannelPreference") == []


def test_a_channel_with_sync_off_points_to_the_export(consent: Consent) -> None:
    Channel.objects.filter(pk=consent.email.pk).update(consent_sync="off")
    set_states(consent.email, {"e1": OUT})

    with pytest.raises(CommandError) as raised:
        run("acme", "--channel", "504")

    assert str(raised.value) == (
        "Channel 504 of 'acme' has consent sync off: its consent goes to Optimove through the batch process "
        "(manage.py subscriptions_export acme --channel 504)."
    )
    assert consent.statuses("SetCustomerChannelPreference") == []
