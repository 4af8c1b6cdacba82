"""Template rendering (apps/message_templates/rendering.py) and validation (validation.py) under
generated hostile templates: sandbox escapes, resource bombs, forbidden tags, random template text,
hostile attribute values.

Properties: `template_render` returns parts within the output cap or raises TemplateRenderError with a
reason; never another exception, and quickly (the render budget; pytest-timeout stops a real hang);
no secret of the environment (SECRET_KEY, the field encryption keys, an environment variable, a
client's stored credentials) appears in any output or reason. `template_content_errors` and
`template_attribute_names` answer for any template without raising anything unexpected, and a
template whose parts validation accepts never fails to compile when rendered.

Templates here are unsaved (never cached), and rendering needs no database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from hypothesis import example, given
from hypothesis import strategies as st

from apps.clients.models import Channel, ChannelKind, Client
from apps.message_templates.models import MessageTemplate
from apps.message_templates.rendering import (
    EXTRA_NAMES,
    TemplateRenderError,
    template_attribute_names,
    template_render,
)
from apps.message_templates.types import RenderedMessage
from apps.message_templates.validation import template_content_errors
from tests.fuzz import strategies as hs
from tests.fuzz.conftest import fuzz, tally

# A render that hangs fails here rather than at the suite-wide 300 s.
pytestmark = pytest.mark.timeout(60)

# In the environment while this module's tests run: a template must not be able to read it back.
CANARY = "canary-7f3a9c1e-env-secret"


@pytest.fixture(autouse=True, scope="module")
def _canary_in_the_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FUZZ_TEMPLATE_CANARY", CANARY)
        yield


# A render may compile a long template first (compiling is not under the render budget): generous,
# but far below what an unbudgeted loop, power or repetition would take.
MAX_SECONDS = 3.0

ESCAPES = (
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__['os'].environ }}",
    "{{ lipsum(10**6) }}",
    "{{ range.__globals__ }}",
    "{{ range.__closure__ }}",
    "{{ attributes.__class__.__init__.__globals__ }}",
    "{{ attributes._x }}",
    "{{ attributes.update({'a': 1}) }}",
    "{{ attributes.pop('FirstName') }}",
    "{{ FirstName.__len__() }}",
    "{{ FirstName._formatter_parser }}",
    "{{ FirstName.format_map(attributes) }}",
    "{{ '{0.__class__}'.format(FirstName) }}",
    "{{ '%s' % FirstName.__class__ }}",
    "{{ config }}{{ settings }}{{ request }}{{ os }}{{ environ }}",
    "{{ settings.SECRET_KEY }}",
    "{{ loop.__class__ }}",
    "{% for x in [1] %}{{ loop.__class__.__init__.__globals__ }}{% endfor %}",
    "{% for x in [1] %}{{ loop._after }}{% endfor %}",
    "{% set n = namespace(a=1) %}{{ n }}",
    "{{ [].__class__.__base__ }}",
    "{{ (1).__class__ }}",
    "{{ FirstName|attr('__class__') }}",
    "{{ FirstName|map('upper')|list }}",
    "{{ dict(a=1) }}",
    "{{ caller() }}",
    "{{ varargs }}{{ kwargs }}",
    "{{ _ }}{{ __builtins__ }}{{ __import__('os') }}",
    "{{ undefined_thing.__class__ }}",
    "{{ undefined_thing.a.b.c.d }}",
    "{{ customer_id.__class__ }}",
)
BOMBS = (
    "{% for i in range(10**9) %}x{% endfor %}",
    "{% for i in range(10**18, 10**19) %}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ ['x'] * 10**9 }}",
    "{{ (1,) * 10**9 }}",
    "{{ 10**10**10 }}",
    "{{ 9**9**9 }}",
    "{{ 2**-1 }}",
    "{{ (-8)**(1/3) }}",
    "{{ 1e308 * 1e308 }}",
    "{{ 1/0 }}",
    "{{ 1//0 }}",
    "{{ 1 % 0 }}",
    "{{ '%999999999s' % 'x' }}",
    "{{ '%*s' % (10**9, 'x') }}",
    "{{ '%(a)999999s' % attributes }}",
    "{{ 'x' | replace('', 'y' * 1000) }}",
    "{{ ('x' * 1000) | join('y' * 1000) }}",
    "{{ 'x' | truncate(10**9) }}",
    "{{ 'x' | center(10**9) }}",
    "{{ 'x' | indent(10**9) }}",
    "{{ 'x' | wordwrap(1) }}",
    "{{ range(10**9) | list }}",
    "{{ range(10**9) | length }}",
    "{{ '1e999999999' | money }}",
    "{{ 12 | money('x' * 10**6) }}",
    "{{ 12 | money(places=10**9) }}",
    "{{ '2026-01-01' | date('%Y' * 100000) }}",
    "{{ '2026-01-01' | date('%s') }}",
    "{{ 'abc' | int(base=10**9) }}",
    "{{ (10**400) | float }}",
    "{{ 'x'.split('') }}",
    "{{ ''.join }}",
    "{% set a = 'x' * 200000 %}{% set b = a ~ a ~ a %}{{ b }}",
    "{% set a = 'x' * 200000 %}{{ a + a }}",
    "{% set a = 'x' * 200000 %}{{ [a, a, a, a, a, a] }}",
    "{% set block %}{% for i in range(100000) %}{{ 'z' * 1000 }}{% endfor %}{% endset %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% macro t(n) %}{% if n %}{{ t(n - 1) }}{{ t(n - 1) }}{% endif %}{% endmacro %}{{ t(40) }}",
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}"
    "{% endfor %}",
    "{% for c in Letters recursive %}{{ loop(c) }}{% endfor %}",
    "{% for x in Letters %}{% for y in Letters %}{{ x ~ y }}{% endfor %}{% endfor %}",
    "{% filter upper %}{% for i in range(100000) %}{{ 'ab' * 100 }}{% endfor %}{% endfilter %}",
    "{% call %}{% endcall %}",
    "{% with a = 'x' * 10**9 %}{{ a }}{% endwith %}",
    "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "{{ " + "[" * 3000 + "]" * 3000 + " }}",
    "{{ a" + ".b" * 5000 + " }}",
    "{{ 1" + " + 1" * 5000 + " }}",
    "{{ x" + "|upper" * 3000 + " }}",
    "{% if 1 %}" * 3000 + "{% endif %}" * 3000,
    "{% for i in range(1) %}" * 500 + "{% endfor %}" * 500,
    "{{ '" + "\\x00" * 10 + "' }}",
)
TAGS = (
    '{% include "/etc/passwd" %}',
    "{% include FirstName %}",
    '{% import "x" as y %}',
    '{% from "x" import y %}',
    '{% extends "admin/base.html" %}',
    "{% autoescape false %}{{ FirstName }}{% endautoescape %}",
    "{% raw %}{{ not rendered }}{% endraw %}",
    "{% do attributes.clear() %}",
    "{% break %}",
    "{% trans %}x{% endtrans %}",
    "{% block b %}{% endblock %}{{ self.b() }}",
    "{{ super() }}",
    "{%- if -%}",
    "{{",
    "{%",
    "{#",
    "}}",
    "{{ }}",
    "{{ FirstName",
    "{% endfor %}",
)
PLAIN = (
    "Hello {{ FirstName | default('there') }}",
    "{{ attributes['First Name'] }}",
    "{% for i in range(3) %}{{ i }}{% endfor %}",
    "{{ Balance | money('€') }}",
    "{{ Since | date('%d %B %Y') }}",
    "{{ customer_id }}-{{ promo_code }}",
    "{% if FirstName %}Hi {{ FirstName|title }}{% else %}Hi{% endif %}",
    "<a href='{{ unsubscribe_url }}'>unsubscribe</a>",
)

fragments = st.sampled_from(ESCAPES + BOMBS + TAGS + PLAIN)
template_text = st.one_of(
    fragments,
    st.lists(
        st.one_of(fragments, hs.nasty_text, st.text(st.sampled_from("{}%#()[]|~.'\" _-+*/x1"), max_size=20)),
        max_size=6,
    ).map("".join),
    st.text(hs.any_char, max_size=80),
)
attributes = st.dictionaries(
    st.one_of(st.sampled_from(("FirstName", "Letters", "Balance", "Since", "First Name")), hs.nasty_text),
    st.one_of(
        st.sampled_from(("Ada", "abcdefghij" * 10, "1234.5", "2026-03-02 10:00:00", "{{ 7 * 7 }}", "<b>")),
        hs.nasty_text,
        st.text(hs.any_char, max_size=200),
    ),
    max_size=6,
)
extra = st.fixed_dictionaries(
    {},
    optional={name: st.one_of(st.none(), hs.nasty_text, st.integers()) for name in sorted(EXTRA_NAMES)},
)
payloads = st.one_of(
    st.none(),
    st.dictionaries(hs.nasty_text, st.one_of(template_text, hs.storable_scalars), max_size=4),
    st.lists(template_text, max_size=3),
    template_text,
)
KINDS = tuple(choice.value for choice in ChannelKind)


# The template's own client and channel hold these: a template must not reach them either.
API_KEY = "canary-optimove-api-key-55e1"
PROVIDER_TOKEN = "canary-provider-token-91b7"


def secrets_of_the_environment() -> list[str]:
    """What a template must never print, nor put in a reason."""
    found = [settings.SECRET_KEY, CANARY, API_KEY, PROVIDER_TOKEN, *settings.FIELD_ENCRYPTION_KEYS]
    found.append(str(settings.DATABASES["default"].get("PASSWORD") or ""))
    return [secret for secret in found if len(secret) >= 8]


def build(kind: str, parts: dict[str, Any]) -> MessageTemplate:
    """An unsaved template (never cached) of an unsaved channel and client holding secrets."""
    client = Client(slug="fuzz", name="Fuzz", optimove_api_key=API_KEY)
    channel = Channel(client=client, kind=kind, provider_secrets={"auth_token": PROVIDER_TOKEN})
    return MessageTemplate(client=client, channel=channel, template_id=1, name="fuzz", **parts)


def rendered_or_refused(
    template: MessageTemplate, attrs: dict[str, str] | None = None, extras: dict[str, Any] | None = None
) -> RenderedMessage | TemplateRenderError:
    """The render, or its refusal; any other exception propagates and fails the test."""
    try:
        return template_render(template=template, attributes=attrs or {}, extra=extras or {})
    except TemplateRenderError as exc:
        return exc


def assert_rendered_or_refused(
    template: MessageTemplate, attrs: dict[str, str], extras: dict[str, Any]
) -> None:
    secrets = secrets_of_the_environment()
    started = time.perf_counter()
    outcome = rendered_or_refused(template, attrs, extras)
    elapsed = time.perf_counter() - started
    assert elapsed < MAX_SECONDS, f"render took {elapsed:.2f}s"
    if isinstance(outcome, TemplateRenderError):
        tally("refused")
        assert isinstance(outcome.reason, str)
        assert outcome.reason.strip()
        assert not any(secret in outcome.reason for secret in secrets), outcome.reason
        return
    tally("rendered")
    cap = int(settings.TEMPLATE_MAX_OUTPUT_BYTES)
    for part in (outcome.subject, outcome.html, outcome.text, outcome.deep_link):
        assert isinstance(part, str)
        assert len(part.encode("utf-8", "surrogatepass")) <= cap
    assert not any(secret in repr(outcome) for secret in secrets)
    # The payload's string leaves share one cap; its other values are the template's own literals.
    assert len(repr(outcome.payload).encode("utf-8", "surrogatepass")) <= 2 * cap + 1000


@fuzz(150)
@given(
    kind=st.sampled_from(KINDS),
    part=st.sampled_from(("subject", "html_body", "text_body", "deep_link")),
    source=template_text,
    attrs=attributes,
    extras=extra,
)
@example(
    kind="console",
    part="text_body",
    source="{{ cycler.__init__.__globals__.os.environ }}",
    attrs={},
    extras={},
)
@example(
    kind="email", part="html_body", source="{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", attrs={}, extras={}
)
@example(
    kind="sms", part="text_body", source="{{ FirstName }}\ud800", attrs={"FirstName": "\udc00"}, extras={}
)
def test_any_template_renders_within_the_caps_or_fails_with_a_reason(
    kind: str, part: str, source: str, attrs: dict[str, str], extras: dict[str, Any]
) -> None:
    assert_rendered_or_refused(build(kind, {part: source}), attrs, extras)


@fuzz(80)
@given(kind=st.sampled_from(KINDS), payload=payloads, attrs=attributes)
def test_any_payload_renders_within_the_caps_or_fails_with_a_reason(
    kind: str, payload: Any, attrs: dict[str, str]
) -> None:
    assert_rendered_or_refused(build(kind, {"payload": payload, "text_body": "t"}), attrs, {})


@fuzz(100)
@given(
    kind=st.sampled_from(KINDS),
    parts=st.fixed_dictionaries(
        {},
        optional={
            "subject": template_text,
            "html_body": template_text,
            "text_body": template_text,
            "deep_link": template_text,
            "payload": payloads,
        },
    ),
)
@example(kind="email", parts={"subject": "s", "html_body": "x\ud800"})
@example(kind="sms", parts={"text_body": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"})
def test_validation_answers_for_any_template_and_agrees_with_rendering(
    kind: str, parts: dict[str, Any]
) -> None:
    template = build(kind, parts)
    errors = template_content_errors(template=template)
    assert isinstance(errors, dict)
    for field, messages in errors.items():
        assert field in {"subject", "html_body", "text_body", "deep_link", "payload", "sample_attributes"}
        assert messages
        assert all(isinstance(message, str) and message.strip() for message in messages)
    try:
        names: frozenset[str] | TemplateRenderError = template_attribute_names(template=template)
    except TemplateRenderError as exc:
        names = exc
    if isinstance(names, TemplateRenderError):
        assert names.reason.startswith(
            ("subject: ", "html_body: ", "text_body: ", "deep_link: ", "payload at ")
        )
    else:
        assert all(isinstance(name, str) for name in names)
    if not errors:
        # What validation accepts compiles: a render may still fail its budget, never its syntax.
        outcome = rendered_or_refused(template)
        if isinstance(outcome, TemplateRenderError):
            assert "syntax error" not in outcome.reason, outcome.reason


@pytest.mark.parametrize("source", ESCAPES)
def test_no_sandbox_escape_reaches_a_secret(source: str) -> None:
    """Each escape attempt either fails with a reason or prints something harmless."""
    template = build(ChannelKind.CONSOLE, {"text_body": source})
    assert_rendered_or_refused(template, {"FirstName": "Ada"}, {"customer_id": "c1"})
