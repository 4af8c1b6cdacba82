"""`client_apply` (the service and the `client_apply` command) under generated client files: random
nesting, a wrong type for every key, huge and unstorable strings, unknown keys, broken JSON and YAML.

Properties: the service either applies the document or raises ClientFileError, every line of which
names the field at fault (`channels[0].kind: ...`); the command either applies or raises CommandError
naming the file; nothing else is ever raised, a refused file changes no row of the clients, channels,
push apps, templates or outbox tables, and no error message repeats a secret from the file."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from hypothesis import example, given
from hypothesis import strategies as st

from apps.clients.apply_schema import ClientFileError
from apps.clients.models import Channel, Client, PushApp
from apps.clients.services import ApplyResult, client_apply
from apps.message_templates.models import MessageTemplate, OptimoveOutbox
from tests.fuzz import strategies as hs
from tests.fuzz.conftest import fuzz, tally

# A property that hangs fails here rather than at the suite-wide 300 s.
pytestmark = [pytest.mark.django_db, pytest.mark.timeout(120)]

TABLES = (
    *(model._meta.db_table for model in (Client, Channel, PushApp, MessageTemplate, OptimoveOutbox)),
    "clients_client_admins",
)

# A literal secret in the file; no error message may ever contain it.
SECRET = "s3cr3t-Quartz-Lantern-77"


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table an apply writes, as stored (secrets as their encrypted tokens)."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"SELECT * FROM {table} ORDER BY 1")  # noqa: S608 - table names from the models
            rows[table] = cursor.fetchall()
    return rows


def base_document() -> dict[str, Any]:
    """A valid file touching every section: client, secrets, channels of several kinds, templates,
    push apps."""
    return {
        "slug": "fuzzco",
        "name": "Fuzz Co",
        "active": True,
        "personal_data_retention_days": 90,
        "optimove": {"base_url": "https://api5.optimove.net", "api_key": SECRET},
        "channels": [
            {
                "channel_id": 504,
                "name": "Email",
                "kind": "email",
                "provider": "smtp",
                "provider_options": {"host": "smtp.example.com", "port": 587, "tls": True},
                "provider_secrets": {"password": SECRET},
                "address_attribute": "Email",
                "rate_limit_per_second": 50,
                "realtime": False,
                "scheduled_event_type": 13,
                "active": True,
                "consent_sync": "preference",
                "templates": [
                    {
                        "template_id": 14,
                        "name": "Welcome",
                        "subject": "Hi {{ FirstName }}",
                        "html_body": "<p>Hello {{ FirstName | default('there') }}</p>",
                        "text_body": "Hello",
                    }
                ],
            },
            {
                "channel_id": 505,
                "name": "Hook",
                "kind": "webhook",
                "provider": "webhook",
                "provider_options": {"url": "https://hooks.example.test/x"},
                "realtime": True,
                "templates": [
                    {"template_id": 7, "name": "Ping", "payload": {"hi": "{{ FirstName }}", "n": [1, 2.5]}}
                ],
            },
            {
                "channel_id": 506,
                "name": "Push",
                "kind": "push",
                "provider": "fcm",
                "apps": [{"app_id": "com.fuzz.app", "name": "Fuzz app"}],
                "templates": [{"template_id": 9, "name": "Push", "subject": "Hi", "payload": {"k": "v"}}],
            },
        ],
    }


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside the document (keys and list indexes)."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


@st.composite
def mutated_documents(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> dict[str, Any]:
    """The base file with one to three things wrong: a value of the wrong type (or a hostile one of
    the right type), a key removed, an unknown key added, a list emptied or given a stray item."""
    document = base_document()
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        parent = _parent(document, path)
        how = draw(st.sampled_from(("replace", "replace", "replace", "remove", "unknown", "append")))
        if how == "replace":
            parent[path[-1]] = draw(values)
        elif how == "remove":
            del parent[path[-1]]
        elif how == "unknown" and isinstance(parent, dict):
            parent[draw(hs.nasty_text)] = draw(values)
        elif isinstance(parent, list):
            parent.append(draw(values))
    return document


# Values for a mutation: wrong types, hostile scalars, deep or wide structures, and plausible values of
# the right type (so mutations also reach the checks behind the type checks).
plausible = st.sampled_from(
    (
        "email",
        "sms",
        "push",
        "webhook",
        "console",
        "attribute",
        "preference",
        "none",
        13,
        1,
        2,
        0,
        -5,
        2**31,
        "env:NO_SUCH_VARIABLE_FOR_FUZZ",
        "env:",
        "env:1BAD",
        "{{ broken",
        "{% include 'x' %}",
        "{% for %}",
        "https://",
        "ftp://x.test",
        "x" * 5000,
        "é" * 300,
        [],
        {},
        None,
        True,
    )
)
mutation_values = st.one_of(plausible, hs.scalars, hs.json_values(8))


def applied_or_refused(document: Any) -> ApplyResult | ClientFileError:
    """The apply's result, or its refusal; any other exception propagates and fails the test."""
    try:
        result = client_apply(document=copy.deepcopy(document))
    except ClientFileError as exc:
        outcome: ApplyResult | ClientFileError = exc
    else:
        outcome = result
    tally("refused" if isinstance(outcome, ClientFileError) else "applied")
    return outcome


def assert_refusal(exc: ClientFileError) -> None:
    """Each problem is one `path: problem` line, and no line repeats the secret."""
    assert exc.errors, "a refusal names at least one problem"
    for line in exc.errors:
        assert re.match(r"^\S.*?: \S", line, flags=re.DOTALL), line
        assert SECRET not in line


@fuzz(100)
@given(document=mutated_documents(mutation_values))
@example(document={**base_document(), "name": "Fuzz\x00Co"})
@example(document={**base_document(), "name": "\ud800"})
@example(
    document={**base_document(), "optimove": {"base_url": "https://api5.optimove.net", "api_key": "k\ud800"}}
)
def test_a_mutated_file_applies_or_is_refused_naming_the_field(document: dict[str, Any]) -> None:
    before = snapshot()
    outcome = applied_or_refused(document)
    if isinstance(outcome, ClientFileError):
        assert_refusal(outcome)
        assert snapshot() == before, "a refused file changed the database"
        return
    assert Client.objects.filter(slug=outcome.slug).exists()
    # What was applied reads back the same: applying it again changes nothing.
    again = applied_or_refused(document)
    assert isinstance(again, ApplyResult)
    assert not again.changed


@fuzz(100)
@given(document=hs.json_values(30))
def test_any_json_value_as_a_file_is_refused_naming_the_field(document: Any) -> None:
    before = snapshot()
    outcome = applied_or_refused(document)
    assert isinstance(outcome, ClientFileError)
    assert_refusal(outcome)
    assert snapshot() == before


@fuzz(80)
@given(
    key=st.sampled_from(("name", "slug", "active", "optimove", "channels", "personal_data_retention_days")),
    value=mutation_values,
)
def test_a_wrong_value_for_a_top_level_key_names_that_key(key: str, value: Any) -> None:
    document = base_document()
    document[key] = value
    before = snapshot()
    outcome = applied_or_refused(document)
    if isinstance(outcome, ClientFileError):
        assert_refusal(outcome)
        assert snapshot() == before
        # The problem is reported at that key (or inside it: `optimove.base_url`, `channels[0].kind`).
        assert any(line.startswith(key) for line in outcome.errors), outcome.errors


# --------------------------------------------------------------------------------------------------
# The command: files on disk, as JSON or YAML, well-formed or not
# --------------------------------------------------------------------------------------------------


def _yaml_or_json(document: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, allow_nan=True)
    try:
        return yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:  # PyYAML will not write some characters; the JSON spelling is YAML too
        return json.dumps(document)


# A valid file but for its provider_options: YAML aliases nesting one list ten times in the next,
# 10**8 values once expanded ("billion laughs").
LAUGHS = """slug: fuzzco
name: Fuzz
optimove: {base_url: "https://api5.optimove.net"}
channels:
  - channel_id: 1
    name: x
    kind: email
    provider: smtp
    provider_options:
      a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
      h: [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
"""

# Text that PyYAML and the JSON decoder have trouble with.
HOSTILE_FILES = (
    LAUGHS,
    "",
    "---\n...\n",
    "[" * 1000,  # past the recursion limit; PyYAML scans deep flow nesting in quadratic time
    "{" * 1000 + "}" * 1000,
    "- " * 3000 + "x",
    '{"slug": ' + "1" * 5000 + "}",
    "slug: " + "1" * 5000,
    "slug: !!python/object/apply:os.system ['true']",
    "a: &a [1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
    "slug: fuzzco\nname: x\noptimove: {base_url: 'https://x.test'}\nchannels: [&c {channel_id: 1}, *c]\n",
    "\ufeffslug: fuzzco",
    "slug: 2024-05-01",
    "? [a, b]\n: c",
    "%YAML 9.9\n---\na: 1",
    "a: 1\n\ta: 2",
    "\x00",
    "slug: \x85",
)


@fuzz(80)
@given(
    content=st.one_of(
        st.tuples(mutated_documents(mutation_values), st.sampled_from(("json", "yaml"))).map(
            lambda case: _yaml_or_json(*case)
        ),
        st.sampled_from(HOSTILE_FILES),
        st.text(hs.any_char, max_size=200),
    ),
    suffix=st.sampled_from((".json", ".yaml", ".yml", "", ".txt")),
    data=st.data(),
)
def test_the_command_applies_a_file_or_refuses_it_with_a_command_error(
    tmp_path_factory: pytest.TempPathFactory, content: str, suffix: str, data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("files") / f"client{suffix}"
    raw = content.encode("utf-8", "surrogatepass")
    if data.draw(st.booleans()):
        raw = data.draw(hs.spoiled(raw)) if raw else raw
    path.write_bytes(raw)
    before = snapshot()
    try:
        call_command("client_apply", str(path), stdout=_Sink(), stderr=_Sink())
    except CommandError as exc:
        refusal: CommandError | None = exc
    else:
        refusal = None
    tally("refused" if refusal else "applied")
    if refusal is not None:
        message = str(refusal)
        assert message.startswith(f"{path}: "), message
        assert SECRET not in message
        assert snapshot() == before, "a refused file changed the database"


def test_the_base_document_applies(tmp_path: Path) -> None:
    """The mutations start from a file that applies in full."""
    result = client_apply(document=base_document())
    assert result.created
    assert Channel.objects.filter(client__slug="fuzzco").count() == 3
    assert MessageTemplate.objects.filter(client__slug="fuzzco").count() == 3
    assert PushApp.objects.filter(channel__client__slug="fuzzco").count() == 1


class _Sink:
    """stdout/stderr for call_command: the report is not what these tests look at."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None
