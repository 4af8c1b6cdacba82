"""The platform's Optimove client against the sandbox served by a real gunicorn, over HTTP."""

from __future__ import annotations

from array import array
from datetime import date
from typing import Any

import pytest

from apps.optimove.client import OptimoveClient
from apps.optimove.errors import OptimoveAuthError, OptimoveTerminalError
from apps.optimove.types import (
    AttributeValue,
    CampaignInteractions,
    CampaignMetric,
    ChannelApp,
    ChannelTemplate,
    Credentials,
    CustomerAttributeUpdate,
    EventListener,
)
from apps.sandbox.models import (
    SandboxAccount,
    SandboxApp,
    SandboxAttribute,
    SandboxAttributeUpdate,
    SandboxCampaign,
    SandboxInteraction,
    SandboxListener,
    SandboxMetric,
    SandboxPreference,
    SandboxTemplate,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sandbox(web_server: Any, redis_client: Any) -> tuple[str, SandboxAccount]:
    account = SandboxAccount.objects.create(name="it", api_key="key-it", username="it-user", password="it-pw")
    return web_server(), account


def test_every_call_with_an_api_key(sandbox: tuple[str, SandboxAccount]) -> None:
    base, account = sandbox
    api = OptimoveClient(Credentials(base_url=base, api_key=account.api_key))
    _exercise_every_call(api, account)


def test_every_call_with_the_legacy_login(sandbox: tuple[str, SandboxAccount]) -> None:
    base, account = sandbox
    api = OptimoveClient(Credentials(base_url=base, username="it-user", password="it-pw"))
    _exercise_every_call(api, account)


def _exercise_every_call(api: OptimoveClient, account: SandboxAccount) -> None:
    api.register_event_listener(event_type_id=13, listener_url="https://p.test/l/504?token=t", channel_id=504)
    api.register_event_listener(event_type_id=5, listener_url="https://p.test/l/client?token=t")
    assert sorted(api.get_registered_event_listeners(), key=lambda x: x.event_type_id) == [
        EventListener(5, "https://p.test/l/client?token=t", None),
        EventListener(13, "https://p.test/l/504?token=t", 504),
    ]
    api.unregister_event_listener(event_type_id=13, channel_id=504)
    assert list(SandboxListener.objects.filter(account=account).values_list("event_type_id", flat=True)) == [
        5
    ]

    SandboxCampaign.objects.create(
        account=account,
        campaign_id=1111,
        channel_id=504,
        size=25,
        seed=3,
        template_ids=[14, 15],
        send_offsets_seconds=[0, 60],
        attributes={"Email": "email", "Country": "country"},
        cancelled_count=2,
    )
    pages = list(
        api.iter_customer_send_details(
            channel_id=504, campaign_id=1111, attributes=["Email", "Country"], page_size=10
        )
    )
    assert [len(p.rows) for p in pages] == [10, 10, 5]
    rows = [row for page in pages for row in page.rows]
    assert len({r.customer_id for r in rows}) == 25
    assert {r.template_id for r in rows} == {14, 15}
    assert all(r.attributes["Email"].endswith("@example.test") and r.attributes["Country"] for r in rows)
    assert all(r.scheduled_time is not None and r.scheduled_time.tzinfo is not None for r in rows)
    cancelled = api.get_canceled_campaign_customers(campaign_id=1111)
    assert [c.customer_id for c in cancelled] == [rows[0].customer_id, rows[1].customer_id]
    assert api.get_campaign_details(campaign_id=1111).campaign_id == 1111

    api.add_channel_templates(channel_id=504, templates=[ChannelTemplate(i, f"T{i}") for i in range(1, 151)])
    assert len(api.get_channel_templates(channel_id=504)) == 150
    api.delete_channel_templates(channel_id=504, template_ids=list(range(1, 101)))
    assert sorted(
        SandboxTemplate.objects.filter(account=account).values_list("template_id", flat=True)
    ) == list(range(101, 151))
    api.add_channel_apps(channel_id=506, apps=[ChannelApp("app-1", "Shop"), ChannelApp("app-2", "News")])
    api.delete_channel_apps(channel_id=506, app_ids=["app-2"])
    assert list(SandboxApp.objects.filter(account=account).values_list("app_id", flat=True)) == ["app-1"]

    api.update_campaign_metrics(metrics=[CampaignMetric(504, 1111, 14, m, 100 + m) for m in range(5)] * 30)
    assert SandboxMetric.objects.filter(account=account).count() == 5
    ids = tuple(f"c{i}" for i in range(25_001))
    api.update_campaign_interactions(
        interactions=CampaignInteractions(1111, 504, date(2026, 3, 3), 14, 2, ids)
    )
    calls = list(SandboxInteraction.objects.filter(account=account).order_by("id"))
    assert [len(c.customer_ids) for c in calls] == [10_000, 10_000, 5_001]
    assert [cid for c in calls for cid in c.customer_ids] == list(ids)
    api.set_customer_channel_preference(
        channel_id=504, customer_ids=[f"p{i}" for i in range(60_000)], communication_mode=1
    )
    assert [
        len(p.customer_ids) for p in SandboxPreference.objects.filter(account=account).order_by("id")
    ] == [50_000, 10_000]
    api.add_customer_attribute(name="EmailOptIn", type="VARCHAR(10)", default_value="unknown")
    assert SandboxAttribute.objects.filter(account=account, name="EmailOptIn").exists()
    api.update_customer_attributes(
        updates=[
            CustomerAttributeUpdate(f"u{i}", (AttributeValue("EmailOptIn", "yes"),)) for i in range(2_500)
        ]
    )
    assert [
        len(u.customers) for u in SandboxAttributeUpdate.objects.filter(account=account).order_by("id")
    ] == [1_000, 1_000, 500]


def test_bad_credentials_and_bad_parameters_get_optimove_codes(sandbox: tuple[str, SandboxAccount]) -> None:
    base, _ = sandbox
    with pytest.raises(OptimoveAuthError) as wrong_key:
        OptimoveClient(
            Credentials(base_url=base, api_key="nope"), max_retries=0
        ).get_registered_event_listeners()
    assert wrong_key.value.status == 401
    with pytest.raises(OptimoveAuthError) as wrong_password:
        OptimoveClient(
            Credentials(base_url=base, username="it-user", password="bad"), max_retries=0
        ).get_campaign_details(campaign_id=1)
    assert wrong_password.value.status == 401
    api = OptimoveClient(Credentials(base_url=base, api_key="key-it"), max_retries=0)
    with pytest.raises(OptimoveTerminalError) as unknown_campaign:
        api.get_campaign_details(campaign_id=999)
    assert unknown_campaign.value.status == 400
    with pytest.raises(OptimoveTerminalError) as delimiter:
        api._call(
            "GetCustomerSendDetailsByChannel",
            params={"ChannelID": 1, "CampaignID": 1, "CustomerAttributesDelimiter": "|"},
        )
    assert delimiter.value.status == 400


@pytest.mark.slow_ok
def test_a_million_customer_campaign_reads_as_101_pages_without_duplicates_in_flat_memory(
    sandbox: tuple[str, SandboxAccount], settings: Any
) -> None:
    base, account = sandbox
    # Our limiter stays at Optimove's 50 per 10 s and the sandbox enforces the same: 101 calls take ~20 s.
    size = 1_000_003
    SandboxCampaign.objects.create(
        account=account,
        campaign_id=42,
        channel_id=504,
        size=size,
        seed=11,
        attributes={"Email": "email", "FirstName": "first_name"},
    )
    api = OptimoveClient(Credentials(base_url=base, api_key=account.api_key))
    seen = array("b", bytes(size))  # one byte per customer, allocated before measuring
    page_sizes: list[int] = []
    rss: list[int] = []
    for page in api.iter_customer_send_details(
        channel_id=504, campaign_id=42, attributes=["Email", "FirstName"], page_size=10_000
    ):
        page_sizes.append(len(page.rows))
        for row in page.rows:
            index = int(row.customer_id.rsplit("-", 1)[1])
            assert seen[index] == 0, f"customer {row.customer_id} seen twice"
            seen[index] = 1
        rss.append(_resident_bytes())
    assert page_sizes == [10_000] * 100 + [3]
    assert sum(seen) == size
    # Flat: keeping the customers would grow the process by hundreds of MB over the walk (a page of
    # 10,000 parsed rows is ~10 MB); from page 5 to the end it may grow by allocator noise only.
    assert rss[-1] - rss[4] < 25 * 1024 * 1024, (rss[4], rss[-1])


def _resident_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")
