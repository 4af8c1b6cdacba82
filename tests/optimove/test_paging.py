"""Walking a campaign's audience page by page with $top/$skip until Optimove answers an empty page."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import responses

from apps.optimove.client import OptimoveClient
from apps.optimove.types import CustomerSendDetail
from tests.optimove.conftest import fixture, query, request_query, url

SEND_DETAILS = url("current/customers/GetCustomerSendDetailsByChannel")


def test_three_pages_then_empty_yields_three_pages_with_the_right_skips(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(SEND_DETAILS, json=fixture("send_details_page_attributes_list.json"))  # 2 rows
    mocked.get(SEND_DETAILS, json=fixture("send_details_page_attributes_joined.json"))  # 1 row, joined
    mocked.get(
        SEND_DETAILS,
        json=[
            {  # camelCase and lower-case keys, a numeric id, an ISO time with a zone, a short list
                "customerId": 777,
                "templateid": "16",
                "scheduledTime": "2026-03-02T12:15:00.250+01:00",
                "customerAttributes": ["x@example.test"],
            }
        ],
    )
    mocked.get(SEND_DETAILS, json=fixture("send_details_page_empty.json"))

    pages = list(
        api.iter_customer_send_details(
            channel_id=504, campaign_id=1111, attributes=["Email", "Country"], page_size=2
        )
    )

    assert [query(call)["$skip"] for call in mocked.calls] == ["0", "2", "3", "4"]
    assert {query(call)["$top"] for call in mocked.calls} == {"2"}
    assert [page.skip for page in pages] == [0, 2, 3]
    assert [len(page.rows) for page in pages] == [2, 1, 1]
    assert [row.customer_id for page in pages for row in page.rows] == ["96134", "13482", "96134", "777"]
    # the joined string is split on the delimiter we asked for and mapped in order
    assert pages[1].rows[0] == CustomerSendDetail(
        "96134",
        14,
        datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        {"Email": "jdavis@example.test", "Country": "US"},
    )
    # a missing trailing value becomes ""; the offset time is converted to UTC
    assert pages[2].rows[0] == CustomerSendDetail(
        "777",
        16,
        datetime(2026, 3, 2, 11, 15, 0, 250000, tzinfo=UTC),
        {"Email": "x@example.test", "Country": ""},
    )


def test_a_short_page_does_not_end_the_walk(api: OptimoveClient, mocked: responses.RequestsMock) -> None:
    """Optimove may cap a page below our $top: only an empty page means the end."""
    total = 23

    def capped_at_five(request: Any) -> tuple[int, dict[str, str], str]:
        params = request_query(request)
        skip = int(params["$skip"])
        rows = [
            {"CustomerID": str(n), "TemplateID": 1, "ScheduledTime": None}
            for n in range(skip, min(skip + 5, total))
        ]
        return 200, {}, json.dumps(rows)

    mocked.add_callback(responses.GET, SEND_DETAILS, callback=capped_at_five)

    pages = list(api.iter_customer_send_details(channel_id=504, campaign_id=1, page_size=10))

    assert [query(call)["$skip"] for call in mocked.calls] == ["0", "5", "10", "15", "20", "23"]
    assert [len(page.rows) for page in pages] == [5, 5, 5, 5, 3]
    customer_ids = [row.customer_id for page in pages for row in page.rows]
    assert customer_ids == [str(n) for n in range(total)]
    assert all(row.scheduled_time is None and row.attributes == {} for page in pages for row in page.rows)


def test_a_campaign_of_1003_customers_at_10_per_page_is_101_pages(
    api: OptimoveClient, mocked: responses.RequestsMock
) -> None:
    """The 1,000,003-customers-at-10,000 arithmetic, scaled down a thousandfold; resumable from a skip."""
    total = 1003

    def pages(request: Any) -> tuple[int, dict[str, str], str]:
        params = request_query(request)
        skip, top = int(params["$skip"]), int(params["$top"])
        rows = [{"CustomerID": str(n), "TemplateID": 1} for n in range(skip, min(skip + top, total))]
        return 200, {}, json.dumps(rows)

    mocked.add_callback(responses.GET, SEND_DETAILS, callback=pages)

    seen = 0
    count = 0
    for page in api.iter_customer_send_details(channel_id=504, campaign_id=1, page_size=10):
        assert page.rows[0].customer_id == str(seen)
        seen += len(page.rows)
        count += 1
    assert count == 101
    assert seen == total
    assert len(mocked.calls) == 102  # the last, empty page ends the walk

    resumed = list(
        api.iter_customer_send_details(channel_id=504, campaign_id=1, page_size=10, start_skip=990)
    )
    assert [page.skip for page in resumed] == [990, 1000]
    assert [row.customer_id for row in resumed[-1].rows] == ["1000", "1001", "1002"]
