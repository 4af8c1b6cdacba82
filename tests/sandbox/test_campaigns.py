"""Campaign audiences generated from a seed: stable, complete, paged like Optimove, and fast."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.sandbox.models import SandboxAccount, SandboxCampaign
from tests.sandbox.conftest import Api

pytestmark = pytest.mark.django_db

SEND_DETAILS = "/current/customers/GetCustomerSendDetailsByChannel"
BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _campaign(account: SandboxAccount, **overrides: Any) -> SandboxCampaign:
    values: dict[str, Any] = {
        "account": account,
        "campaign_id": 1111,
        "channel_id": 504,
        "size": 1000,
        "seed": 42,
        "template_ids": [14, 15],
        "send_offsets_seconds": [0, 5, 15],
        "attributes": {"Email": "email", "FirstName": "first_name", "Country": "country"},
        "base_time": BASE,
    }
    values.update(overrides)
    return SandboxCampaign.objects.create(**values)


def _page(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = api.get(SEND_DETAILS, ChannelID=504, CampaignID=1111, **params)
    assert response.status_code == 200, response.content
    rows: list[dict[str, Any]] = response.json()
    return rows


def test_the_same_seed_gives_the_same_rows(api: Api, account: SandboxAccount) -> None:
    campaign = _campaign(account)
    first = _page(api, CustomerAttributes="Email;FirstName;Country", **{"$top": 50, "$skip": 100})
    campaign.delete()
    _campaign(account)

    assert _page(api, CustomerAttributes="Email;FirstName;Country", **{"$top": 50, "$skip": 100}) == first
    assert len(first) == 50


def test_a_different_seed_gives_different_rows(api: Api, account: SandboxAccount) -> None:
    campaign = _campaign(account)
    first = _page(api, CustomerAttributes="Email;FirstName", **{"$top": 50})
    campaign.seed = 43
    campaign.save()

    second = _page(api, CustomerAttributes="Email;FirstName", **{"$top": 50})

    assert {row["CustomerID"] for row in first}.isdisjoint({row["CustomerID"] for row in second})
    assert [row["CustomerAttributes"][0] for row in first] != [row["CustomerAttributes"][0] for row in second]


def test_pages_are_disjoint_and_cover_every_customer_once(api: Api, account: SandboxAccount) -> None:
    _campaign(account, size=2503)

    pages = [_page(api, **{"$top": 1000, "$skip": skip}) for skip in (0, 1000, 2000, 3000)]

    assert [len(page) for page in pages] == [1000, 1000, 503, 0]
    ids = [row["CustomerID"] for page in pages for row in page]
    assert len(ids) == len(set(ids)) == 2503
    assert ids == [f"42-{i}" for i in range(2503)]


def test_every_template_and_offset_is_used(api: Api, account: SandboxAccount) -> None:
    _campaign(account, size=6)

    rows = _page(api)

    assert {row["TemplateID"] for row in rows} == {14, 15}
    assert {row["ScheduledTime"] for row in rows} == {
        "2026-03-02 09:00:00",
        "2026-03-02 09:00:05",
        "2026-03-02 09:00:15",
    }
    # Six customers, six (template, time) pairs: each pair exactly once.
    assert len({(row["TemplateID"], row["ScheduledTime"]) for row in rows}) == 6


def test_templates_and_offsets_are_spread_evenly_over_a_big_campaign(
    api: Api, account: SandboxAccount
) -> None:
    _campaign(account, size=600)

    rows = _page(api)

    assert Counter(row["TemplateID"] for row in rows) == {14: 300, 15: 300}
    assert sorted(Counter(row["ScheduledTime"] for row in rows).values()) == [200, 200, 200]


def test_attributes_come_in_request_order_with_a_fallback_for_unconfigured_names(
    api: Api, account: SandboxAccount
) -> None:
    _campaign(
        account, attributes={"Email": "email", "Phone": "phone", "Tier": "const:gold", "Odd": "nonsense"}
    )

    rows = _page(api, CustomerAttributes="Tier;Loyalty;email;Phone;Odd", **{"$top": 1, "$skip": 7})

    assert rows[0]["CustomerID"] == "42-7"
    tier, loyalty, email, phone, odd = rows[0]["CustomerAttributes"]
    assert (tier, loyalty, email, odd) == ("gold", "Loyalty-7", "customer7.42@example.test", "Odd-7")
    assert phone.startswith("+1555")
    assert len(phone) == 12


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("first_name", lambda v: v.isalpha() and v[0].isupper()),
        ("last_name", lambda v: v[0].isupper()),
        ("country", lambda v: len(v) == 2 and v.isupper()),
        ("device_token", lambda v: len(v) == 64 and int(v, 16) >= 0),
        ("url", lambda v: v.startswith("https://hooks.example.test/42/")),
        ("number", lambda v: 0 <= int(v) < 1000),
    ],
)
def test_each_attribute_kind_has_a_plausible_value(
    api: Api, account: SandboxAccount, kind: str, check: Any
) -> None:
    _campaign(account, attributes={"Value": kind})

    values = [row["CustomerAttributes"][0] for row in _page(api, CustomerAttributes="Value", **{"$top": 20})]

    assert all(check(value) for value in values), values


def test_phones_emails_and_device_tokens_are_unique_within_a_campaign(
    api: Api, account: SandboxAccount
) -> None:
    _campaign(account, size=5000, attributes={"E": "email", "P": "phone", "D": "device_token"})

    rows = _page(api, CustomerAttributes="E;P;D", **{"$top": 5000})

    for position in range(3):
        assert len({row["CustomerAttributes"][position] for row in rows}) == 5000


def test_top_is_capped_at_10000(api: Api, account: SandboxAccount) -> None:
    _campaign(account, size=12_000)

    assert len(_page(api, **{"$top": 20_000})) == 10_000
    assert len(_page(api)) == 10_000  # no $top: a full page
    assert len(_page(api, **{"$top": 20_000, "$skip": 10_000})) == 2_000


def test_a_page_past_the_end_is_empty(api: Api, account: SandboxAccount) -> None:
    _campaign(account, size=10)

    assert _page(api, **{"$skip": 10}) == []
    assert _page(api, **{"$skip": 1_000_000}) == []


def test_a_10000_row_page_of_a_huge_campaign_takes_under_a_second(api: Api, account: SandboxAccount) -> None:
    _campaign(account, size=50_000_000)
    started = time.perf_counter()

    rows = _page(api, CustomerAttributes="Email;FirstName;Country", **{"$top": 10_000, "$skip": 40_000_000})

    elapsed = time.perf_counter() - started
    assert len(rows) == 10_000
    assert rows[0]["CustomerID"] == "42-40000000"
    assert elapsed < 1.0, f"took {elapsed:.2f}s"


# --- the sandbox_campaign command -----------------------------------------------------------------------


def test_sandbox_campaign_creates_then_updates_the_same_campaign(
    account: SandboxAccount, capsys: Any
) -> None:
    call_command(
        "sandbox_campaign",
        "--account=acme",
        "--campaign-id=2001",
        "--channel-id=505",
        "--size=30",
        "--seed=9",
        "--templates=7,8",
        "--send-offsets=0,60",
        "--attributes=Phone:phone,Tier:const:gold",
    )
    created = capsys.readouterr().out
    call_command("sandbox_campaign", "--account=acme", "--campaign-id=2001", "--channel-id=505", "--size=40")
    updated = capsys.readouterr().out

    campaign = SandboxCampaign.objects.get()
    assert (campaign.size, campaign.seed, campaign.template_ids, campaign.send_offsets_seconds) == (
        40,
        9,
        [7, 8],
        [0, 60],
    )
    assert campaign.attributes == {"Phone": "phone", "Tier": "const:gold"}
    assert created.startswith("Created account 'acme' campaign 2001 channel 505: 30 customers, seed 9")
    assert updated.startswith("Updated account 'acme' campaign 2001 channel 505: 40 customers, seed 9")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account=nobody", "--size=1"], "No sandbox account named 'nobody' (known: acme)"),
        (["--account=acme"], "size is required to create a campaign"),
        (
            ["--account=acme", "--size=5", "--templates=a,b"],
            "--templates takes whole numbers separated by commas",
        ),
        (
            ["--account=acme", "--size=5", "--attributes=Email:mail"],
            "attributes: unknown kind 'mail' for Email",
        ),
        (["--account=acme", "--size=5", "--attributes=Email"], "--attributes takes Name:kind pairs"),
        (
            ["--account=acme", "--size=5", "--send-offsets=-5"],
            "send offsets: -5 is not a whole number of at least 0",
        ),
        (["--account=acme", "--size=5", "--base-time=2026-03-02T09:00"], "--base-time needs a UTC offset"),
    ],
)
def test_sandbox_campaign_refuses_bad_input_and_stores_nothing(
    account: SandboxAccount, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("sandbox_campaign", "--campaign-id=1", "--channel-id=504", *args)

    assert not SandboxCampaign.objects.exists()


def test_the_admin_refuses_a_campaign_with_an_unknown_attribute_kind(
    admin_client: Any, account: SandboxAccount
) -> None:
    campaign = _campaign(account)
    form = {
        "account": account.pk,
        "campaign_id": 1111,
        "channel_id": 504,
        "size": 1000,
        "seed": 42,
        "template_ids": "[14, 15]",
        "send_offsets_seconds": "[0, 5, 15]",
        "attributes": '{"Email": "mail"}',
        "base_time_0": "2026-03-02",
        "base_time_1": "09:00:00",
        "cancelled_count": 0,
        "target_group_id": 1,
        "campaign_type": "Scheduled",
        "duration": 1,
        "lead_time": 0,
        "status": "Executed",
    }

    response = admin_client.post(f"/admin/sandbox/sandboxcampaign/{campaign.pk}/change/", form)

    assert response.status_code == 200  # the form again, with the error
    assert "attributes: unknown kind &#x27;mail&#x27; for Email" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.attributes == {"Email": "email", "FirstName": "first_name", "Country": "country"}
    form["attributes"] = '{"Email": "email"}'
    assert admin_client.post(f"/admin/sandbox/sandboxcampaign/{campaign.pk}/change/", form).status_code == 302
    campaign.refresh_from_db()
    assert campaign.attributes == {"Email": "email"}
