"""Client files the fuzz tests (tests/fuzz/test_client_apply_fuzz.py) found crashing `client_apply`
(a database error, a UnicodeEncodeError, a ValueError or RecursionError from the parsers), hanging on
YAML aliases, or re-applying a value that had not changed. Each is now a ClientFileError naming the
field (the command: a CommandError naming the file), and nothing is written."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.clients import services
from apps.clients.apply_schema import ClientFileError
from apps.clients.models import Channel
from tests.clients.conftest import API_KEY, acme_document, snapshot

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("acme_env")]


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


UNSTORABLE: list[Any] = [
    pytest.param(
        _set(("name",), "Acme\x00Retail"), "name: holds a NUL character, which cannot be stored", id="nul"
    ),
    pytest.param(
        _set(("name",), "Acme \ud800"),
        "name: holds an unpaired UTF-16 surrogate, which is not text",
        id="surrogate",
    ),
    pytest.param(
        _set(("optimove", "api_key"), "key-\ud800-" + API_KEY),
        "optimove.api_key: holds an unpaired UTF-16 surrogate, which is not text",
        id="surrogate-in-a-secret",
    ),
    pytest.param(
        _set(("channels", 0, "provider_secrets", "password"), "pw\x00" + API_KEY),
        "channels[0].provider_secrets.password: holds a NUL character, which cannot be stored",
        id="nul-in-a-provider-secret",
    ),
    pytest.param(
        _set(("channels", 0, "provider_options", "timeout"), float("nan")),
        "channels[0].provider_options.timeout: NaN is not a JSON number",
        id="nan",
    ),
    pytest.param(
        _set(("channels", 0, "provider_options", "timeout"), [float("-inf")]),
        "channels[0].provider_options.timeout[0]: -Infinity is not a JSON number",
        id="infinity",
    ),
    pytest.param(
        _set(("channels", 0, "provider_options", "bad\x00key"), 1),
        "channels[0].provider_options: a key holds a NUL character, which cannot be stored",
        id="nul-in-a-key",
    ),
    pytest.param(
        _set(("channels", 0, "provider_options", "deep"), _nested(40)),
        "channels[0].provider_options: is nested more than 32 levels deep",
        id="deep",
    ),
    pytest.param(
        _set(
            ("channels", 0, "templates"),
            [{"template_id": 1, "name": "T", "subject": "Hi", "text_body": "\x00"}],
        ),
        "channels[0].templates[0].text_body: holds a NUL character, which cannot be stored",
        id="nul-in-a-template",
    ),
    pytest.param(
        _set(
            ("channels", 0, "templates"),
            [{"template_id": 1, "name": "T", "subject": "\udfff", "text_body": "x"}],
        ),
        "channels[0].templates[0].subject: holds an unpaired UTF-16 surrogate, which is not text",
        id="surrogate-in-a-template",
    ),
]


@pytest.mark.parametrize(("change", "error"), UNSTORABLE)
def test_unstorable_values_are_refused_naming_the_field(
    change: Callable[[dict[str, Any]], None], error: str
) -> None:
    services.client_apply(document=acme_document())
    before = snapshot()
    document = acme_document()
    document["name"] = "Renamed By A Bad File"  # valid, and not applied either
    change(document)

    with pytest.raises(ClientFileError) as refused:
        services.client_apply(document=document)

    assert refused.value.errors == (error,)
    assert API_KEY not in str(refused.value)
    assert snapshot() == before


LAUGHS = """slug: acme
name: Acme
optimove: {base_url: "https://api5.optimove.net"}
channels:
  - channel_id: 504
    name: Email
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


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        # 10**8 values once the aliases are expanded: walked (and saved) exponentially before.
        ("laughs.yaml", LAUGHS, "channels[0].provider_options: holds more than 10000 values"),
        ("big.json", '{"slug": ' + "1" * 4301 + "}", "(file): not valid JSON: a number is too long to read"),
        ("big.yaml", "slug: " + "1" * 4301, "(file): not valid YAML: a number is too long to read"),
        ("big", '{"slug": ' + "1" * 4301 + "}", "(file): not valid YAML: a number is too long to read"),
        ("deep.json", "[" * 5000, "(file): not valid JSON: nested too deeply"),
        ("deep.yaml", "[" * 1000, "(file): not valid YAML: nested too deeply"),
    ],
)
def test_files_the_parsers_choke_on_are_refused_naming_the_file(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    services.client_apply(document=acme_document())
    before = snapshot()
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(CommandError) as refused:
        call_command("client_apply", str(path), stdout=io.StringIO())

    assert str(refused.value) == f"{path}: nothing was applied:\n  {message}"
    assert snapshot() == before


def test_a_float_stored_as_its_decimal_is_not_rewritten_by_a_reapply() -> None:
    # JSON writes 1.189254040210163e+17; the JSON column keeps that decimal and hands back the integer
    # 118925404021016300, which is not the float's binary value: compared as floats, every apply of the
    # same file rewrote the channel.
    document = acme_document()
    document["channels"][0]["provider_options"]["limit"] = 1.189254040210163e17
    services.client_apply(document=json.loads(json.dumps(document)))
    assert Channel.objects.get(optimove_channel_id=504).provider_options["limit"] == 118925404021016300
    before = snapshot()

    again = services.client_apply(document=json.loads(json.dumps(document)))

    assert again.lines() == ["client acme: no changes"]
    assert snapshot() == before
