"""Templates the fuzz tests (tests/fuzz/test_template_fuzz.py) found crashing compilation or
validation: nesting deep enough to break Jinja's recursive parser or Python's compiler (a
RecursionError, or Python's own SyntaxError for more than 20 nested loops), and parts holding a lone
surrogate (UnicodeEncodeError in validation) or a NUL character (refused by the database on save).
Each is now a readable problem of that template."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.clients.models import Channel
from apps.message_templates import services
from apps.message_templates.models import MessageTemplate
from apps.message_templates.rendering import (
    TemplateRenderError,
    template_attribute_names,
    template_render,
    template_source_error,
)
from apps.message_templates.validation import template_content_errors

TOO_DEEP = "syntax error on line 1: the template is nested too deeply"

DEEP = {
    "parentheses": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "additions": "{{ 1" + " + 1" * 3000 + " }}",
    "filters": "{{ x" + "|upper" * 3000 + " }}",
    "attributes": "{{ a" + ".b" * 3000 + " }}",
    "ifs": "{% if 1 %}" * 300 + "x" + "{% endif %}" * 300,
    # 21 loops inside each other compile to more statically nested blocks than Python allows (20).
    "loops": "{% for i in range(1) %}" * 21 + "x" + "{% endfor %}" * 21,
}


@pytest.mark.parametrize("source", DEEP.values(), ids=DEEP.keys())
def test_a_template_nested_too_deeply_is_a_syntax_error(source: str) -> None:
    assert template_source_error(source) == TOO_DEEP


@pytest.mark.parametrize("name", DEEP)
def test_rendering_or_reading_a_too_deep_template_fails_with_a_reason(name: str) -> None:
    template = MessageTemplate(channel=Channel(kind="console"), template_id=1, name="t", text_body=DEEP[name])

    with pytest.raises(TemplateRenderError) as render:
        template_render(template=template, attributes={})

    assert render.value.reason == f"text_body: {TOO_DEEP}"
    if name == "loops":  # only compiling breaks Python's limit; reading the names just parses
        assert template_attribute_names(template=template) == frozenset()
    else:
        with pytest.raises(TemplateRenderError) as names:
            template_attribute_names(template=template)
        assert names.value.reason == f"text_body: {TOO_DEEP}"


def test_twenty_nested_loops_still_compile() -> None:
    source = "{% for i in range(1) %}" * 20 + "x" + "{% endfor %}" * 20
    template = MessageTemplate(channel=Channel(kind="console"), template_id=1, name="t", text_body=source)

    assert template_source_error(source) is None
    assert template_render(template=template, attributes={}).text == "x"


@pytest.mark.parametrize(
    ("parts", "errors"),
    [
        (
            {"subject": "Hi", "html_body": "<p>\ud800</p>"},
            {"html_body": ["Holds an unpaired UTF-16 surrogate, which is not text."]},
        ),
        (
            {"subject": "Hi\x00", "text_body": "x"},
            {"subject": ["Holds a NUL character, which cannot be stored."]},
        ),
        (
            {"subject": "Hi", "text_body": "x", "payload": {"a": ["ok", "b\x00"]}},
            {"payload": ["Payload at $.a[1]: holds a NUL character, which cannot be stored"]},
        ),
    ],
)
def test_parts_that_cannot_be_stored_are_validation_errors(
    parts: dict[str, object], errors: dict[str, list[str]]
) -> None:
    template = MessageTemplate(channel=Channel(kind="email"), template_id=1, name="t", **parts)

    assert template_content_errors(template=template) == errors


@pytest.mark.django_db
def test_template_upsert_refuses_a_nul_instead_of_failing_in_the_database(
    channels: dict[str, Channel],
) -> None:
    with pytest.raises(ValidationError) as refused:
        services.template_upsert(channel=channels["sms"], template_id=1, name="t", text_body="Hi\x00")

    assert refused.value.message_dict == {"text_body": ["Holds a NUL character, which cannot be stored."]}
    assert not MessageTemplate.objects.exists()
