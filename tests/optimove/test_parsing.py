"""Tolerant reading of Optimove's answers: casing, number types, time formats, attribute shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.optimove.parsing import (
    PayloadError,
    parse_campaign_details,
    parse_canceled_customers,
    parse_datetime,
    parse_event_listeners,
    parse_login_token,
    parse_send_details,
)
from apps.optimove.types import CustomerSendDetail, EventListener
from tests.optimove.conftest import fixture


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02 10:00:00", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
        ("2026-03-02T10:00:00", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
        ("2026-03-02T10:00:00Z", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
        ("2026-03-02T10:00:00.5Z", datetime(2026, 3, 2, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-03-02T10:00:00.1234567", datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-03-02 12:00:00+02:00", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
        (" 2026-03-02 10:00 ", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
        ("", None),
        (None, None),
    ],
)
def test_times_become_aware_utc(text: str | None, expected: datetime | None) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


def test_an_unreadable_time_names_the_field() -> None:
    with pytest.raises(PayloadError, match=r"^row 0: ScheduledTime is not a date-time we can read$"):
        parse_datetime("02/03/2026", field="ScheduledTime", where="row 0")


def test_send_details_accept_any_key_case_and_numeric_ids() -> None:
    rows = parse_send_details(
        [
            {"CUSTOMERID": 96134, "templateID": 14.0, "ScheduledTime": "2026-03-02 10:00:00"},
            {"customerid": " 007 ", "TemplateId": "15", "customerattribute": "a;b"},
        ],
        attribute_names=["First", "Second"],
        delimiter=";",
    )
    assert rows == (
        CustomerSendDetail("96134", 14, datetime(2026, 3, 2, 10, tzinfo=UTC), {"First": "", "Second": ""}),
        CustomerSendDetail("007", 15, None, {"First": "a", "Second": "b"}),
    )


def test_list_attributes_are_mapped_in_order_and_stringified() -> None:
    (row,) = parse_send_details(
        [{"CustomerID": "1", "TemplateID": 1, "CustomerAttributes": ["x", 42, None, True]}],
        attribute_names=["A", "B", "C", "D", "E"],
    )
    assert row.attributes == {"A": "x", "B": "42", "C": "", "D": "true", "E": ""}


def test_both_shared_fixtures_give_the_same_first_customer() -> None:
    from_list = parse_send_details(
        fixture("send_details_page_attributes_list.json"), attribute_names=["Email", "Country"]
    )
    from_joined = parse_send_details(
        fixture("send_details_page_attributes_joined.json"), attribute_names=["Email", "Country"]
    )
    assert from_list[0] == from_joined[0]
    assert from_joined[0].attributes == {"Email": "jdavis@example.test", "Country": "US"}


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs",)), min_size=1),
        min_size=1,
        max_size=8,
    )
)
def test_a_joined_string_and_a_list_read_the_same(values: list[str]) -> None:
    names = [f"attr{index}" for index in range(len(values))]
    joined = parse_send_details(
        [{"CustomerID": "1", "TemplateID": 1, "CustomerAttribute": ",".join(values)}], attribute_names=names
    )
    listed = parse_send_details(
        [{"CustomerID": "1", "TemplateID": 1, "CustomerAttributes": values}], attribute_names=names
    )
    assert joined == listed
    assert list(listed[0].attributes.values()) == values


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"rows": []}, "send details: expected a list, got dict"),
        (["96134"], "send details row 0: expected an object, got str"),
        ([{"TemplateID": 1}], "send details row 0: CustomerID is missing"),
        ([{"CustomerID": "", "TemplateID": 1}], "send details row 0: CustomerID is empty"),
        ([{"CustomerID": "1", "TemplateID": "x1"}], "send details row 0: TemplateID is not an integer"),
        (
            [{"CustomerID": "1", "TemplateID": True}],
            "send details row 0: TemplateID is a boolean, not an integer",
        ),
        (
            [{"CustomerID": "1", "TemplateID": 1, "CustomerAttributes": {"Email": "a@b.test"}}],
            "send details row 0: CustomerAttributes is neither a list nor a string",
        ),
    ],
)
def test_unreadable_rows_are_refused_without_echoing_customer_data(payload: object, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_send_details(payload, attribute_names=["Email"])
    assert str(caught.value) == message


def test_listeners_without_url_are_refused_and_channel_is_optional() -> None:
    assert parse_event_listeners(
        [{"EventTypeID": "13", "ListenerURL": "https://p.test/x", "ChannelID": "504"}]
    ) == [EventListener(13, "https://p.test/x", 504)]
    assert parse_event_listeners([]) == []
    with pytest.raises(PayloadError, match="listener 0: ListenerURL is missing"):
        parse_event_listeners([{"EventTypeID": 13}])


def test_canceled_customers_and_campaign_details_tolerate_shapes() -> None:
    assert (
        parse_canceled_customers([{"customerID": 5, "actionId": 12, "promoCode": None}])[0].customer_id == "5"
    )
    assert parse_canceled_customers([{"customerID": 5, "actionId": 12}])[0].action_id == "12"
    details = parse_campaign_details([{"TargetGroupID": "3", "IsMultiChannel": "True"}], campaign_id=9)
    assert (details.campaign_id, details.target_group_id, details.is_multi_channel) == (9, 3, True)
    with pytest.raises(PayloadError, match="expected one object, got a list of 2"):
        parse_campaign_details([{}, {}], campaign_id=9)


@pytest.mark.parametrize(
    ("raw", "token"), [(b'"abc-123"', "abc-123"), (b"abc-123\n", "abc-123"), (b' "tok" ', "tok")]
)
def test_login_token_is_a_json_string_or_a_bare_token(raw: bytes, token: str) -> None:
    assert parse_login_token(raw) == token


@pytest.mark.parametrize("raw", [b"", b'""', b"{}", b"<html>error page</html>", b"null"])
def test_login_answers_that_are_not_tokens_are_refused(raw: bytes) -> None:
    with pytest.raises(PayloadError, match="login: the answer is not a token"):
        parse_login_token(raw)
