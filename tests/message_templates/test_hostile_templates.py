"""A hostile or careless template fails only its own render, quickly, with a reason; the next render
is unaffected."""

from __future__ import annotations

import time
from typing import Any

import pytest

from apps.clients.models import Channel
from apps.message_templates.rendering import TemplateRenderError, template_render
from tests.message_templates.conftest import stored_template

pytestmark = pytest.mark.django_db

LIMIT = "262144 bytes"

HOSTILE: list[tuple[str, str, str]] = [
    # (test id, template text, the reason expected)
    (
        "huge-range",
        "{% for i in range(10**9) %}x{% endfor %}",
        "range() of 1000000000 numbers is over the loop budget (100000 of 100000 iterations left)",
    ),
    (
        "nested-ranges",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "range() of 100000 numbers is over the loop budget (99999 of 100000 iterations left)",
    ),
    (
        "nested-loops-over-an-attribute",
        "{% for a in Letters %}{% for b in Letters %}{% for c in Letters %}"
        "{% endfor %}{% endfor %}{% endfor %}",
        "loops ran more than 100000 iterations in total",
    ),
    (
        "string-repetition",
        '{{ "x" * 10**10 }}',
        f"repeating a text or list 10000000000 times would exceed the output limit of {LIMIT}",
    ),
    ("tower-of-powers", "{{ 9**9**9 }}", "a power larger than 128 bits is refused"),
    ("power-of-a-power", "{{ 9**(9**9) }}", "a power larger than 128 bits is refused"),
    (
        "self-recursive-macro",
        "{% macro again() %}{{ again() }}{% endmacro %}{{ again() }}",
        "nested too deeply (a macro calling itself?)",
    ),
    (
        "exponential-macro",
        "{% macro twice(n) %}{% if n %}{{ twice(n - 1) }}{{ twice(n - 1) }}{% endif %}{% endmacro %}"
        "{{ twice(60) }}",
        "rendering took longer than 0.5 s",
    ),
    (
        "class-of-a-string",
        "{{ ''.__class__.__mro__ }}",
        "not allowed: access to attribute '__class__' of a 'str' object",
    ),
    (
        "class-of-attributes",
        "{{ attributes.__class__ }}",
        "not allowed: access to attribute '__class__' of a 'dict' object",
    ),
    (
        "class-of-a-missing-value",
        "{{ NoSuchAttribute.__class__ }}",
        "not allowed: access to attribute '__class__' of a missing value",
    ),
    (
        "function-globals",
        "{{ range.__globals__ }}",
        "not allowed: access to attribute '__globals__' of a 'function' object",
    ),
    (
        "str-format",
        "{{ '{0.__class__}'.format(FirstName) }}",
        "not allowed: access to attribute 'format' of a 'str' object",
    ),
    (
        "mutating-method",
        "{% set items = [1] %}{{ items.append(2) }}",
        "not allowed: access to attribute 'append' of a 'list' object",
    ),
    (
        "include-a-file",
        '{% include "/etc/passwd" %}',
        "syntax error on line 1: {% include %} is not allowed in message templates",
    ),
    (
        "extends",
        '{% extends "admin/base.html" %}',
        "syntax error on line 1: {% extends %} is not allowed in message templates",
    ),
    (
        "import",
        '{% import "macros.html" as m %}',
        "syntax error on line 1: {% import %} is not allowed in message templates",
    ),
    (
        "recursive-loop",
        "{% for c in Letters recursive %}{{ loop(c) }}{% endfor %}",
        "syntax error on line 1: recursive loops are not allowed in message templates",
    ),
    (
        "huge-output-from-a-legitimate-loop",
        "{% for i in range(100000) %}0123456789{% endfor %}",
        f"the output is over the limit of {LIMIT}",
    ),
    (
        "huge-captured-block",
        '{% set block %}{% for i in range(100000) %}{{ "z" * 10000 }}{% endfor %}{% endset %}{{ block }}',
        f"a captured block would exceed the output limit of {LIMIT}",
    ),
    (
        "doubling-joins",
        '{% set a = "x" * 100000 %}{% set b = a ~ a ~ a %}',
        f"joining texts with ~ would exceed the output limit of {LIMIT}",
    ),
    (
        "printing-a-list-of-big-texts",
        '{% set b = "x" * 200000 %}{{ [b, b, b, b, b, b, b, b] }}',
        f"printing this value would exceed the output limit of {LIMIT}",
    ),
    (
        "joining-a-list-of-big-texts",
        '{% set b = "x" * 200000 %}{{ "a" ~ [b, b, b, b, b, b, b, b] }}',
        f"joining texts with ~ would exceed the output limit of {LIMIT}",
    ),
    (
        "doubling-additions",
        '{% set a = "x" * 200000 %}{{ a + a }}',
        f"adding these would exceed the output limit of {LIMIT}",
    ),
    (
        "replace-everywhere",
        '{{ ("x" * 1000) | replace("", "y" * 1000) }}',
        f"the replace filter would exceed the output limit of {LIMIT}",
    ),
    (
        "join-with-a-huge-separator",
        '{{ ("x" * 1000) | join("y" * 1000) }}',
        f"the join filter would exceed the output limit of {LIMIT}",
    ),
    ("printf-width", '{{ "%0999999999d" % 1 }}', "%-formatting widths above 1000 are refused"),
    (
        "syntax-error",
        "Hello {{ FirstName ",
        "syntax error on line 1: unexpected end of template, expected 'end of print statement'.",
    ),
]


@pytest.mark.parametrize(
    ("source", "reason"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE]
)
def test_a_hostile_template_fails_only_its_own_render(
    channels: dict[str, Channel], source: str, reason: str
) -> None:
    hostile = stored_template(channels["console"], template_id=1, text_body=source)
    normal = stored_template(
        channels["console"],
        template_id=2,
        text_body="Hi {{ FirstName }} {% for i in range(3) %}{{ i }}{% endfor %}",
    )
    attributes = {"FirstName": "Ada", "Letters": "abcdefghij" * 10}

    started = time.perf_counter()
    with pytest.raises(TemplateRenderError) as error:
        template_render(template=hostile, attributes=attributes)
    elapsed = time.perf_counter() - started

    assert error.value.reason == f"text_body: {reason}"
    assert elapsed < 1.0
    # The budget of the failed render is gone: the next one renders in full.
    assert template_render(template=normal, attributes=attributes).text == "Hi Ada 012"


def test_autoescape_cannot_be_switched_off_in_the_html_part(channels: dict[str, Channel]) -> None:
    template = stored_template(
        channels["email"],
        subject="s",
        html_body="{% autoescape false %}{{ FirstName }}{% endautoescape %}",
    )

    with pytest.raises(TemplateRenderError) as error:
        template_render(template=template, attributes={"FirstName": "<script>"})

    assert error.value.reason == (
        "html_body: syntax error on line 1: {% autoescape %} is not allowed: "
        "the HTML part is always escaped, the other parts never"
    )


def test_the_limits_are_settings(channels: dict[str, Channel], settings: Any) -> None:
    template = stored_template(channels["console"], text_body="{% for i in range(20) %}ab{% endfor %}")
    settings.TEMPLATE_MAX_OUTPUT_BYTES = 30

    with pytest.raises(TemplateRenderError) as error:
        template_render(template=template, attributes={})

    assert error.value.reason == "text_body: the output is over the limit of 30 bytes"
    settings.TEMPLATE_MAX_OUTPUT_BYTES = 40
    assert template_render(template=template, attributes={}).text == "ab" * 20


def test_multibyte_output_is_measured_in_bytes(channels: dict[str, Channel], settings: Any) -> None:
    settings.TEMPLATE_MAX_OUTPUT_BYTES = 10
    fits = stored_template(channels["console"], template_id=1, text_body="{{ Word }}")

    assert template_render(template=fits, attributes={"Word": "€€€"}).text == "€€€"  # 9 bytes
    with pytest.raises(TemplateRenderError) as error:
        template_render(template=fits, attributes={"Word": "€€€€"})  # 4 characters, 12 bytes
    assert error.value.reason == "text_body: the output is over the limit of 10 bytes"
