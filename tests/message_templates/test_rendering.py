"""Rendering per channel kind, merge tags, defaults, escaping, payloads, and the compiled cache."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from apps.clients.models import Channel
from apps.message_templates.rendering import (
    TemplateRenderError,
    template_attribute_names,
    template_cache_info,
    template_render,
)
from apps.message_templates.services import template_upsert
from apps.message_templates.types import RenderedMessage
from tests.message_templates.conftest import stored_template

pytestmark = pytest.mark.django_db


def test_email_escapes_merge_tags_in_the_html_part_only(channels: dict[str, Channel]) -> None:
    template, _ = template_upsert(
        channel=channels["email"],
        template_id=14,
        name="Welcome",
        subject="Hi {{ FirstName }}, 20% off",
        html_body='<p class="hi">Hello {{ FirstName }}</p>'
        '<a href="https://x.test/?c={{ customer_id }}">go</a>',
        text_body="Hello {{ FirstName }}\nCustomer {{ customer_id }}",
    )

    message = template_render(
        template=template, attributes={"FirstName": "Ada & <Bob>"}, extra={"customer_id": "96134"}
    )

    assert message == RenderedMessage(
        subject="Hi Ada & <Bob>, 20% off",
        html='<p class="hi">Hello Ada &amp; &lt;Bob&gt;</p><a href="https://x.test/?c=96134">go</a>',
        text="Hello Ada & <Bob>\nCustomer 96134",
    )


def test_html_escaping_holds_through_joins_macros_and_captured_blocks(channels: dict[str, Channel]) -> None:
    template = stored_template(
        channels["email"],
        subject="s",
        html_body=(
            '{{ "<i>" ~ FirstName ~ "</i>" }}|'
            "{% macro bold(x) %}<b>{{ x }}</b>{% endmacro %}{{ bold(FirstName) }}|"
            "{% set block %}<u>{{ FirstName }}</u>{% endset %}{{ block }}|"
            "{{ FirstName | e }}"
        ),
    )

    message = template_render(template=template, attributes={"FirstName": "A&<B>"})

    assert message.html == (
        "&lt;i&gt;A&amp;&lt;B&gt;&lt;/i&gt;|<b>A&amp;&lt;B&gt;</b>|<u>A&amp;&lt;B&gt;</u>|A&amp;&lt;B&gt;"
    )


def test_sms_defaults_apply_to_missing_and_to_empty_attributes(channels: dict[str, Channel]) -> None:
    template, _ = template_upsert(
        channel=channels["sms"],
        template_id=1,
        name="Promo",
        text_body='Hi {{ FirstName | default("there") }}, use {{ promo_code }}{{ Missing }}.',
    )

    present = template_render(template=template, attributes={"FirstName": "Ada"}, extra={"promo_code": "P1"})
    missing = template_render(template=template, attributes={}, extra={"promo_code": "P1"})
    empty = template_render(template=template, attributes={"FirstName": ""}, extra={"promo_code": "P1"})

    assert present == RenderedMessage(text="Hi Ada, use P1.")
    assert missing == RenderedMessage(text="Hi there, use P1.")
    assert empty == RenderedMessage(text="Hi there, use P1.")


def test_default_false_replaces_only_missing_values(channels: dict[str, Channel]) -> None:
    template = stored_template(channels["sms"], text_body='[{{ FirstName | default("there", false) }}]')

    assert template_render(template=template, attributes={"FirstName": ""}).text == "[]"
    assert template_render(template=template, attributes={}).text == "[there]"


def test_a_none_extra_prints_nothing(channels: dict[str, Channel]) -> None:
    template = stored_template(channels["sms"], text_body="Code: [{{ promo_code }}]")

    assert template_render(template=template, attributes={}, extra={"promo_code": None}).text == "Code: []"


def test_push_renders_title_body_deep_link_and_string_data(channels: dict[str, Channel]) -> None:
    template, _ = template_upsert(
        channel=channels["push"],
        template_id=7,
        name="Offer push",
        subject="{{ FirstName }}, a gift",
        text_body="Open {{ Offer }} now",
        deep_link="app://offers/{{ Offer | urlencode }}",
        payload={"screen": "offer", "offer": "{{ Offer }}", "campaign": "{{ campaign_id }}"},
    )

    message = template_render(
        template=template, attributes={"FirstName": "Ada", "Offer": "50% & more"}, extra={"campaign_id": 77}
    )

    assert message == RenderedMessage(
        subject="Ada, a gift",
        text="Open 50% & more now",
        deep_link="app://offers/50%25%20%26%20more",
        data={"screen": "offer", "offer": "50% & more", "campaign": "77"},
    )


def test_webhook_payload_renders_string_leaves_and_keeps_everything_else(
    channels: dict[str, Channel],
) -> None:
    payload: dict[str, Any] = {
        "customer": "{{ customer_id }}",
        "greeting": 'Hi {{ FirstName }} "{{ Nick }}"',
        "count": 3,
        "ratio": 0.5,
        "vip": True,
        "nothing": None,
        "tags": ["{{ Tier | upper }}", 1, {"deep": "{{ attributes['First Name'] }}"}],
    }
    template, _ = template_upsert(channel=channels["webhook"], template_id=3, name="Hook", payload=payload)

    message = template_render(
        template=template,
        attributes={
            "FirstName": "Ada",
            "Nick": 'The "Countess" \\ }',
            "Tier": "gold",
            "First Name": "Ada L.",
        },
        extra={"customer_id": "96134"},
    )

    expected = {
        "customer": "96134",
        "greeting": 'Hi Ada "The "Countess" \\ }"',
        "count": 3,
        "ratio": 0.5,
        "vip": True,
        "nothing": None,
        "tags": ["GOLD", 1, {"deep": "Ada L."}],
    }
    assert message == RenderedMessage(payload=expected)
    # Values with quotes and backslashes cannot break the JSON: the body round-trips exactly.
    assert json.loads(json.dumps(message.payload)) == expected
    assert template.payload == payload  # the stored template is untouched


def test_console_renders_whatever_parts_it_has(channels: dict[str, Channel]) -> None:
    template, _ = template_upsert(
        channel=channels["console"], template_id=2, name="Log", text_body="{{ customer_id }}: {{ Tier }}"
    )

    message = template_render(template=template, attributes={"Tier": "gold"}, extra={"customer_id": "c-1"})

    assert message == RenderedMessage(text="c-1: gold")


def test_attributes_with_odd_names_are_reached_through_attributes(channels: dict[str, Channel]) -> None:
    template = stored_template(
        channels["sms"],
        text_body='{{ attributes["First Name"] }}/{{ attributes["e-mail"] }}/{{ attributes.Tier }}/'
        '{{ attributes["Not There"] | default("none") }}',
    )

    message = template_render(
        template=template, attributes={"First Name": "Ada", "e-mail": "ada@example.com", "Tier": "gold"}
    )

    assert message.text == "Ada/ada@example.com/gold/none"


def test_extras_win_over_attributes_of_the_same_name_and_unknown_extras_are_refused(
    channels: dict[str, Channel],
) -> None:
    template = stored_template(channels["sms"], text_body="{{ customer_id }} {{ attributes.customer_id }}")

    message = template_render(
        template=template, attributes={"customer_id": "spoof"}, extra={"customer_id": "c-1"}
    )

    assert message.text == "c-1 spoof"
    with pytest.raises(ValueError, match=r"unknown extra names \['coupon'\]"):
        template_render(template=template, attributes={}, extra={"coupon": "x"})


def test_money_and_date_filters(channels: dict[str, Channel]) -> None:
    template = stored_template(
        channels["sms"],
        text_body='{{ Balance | money("€") }}|{{ Debt | money("$", 0) }}|{{ "n/a" | money }}|'
        '{{ Joined | date("%d %b %Y") }}|{{ Joined | date }}|{{ "someday" | date }}|{{ Points | int + 1 }}',
    )

    message = template_render(
        template=template,
        attributes={"Balance": "1234.565", "Debt": "-99.5", "Joined": "2016-08-30 10:00:00", "Points": "41"},
    )

    assert message.text == "€1,234.57|-$100|n/a|30 Aug 2016|2016-08-30|someday|42"


def test_filters_and_globals_outside_the_whitelist_are_unavailable(channels: dict[str, Channel]) -> None:
    unknown_filter = stored_template(channels["sms"], template_id=1, text_body="{{ FirstName | safe }}")
    no_lipsum = stored_template(channels["sms"], template_id=2, text_body="{{ lipsum() }}")
    no_cycler = stored_template(channels["sms"], template_id=3, text_body="{{ cycler('a', 'b').next() }}")

    with pytest.raises(TemplateRenderError) as filter_error:
        template_render(template=unknown_filter, attributes={"FirstName": "Ada"})
    with pytest.raises(TemplateRenderError) as lipsum_error:
        template_render(template=no_lipsum, attributes={})
    with pytest.raises(TemplateRenderError) as cycler_error:
        template_render(template=no_cycler, attributes={})

    assert filter_error.value.reason == "text_body: syntax error on line 1: No filter named 'safe'."
    assert lipsum_error.value.reason == "text_body: 'lipsum' is undefined"
    assert cycler_error.value.reason == "text_body: 'cycler' is undefined"


def test_a_reason_never_carries_the_customers_data(channels: dict[str, Channel]) -> None:
    template = stored_template(channels["sms"], text_body="{{ [1, 2].index(FirstName) }}")

    with pytest.raises(TemplateRenderError) as error:
        template_render(template=template, attributes={"FirstName": "Ada Lovelace"})

    assert error.value.reason == "text_body: ValueError: '[value]' is not in list"


def test_attribute_names_cover_every_part_and_leave_out_built_ins(channels: dict[str, Channel]) -> None:
    template = stored_template(
        channels["push"],
        subject="{{ Title }} {{ customer_id }}",
        html_body="{% for item in Items.split(',') %}{{ item }}{{ loop.index }}{% endfor %}",
        text_body='{% set greeting = "Hi" %}{{ greeting }} '
        '{{ attributes["First Name"] }} {{ attributes.Tier }}'
        "{% macro line(label) %}{{ label }}: {{ Balance }}{% endmacro %}{{ line('b') }}"
        "{{ promo_code }}{{ campaign_id }}{{ template_id }}{{ channel_id }}"
        "{% for i in range(2) %}{% endfor %}",
        deep_link="app://x/{{ OfferId }}",
        payload={"a": "{{ DataOne }}", "b": ["{{ DataTwo | default('x') }}", 5], "c": "plain"},
    )

    assert template_attribute_names(template=template) == frozenset(
        {"Title", "Items", "First Name", "Tier", "Balance", "OfferId", "DataOne", "DataTwo"}
    )


def test_attribute_names_of_a_template_that_does_not_compile(channels: dict[str, Channel]) -> None:
    template = stored_template(channels["sms"], text_body="ok", deep_link="{{ Broken ")

    with pytest.raises(TemplateRenderError) as error:
        template_attribute_names(template=template)

    assert error.value.reason == (
        "deep_link: syntax error on line 1: unexpected end of template, expected 'end of print statement'."
    )


def test_ten_thousand_renders_compile_once_and_take_well_under_a_second(channels: dict[str, Channel]) -> None:
    template, _ = template_upsert(
        channel=channels["sms"],
        template_id=9,
        name="Ordinary",
        text_body='Hi {{ FirstName | default("there") }}, your code is {{ promo_code }}. '
        "{% if Tier == 'gold' %}Gold perks inside.{% endif %} Reply STOP to opt out.",
    )
    customers = [{"FirstName": f"Name{i}", "Tier": "gold" if i % 2 else "silver"} for i in range(10_000)]

    started = time.perf_counter()
    texts = [
        template_render(template=template, attributes=customer, extra={"promo_code": "P"}).text
        for customer in customers
    ]
    elapsed = time.perf_counter() - started

    assert elapsed < 1.0
    assert template_cache_info().misses == 1
    assert template_cache_info().hits == 9_999
    assert texts[1] == "Hi Name1, your code is P. Gold perks inside. Reply STOP to opt out."
    assert texts[2] == "Hi Name2, your code is P.  Reply STOP to opt out."


def test_a_saved_edit_is_compiled_afresh(channels: dict[str, Channel]) -> None:
    template, _ = template_upsert(channel=channels["sms"], template_id=9, name="T", text_body="v1 {{ A }}")
    assert template_render(template=template, attributes={"A": "a"}).text == "v1 a"

    edited, created = template_upsert(
        channel=channels["sms"], template_id=9, name="T", text_body="v2 {{ A }}"
    )

    assert created is False
    assert template_render(template=edited, attributes={"A": "a"}).text == "v2 a"
    assert template_cache_info().misses == 2


def test_ordinary_jinja_features_work_inside_the_guards(channels: dict[str, Channel]) -> None:
    template = stored_template(
        channels["console"],
        text_body=(
            "{# a comment #}"
            "{% for item in Items.split(',') %}{{ loop.index }}:{{ item | trim | title }}"
            "{{ loop.cycle('+', '-') }}{% if loop.last %}.{% endif %}{% else %}none{% endfor %}|"
            "{% for x in Empty %}{{ x }}{% else %}none{% endfor %}|"
            "{% macro box(label) %}[{{ label }}:{{ caller() }}]{% endmacro %}"
            "{% call box('tier') %}{{ Tier | upper }}{% endcall %}|"
            "{% set block %}{{ FirstName }} {{ Tier }}{% endset %}{{ block | length }}|"
            "{% filter upper %}{{ FirstName }}{% endfilter %}|"
            "{% with n = Points | int %}{{ n * 2 }} {{ (n / 4) | round(1) }} {{ n ** 2 }}{% endwith %}|"
            "{% if Tier == 'gold' %}G{% elif Tier == 'silver' %}S{% else %}?{% endif %}|"
            "{{ 'a' ~ FirstName ~ 'b' }} {{ Items.split(',') | first | trim }} {{ Items.split(',') | last }}|"
            "{{ 'x' * 3 }} {{ [1, 2] + [3] }} {{ '%05.1f' % 3.14159 }} {{ Word | truncate(9) }}|"
            "{{ attributes.get('Tier') }} {{ FirstName is defined }} {{ Nope is defined }}|"
            "{%- if true %} trimmed {% endif -%}"
        ),
    )

    message = template_render(
        template=template,
        attributes={
            "Items": "tea, cake ,jam",
            "Empty": "",
            "Tier": "gold",
            "FirstName": "Ada",
            "Points": "10",
            "Word": "wonderfully delightful",
        },
    )

    assert message.text == (
        "1:Tea+2:Cake-3:Jam+.|none|[tier:GOLD]|8|ADA|20 2.5 100|G|aAdab tea jam|"
        "xxx [1, 2, 3] 003.1 wonder...|gold True False| trimmed "
    )
