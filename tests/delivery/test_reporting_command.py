"""`manage.py optimove_report SLUG [--campaign ID]`: reports now and says per run what it sent (counts,
never customer ids). Optimove is replaced by `responses`; the database and Redis are real."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.campaigns.models import RunKind
from apps.clients.models import Client
from apps.delivery.models import OptimoveReport
from tests.delivery.test_reporting import add_message, make_run
from tests.delivery.test_reporting_failures import BASE, FakeOptimove, acme, optimove  # noqa: F401

REALTIME_OK = (
    "campaign 2001 on channel 505 (realtime): OK: metrics 6 in 1 call; interactions 1 customer id in 1 call."
)


def run_command(*args: str) -> str:
    out = StringIO()
    call_command("optimove_report", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def two_runs(acme: Client) -> Client:  # noqa: F811
    yesterday = timezone.now() - timedelta(days=1)
    scheduled = make_run(acme, campaign_id=1001, channel_id=504)
    add_message(scheduled, "secret-customer-1", 14, sent_at=yesterday, delivered_at=yesterday)
    add_message(scheduled, "secret-customer-2", 15, sent_at=yesterday)
    realtime = make_run(acme, campaign_id=2001, channel_id=505, kind=RunKind.REALTIME)
    add_message(realtime, "secret-customer-3", 7, sent_at=yesterday)
    stale = make_run(acme, campaign_id=3001, channel_id=506)
    add_message(stale, "secret-customer-4", 7, sent_at=timezone.now() - timedelta(days=8))
    return acme


def test_the_output_says_what_each_run_sent(two_runs: Client, optimove: FakeOptimove) -> None:  # noqa: F811
    output = run_command("acme")

    assert output == (
        f"Reporting client 'acme' to {BASE}: 2 runs.\n"
        "campaign 1001 on channel 504 (scheduled): OK: metrics 12 in 1 call; "
        "interactions 3 customer ids in 3 calls.\n"
        f"{REALTIME_OK}\n"
    )
    assert len(optimove.accepted) == 6
    assert "secret-customer" not in output


def test_one_campaign_only(two_runs: Client, optimove: FakeOptimove) -> None:  # noqa: F811
    output = run_command("acme", "--campaign", "2001")

    assert output.splitlines()[1:] == [REALTIME_OK]
    assert set(OptimoveReport.objects.values_list("run__campaign_id", flat=True)) == {2001}


def test_a_failure_is_shown_and_exits_non_zero(two_runs: Client, optimove: FakeOptimove) -> None:  # noqa: F811
    optimove.status = lambda f, b: (
        503 if f == "UpdateCampaignInteractions" and b["CampaignID"] == 1001 else 200
    )
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("optimove_report", "acme", stdout=out)

    assert str(raised.value) == (
        "1 of 2 runs failed to report; what was not accepted is sent again by the next report."
    )
    assert out.getvalue().splitlines()[1:] == [
        "campaign 1001 on channel 504 (scheduled): FAILED: metrics 12 in 1 call; "
        "interactions 0 customer ids in 0 calls; 3 interactions wait for the next report.",
        "  - UpdateCampaignInteractions (event 0, template 14, "
        f"{(timezone.now() - timedelta(days=1)).date().isoformat()}): "
        "Optimove UpdateCampaignInteractions answered 503 after 6 attempts",
        REALTIME_OK,
    ]


def test_a_stale_campaign_is_not_reported(two_runs: Client, optimove: FakeOptimove) -> None:  # noqa: F811
    assert run_command("acme", "--campaign", "3001") == (
        "Nothing to report: campaign 3001 of 'acme' sent no message in the last 7 days.\n"
    )
    assert optimove.accepted == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope",), "No client with slug 'nope'. Known slugs: acme."),
        (("acme", "--campaign", "9"), "Client 'acme' has no run of campaign 9."),
        (("acme", "--campaign", "0"), "--campaign must be a positive CampaignID, got 0."),
    ],
)
def test_bad_input_is_named_and_changes_nothing(
    two_runs: Client,
    optimove: FakeOptimove,  # noqa: F811
    args: tuple[str, ...],
    message: str,
) -> None:
    with pytest.raises(CommandError) as raised:
        run_command(*args)

    assert str(raised.value) == message
    assert optimove.accepted == optimove.refused == []
    assert not OptimoveReport.objects.exists()


def test_an_inactive_client_is_reported_with_a_note(two_runs: Client, optimove: Any) -> None:  # noqa: F811
    Client.objects.filter(slug="acme").update(is_active=False)

    output = run_command("acme", "--campaign", "2001")

    assert output.splitlines()[0] == "Note: client 'acme' is marked inactive; the periodic report skips it."
    assert len(optimove.accepted) == 2
