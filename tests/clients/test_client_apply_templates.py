"""`client_apply` / `client_export` carry each channel's message templates (`channels[i].templates`)."""

from __future__ import annotations

import datetime
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.clients import services
from apps.clients.models import Channel, Client
from apps.message_templates import services as template_services
from apps.message_templates.models import MessageTemplate
from tests.clients.conftest import acme_document, changed_columns, snapshot
from tests.clients.test_client_apply import apply, write

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("acme_env")]

WELCOME_HTML = (
    "<html>\n  <body>\n    <p>Hello <b>{{ FirstName | default('there') }}</b>,</p>\n"
    "    <p>spring is here: 20% off everything in store this week.</p>\n  </body>\n</html>\n"
)
WEBHOOK_PAYLOAD = {
    "greeting": "Hello {{ FirstName }}",
    "amount": 1,
    "vip": True,
    "ratio": 0.5,
    "tags": ["spring", "{{ Country }}"],
    "meta": None,
}


def templated_document() -> dict[str, Any]:
    """The acme file with templates on its email and SMS channels, plus a webhook channel."""
    document = acme_document()
    document["channels"][0]["templates"] = [
        {
            "template_id": 14,
            "name": "Spring welcome",
            "active": True,
            "subject": "Hi {{ FirstName }}",
            "html_body": WELCOME_HTML,
            "text_body": "Hello {{ FirstName }}, spring is here.",
        },
        {
            "template_id": 15,
            "name": "Spring reminder",
            "active": False,
            "subject": "Last days",
            "text_body": "Only {{ DaysLeft }} days left.",
        },
    ]
    document["channels"][1]["templates"] = [
        {"template_id": 14, "name": "Spring SMS", "text_body": "Hi {{ FirstName }}: 20% off."},
    ]
    document["channels"].append(
        {
            "channel_id": 506,
            "name": "Hook",
            "kind": "webhook",
            "provider": "webhook",
            "provider_options": {"url": "https://hooks.acme.test/in"},
            "templates": [
                {
                    "template_id": 30,
                    "name": "Order hook",
                    "payload": WEBHOOK_PAYLOAD,
                    "deep_link": "acme://offers/{{ OfferId }}",
                }
            ],
        }
    )
    return document


def full_snapshot() -> dict[str, list[dict[str, Any]]]:
    """The clients tables plus every template row, exactly as stored."""
    rows = snapshot()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM message_templates_messagetemplate ORDER BY id")
        columns = [column.name for column in cursor.description]
        rows["templates"] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return rows


def template_row(rows: dict[str, list[dict[str, Any]]], channel_id: int, template_id: int) -> dict[str, Any]:
    pk = template(channel_id, template_id).pk
    return next(row for row in rows["templates"] if row["id"] == pk)


def template(channel_id: int, template_id: int) -> MessageTemplate:
    return MessageTemplate.objects.get(
        channel__client__slug="acme", channel__optimove_channel_id=channel_id, template_id=template_id
    )


def template_keys() -> list[tuple[int, int]]:
    return sorted(MessageTemplate.objects.values_list("channel__optimove_channel_id", "template_id"))


def blocks(lines: list[str]) -> dict[str, list[str]]:
    """The report as {object line: its indented field lines}."""
    result: dict[str, list[str]] = {}
    current = ""
    for line in lines:
        if line.startswith("  "):
            result[current].append(line)
        else:
            current = line
            result[current] = []
    return result


@pytest.fixture
def service_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Records each template_upsert / template_delete that client_apply makes, then runs the real one."""
    calls: list[tuple[str, int, int]] = []

    def upsert(*, channel: Channel, template_id: int, name: str, **fields: Any) -> Any:
        calls.append(("upsert", channel.optimove_channel_id, template_id))
        return template_services.template_upsert(
            channel=channel, template_id=template_id, name=name, **fields
        )

    def delete(*, template: MessageTemplate) -> None:
        calls.append(("delete", template.channel.optimove_channel_id, template.template_id))
        template_services.template_delete(template=template)

    monkeypatch.setattr(services, "template_upsert", upsert)
    monkeypatch.setattr(services, "template_delete", delete)
    return calls


def test_apply_creates_each_channels_templates_through_the_template_services(
    tmp_path: Path, service_calls: list[tuple[str, int, int]]
) -> None:
    report = blocks(apply(write(tmp_path, templated_document())))

    assert list(report) == [
        "client acme: created",
        'channel 504 "Email": created',
        'channel 504 template 14 "Spring welcome": created',
        'channel 504 template 15 "Spring reminder": created',
        'channel 505 "SMS": created',
        'channel 505 template 14 "Spring SMS": created',
        'channel 506 "Hook": created',
        'channel 506 template 30 "Order hook": created',
    ]
    assert report['channel 504 template 14 "Spring welcome": created'] == [
        '  name: "Spring welcome"',
        "  active: true",
        '  subject: "Hi {{ FirstName }}"',
        "  html_body: set",  # too long for a line of the report
        '  text_body: "Hello {{ FirstName }}, spring is here."',
    ]
    assert report['channel 504 template 15 "Spring reminder": created'] == [
        '  name: "Spring reminder"',
        "  active: false",
        '  subject: "Last days"',
        '  text_body: "Only {{ DaysLeft }} days left."',
    ]
    assert report['channel 505 template 14 "Spring SMS": created'] == [
        '  name: "Spring SMS"',
        "  active: true",
        '  text_body: "Hi {{ FirstName }}: 20% off."',
    ]
    assert report['channel 506 template 30 "Order hook": created'] == [
        '  name: "Order hook"',
        "  active: true",
        "  payload: set",
        '  deep_link: "acme://offers/{{ OfferId }}"',
    ]
    assert service_calls == [
        ("upsert", 504, 14),
        ("upsert", 504, 15),
        ("upsert", 505, 14),
        ("upsert", 506, 30),
    ]
    assert template_keys() == [(504, 14), (504, 15), (505, 14), (506, 30)]
    client = Client.objects.get(slug="acme")
    assert set(MessageTemplate.objects.values_list("client_id", flat=True)) == {client.pk}
    welcome = template(504, 14)
    assert (welcome.name, welcome.is_active, welcome.subject, welcome.html_body, welcome.text_body) == (
        "Spring welcome",
        True,
        "Hi {{ FirstName }}",
        WELCOME_HTML,
        "Hello {{ FirstName }}, spring is here.",
    )
    assert (welcome.payload, welcome.deep_link, welcome.sample_attributes) == (None, "", {})
    reminder = template(504, 15)
    assert (reminder.is_active, reminder.subject, reminder.html_body, reminder.text_body) == (
        False,
        "Last days",
        "",
        "Only {{ DaysLeft }} days left.",
    )
    sms = template(505, 14)
    assert (sms.name, sms.is_active, sms.subject, sms.text_body, sms.payload) == (
        "Spring SMS",
        True,
        "",
        "Hi {{ FirstName }}: 20% off.",
        None,
    )
    hook = template(506, 30)
    assert (hook.name, hook.payload, hook.deep_link, hook.text_body) == (
        "Order hook",
        WEBHOOK_PAYLOAD,
        "acme://offers/{{ OfferId }}",
        "",
    )
    assert isinstance(hook.payload, dict)
    assert [type(hook.payload[key]) for key in ("vip", "amount", "ratio")] == [bool, int, float]


def test_applying_the_same_file_again_writes_nothing(
    tmp_path: Path, service_calls: list[tuple[str, int, int]]
) -> None:
    path = write(tmp_path, templated_document())
    apply(path)
    before = full_snapshot()
    service_calls.clear()

    with CaptureQueriesContext(connection) as queries:
        lines = apply(path, "--prune")

    assert lines == ["client acme: no changes"]
    assert [q["sql"] for q in queries if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")] == []
    assert service_calls == []
    assert full_snapshot() == before  # updated_at of every template unchanged


def test_one_changed_template_field_is_the_only_change_reported_and_written(
    tmp_path: Path, service_calls: list[tuple[str, int, int]]
) -> None:
    apply(write(tmp_path, templated_document()))
    before = full_snapshot()
    service_calls.clear()
    document = templated_document()
    document["channels"][0]["templates"][0]["subject"] = "Hello {{ FirstName }}"

    lines = apply(write(tmp_path, document))

    assert lines == [
        'channel 504 template 14 "Spring welcome": updated',
        '  subject: "Hi {{ FirstName }}" -> "Hello {{ FirstName }}"',
    ]
    assert service_calls == [("upsert", 504, 14)]
    after = full_snapshot()
    assert changed_columns(template_row(before, 504, 14), template_row(after, 504, 14)) == {
        "subject",
        "updated_at",
    }
    for other in ((504, 15), (505, 14), (506, 30)):
        assert template_row(after, *other) == template_row(before, *other)
    assert {k: v for k, v in after.items() if k != "templates"} == {
        k: v for k, v in before.items() if k != "templates"
    }
    assert template(504, 14).subject == "Hello {{ FirstName }}"


def test_renames_long_bodies_payloads_and_removed_parts_are_reported_readably(tmp_path: Path) -> None:
    apply(write(tmp_path, templated_document()))
    document = templated_document()
    welcome, reminder = document["channels"][0]["templates"]
    welcome["html_body"] = WELCOME_HTML.replace("20%", "25%")
    reminder.update(name="Spring last call", active=True)
    del reminder["text_body"]  # absent is empty, as for every optional key of the file
    reminder["html_body"] = "<p>Only {{ DaysLeft }} days left.</p>"
    # true is not 1 as a JSON value, though Python's == says it is.
    document["channels"][2]["templates"][0]["payload"] = {**WEBHOOK_PAYLOAD, "amount": True}

    lines = apply(write(tmp_path, document))

    assert lines == [
        'channel 504 template 14 "Spring welcome": updated',
        "  html_body: changed",
        'channel 504 template 15 "Spring reminder": updated',
        '  name: "Spring reminder" -> "Spring last call"',
        "  active: false -> true",
        '  html_body: "" -> "<p>Only {{ DaysLeft }} days left.</p>"',
        '  text_body: "Only {{ DaysLeft }} days left." -> ""',
        'channel 506 template 30 "Order hook": updated',
        "  payload: changed",
    ]
    assert template(504, 14).html_body == WELCOME_HTML.replace("20%", "25%")
    reminder_row = template(504, 15)
    assert (reminder_row.name, reminder_row.is_active, reminder_row.html_body, reminder_row.text_body) == (
        "Spring last call",
        True,
        "<p>Only {{ DaysLeft }} days left.</p>",
        "",
    )
    stored_payload = template(506, 30).payload
    assert isinstance(stored_payload, dict)
    assert stored_payload == {**WEBHOOK_PAYLOAD, "amount": True}
    assert stored_payload["amount"] is True
    assert apply(write(tmp_path, document)) == ["client acme: no changes"]

    document["channels"][0]["templates"][0]["html_body"] = ""
    assert apply(write(tmp_path, document)) == [
        'channel 504 template 14 "Spring welcome": updated',
        "  html_body: removed",
    ]


def test_a_template_absent_from_the_list_is_kept_unless_pruned(
    tmp_path: Path, service_calls: list[tuple[str, int, int]]
) -> None:
    apply(write(tmp_path, templated_document()))
    before = full_snapshot()
    service_calls.clear()
    document = templated_document()
    del document["channels"][0]["templates"][1]
    path = write(tmp_path, document)

    assert apply(path) == [
        "client acme: no changes",
        'channel 504 template 15 "Spring reminder": not in the file, kept (--prune deletes it)',
    ]
    assert full_snapshot() == before

    assert apply(path, "--prune") == ['channel 504 template 15 "Spring reminder": deleted']
    assert service_calls == [("delete", 504, 15)]
    assert template_keys() == [(504, 14), (505, 14), (506, 30)]
    assert apply(path, "--prune") == ["client acme: no changes"]


def test_prune_leaves_a_channel_without_a_templates_key_alone_and_empties_an_empty_list(
    tmp_path: Path, service_calls: list[tuple[str, int, int]]
) -> None:
    apply(write(tmp_path, templated_document()))
    before = full_snapshot()
    service_calls.clear()
    document = templated_document()
    del document["channels"][0]["templates"]  # no key: channel 504's templates are not the file's business
    document["channels"][1]["templates"] = []  # an empty list: channel 505 has no templates

    lines = apply(write(tmp_path, document), "--prune")

    assert lines == ['channel 505 template 14 "Spring SMS": deleted']
    assert service_calls == [("delete", 505, 14)]
    assert template_keys() == [(504, 14), (504, 15), (506, 30)]
    after = full_snapshot()
    for kept in ((504, 14), (504, 15), (506, 30)):
        assert template_row(after, *kept) == template_row(before, *kept)


def test_pruning_a_channel_deletes_its_templates_through_the_template_services(
    tmp_path: Path, service_calls: list[tuple[str, int, int]]
) -> None:
    apply(write(tmp_path, templated_document()))
    service_calls.clear()
    document = templated_document()
    del document["channels"][2]
    path = write(tmp_path, document)

    assert apply(path) == [
        "client acme: no changes",
        'channel 506 "Hook": not in the file, kept (--prune deletes it)',
    ]
    assert service_calls == []

    assert apply(path, "--prune") == [
        'channel 506 "Hook": deleted',
        'channel 506 template 30 "Order hook": deleted',
    ]
    assert service_calls == [("delete", 506, 30)]
    assert template_keys() == [(504, 14), (504, 15), (505, 14)]
    assert not Channel.objects.filter(optimove_channel_id=506).exists()


def test_dry_run_reports_template_changes_and_saves_nothing(
    tmp_path: Path, service_calls: list[tuple[str, int, int]]
) -> None:
    assert apply(write(tmp_path, templated_document()), "--dry-run")[-1] == "dry run: nothing was saved"
    assert MessageTemplate.objects.count() == 0

    apply(write(tmp_path, templated_document()))
    before = full_snapshot()
    document = templated_document()
    document["channels"][0]["templates"][0]["name"] = "Spring hello"
    del document["channels"][0]["templates"][1]
    document["channels"][1]["templates"].append({"template_id": 16, "name": "Flash", "text_body": "Now!"})

    lines = apply(write(tmp_path, document), "--dry-run", "--prune")

    assert lines == [
        'channel 504 template 14 "Spring welcome": updated',
        '  name: "Spring welcome" -> "Spring hello"',
        'channel 504 template 15 "Spring reminder": deleted',
        'channel 505 template 16 "Flash": created',
        '  name: "Flash"',
        "  active: true",
        '  text_body: "Now!"',
        "dry run: nothing was saved",
    ]
    assert full_snapshot() == before


def test_export_lists_every_template_field_and_applying_it_changes_nothing(tmp_path: Path) -> None:
    apply(write(tmp_path, templated_document()))
    # Preview data is the admin's business: neither exported nor touched by an apply.
    template_services.template_upsert(
        channel=Channel.objects.get(optimove_channel_id=505),
        template_id=14,
        name="Spring SMS",
        sample_attributes={"FirstName": "Ada"},
    )
    before = full_snapshot()

    exported = services.client_export(client=Client.objects.get(slug="acme"))

    channels = exported["channels"]
    assert [c["channel_id"] for c in channels] == [504, 505, 506]
    assert channels[0]["templates"] == [
        {
            "template_id": 14,
            "name": "Spring welcome",
            "active": True,
            "subject": "Hi {{ FirstName }}",
            "html_body": WELCOME_HTML,
            "text_body": "Hello {{ FirstName }}, spring is here.",
            "payload": None,
            "deep_link": "",
        },
        {
            "template_id": 15,
            "name": "Spring reminder",
            "active": False,
            "subject": "Last days",
            "html_body": "",
            "text_body": "Only {{ DaysLeft }} days left.",
            "payload": None,
            "deep_link": "",
        },
    ]
    assert channels[1]["templates"] == [
        {
            "template_id": 14,
            "name": "Spring SMS",
            "active": True,
            "subject": "",
            "html_body": "",
            "text_body": "Hi {{ FirstName }}: 20% off.",
            "payload": None,
            "deep_link": "",
        }
    ]
    assert channels[2]["templates"] == [
        {
            "template_id": 30,
            "name": "Order hook",
            "active": True,
            "subject": "",
            "html_body": "",
            "text_body": "",
            "payload": WEBHOOK_PAYLOAD,
            "deep_link": "acme://offers/{{ OfferId }}",
        }
    ]
    result = services.client_apply(document=exported, prune=True)
    assert (result.changed, result.lines()) == (False, ["client acme: no changes"])
    assert full_snapshot() == before
    assert template(505, 14).sample_attributes == {"FirstName": "Ada"}


def test_export_command_output_applied_by_the_apply_command_changes_nothing(tmp_path: Path) -> None:
    document = templated_document()
    # Text that YAML cannot write as a block (trailing spaces, \r\n, no final newline) must survive too.
    document["channels"][0]["templates"][1]["html_body"] = "<p>x</p>  \r\n<p>{{ DaysLeft }}</p>"
    document["channels"][1]["templates"][0]["text_body"] = "Hi {{ FirstName }}\n\n\n"
    apply(write(tmp_path, document))
    before = full_snapshot()
    out = io.StringIO()

    call_command("client_export", "acme", stdout=out)

    text = out.getvalue()
    # Multi-line bodies are written as readable `|` blocks.
    assert "    html_body: |\n      <html>\n        <body>\n" in text
    assert yaml.safe_load(text)["channels"][0]["templates"][1]["html_body"] == (
        "<p>x</p>  \r\n<p>{{ DaysLeft }}</p>"
    )
    exported = tmp_path / "exported.yaml"
    exported.write_text(text)
    assert apply(exported) == ["client acme: no changes"]
    assert apply(exported, "--prune") == ["client acme: no changes"]
    assert full_snapshot() == before


def _set_template(channel: int, index: int, key: str, value: Any) -> Any:
    return lambda d: d["channels"][channel]["templates"][index].__setitem__(key, value)


def _del_template_key(channel: int, index: int, key: str) -> Any:
    return lambda d: d["channels"][channel]["templates"][index].__delitem__(key)


BAD_TEMPLATES = [
    pytest.param(
        _del_template_key(0, 1, "subject"),
        ["channels[0].templates[1].subject: An email template needs a subject."],
        id="email without subject",
    ),
    pytest.param(
        _del_template_key(1, 0, "text_body"),
        ["channels[1].templates[0].text_body: An SMS template needs a text."],
        id="sms without text",
    ),
    pytest.param(
        _del_template_key(2, 0, "payload"),
        ["channels[2].templates[0].payload: A webhook template needs a JSON payload or a text."],
        id="webhook without payload",
    ),
    pytest.param(
        # The channel's kind in the file decides: SMS text becomes an email without a subject.
        lambda d: d["channels"][1].__setitem__("kind", "email"),
        ["channels[1].templates[0].subject: An email template needs a subject."],
        id="kind changed under a template",
    ),
    pytest.param(
        _set_template(0, 0, "html_body", "<p>{{ FirstName </p>"),
        ["channels[0].templates[0].html_body: Syntax error on line 1: unexpected '/'."],
        id="jinja syntax error",
    ),
    pytest.param(
        _set_template(1, 0, "text_body", "Hi {{ FirstName | shout }}"),
        ["channels[1].templates[0].text_body: Syntax error on line 1: No filter named 'shout'."],
        id="unknown filter",
    ),
    pytest.param(
        _set_template(2, 0, "payload", {"greeting": "Hello {{ FirstName"}),
        [
            "channels[2].templates[0].payload: Payload at $.greeting: syntax error on line 1: "
            "unexpected end of template, expected 'end of print statement'."
        ],
        id="syntax error in payload",
    ),
    pytest.param(
        _set_template(0, 1, "template_id", 14),
        ["channels[0].templates[1].template_id: 14 is already used by channels[0].templates[0]"],
        id="duplicate template id",
    ),
    pytest.param(
        _set_template(0, 0, "template_id", "14"),
        ["channels[0].templates[0].template_id: expected an integer, got a string"],
        id="template id a string",
    ),
    pytest.param(
        _set_template(0, 0, "template_id", 0),
        ["channels[0].templates[0].template_id: 0 is out of range (1 to 2147483647)"],
        id="template id zero",
    ),
    pytest.param(
        _set_template(0, 0, "active", "yes"),
        ["channels[0].templates[0].active: expected true or false, got a string"],
        id="active a string",
    ),
    pytest.param(
        _set_template(0, 0, "subject", 42),
        ["channels[0].templates[0].subject: expected a string, got an integer"],
        id="subject a number",
    ),
    pytest.param(
        _set_template(0, 0, "name", "  "),
        ["channels[0].templates[0].name: must not be empty"],
        id="blank name",
    ),
    pytest.param(
        _del_template_key(0, 0, "name"),
        ["channels[0].templates[0].name: required"],
        id="missing name",
    ),
    pytest.param(
        _set_template(0, 0, "subject", "x" * 1001),
        ["channels[0].templates[0].subject: longer than 1000 characters"],
        id="subject too long",
    ),
    pytest.param(
        _set_template(2, 0, "payload", {"sent": datetime.date(2024, 5, 1)}),
        ["channels[2].templates[0].payload.sent: date is not a JSON value (quote it)"],
        id="yaml date in payload",
    ),
    pytest.param(
        _set_template(0, 0, "sample_attributes", {"FirstName": "Ada"}),
        [
            "channels[0].templates[0].sample_attributes: unknown key (expected one of template_id, name, "
            "active, subject, html_body, text_body, payload, deep_link)"
        ],
        id="unknown key",
    ),
    pytest.param(
        lambda d: d["channels"][0].__setitem__("templates", {"14": {"name": "x"}}),
        ["channels[0].templates: expected a list, got a mapping"],
        id="templates not a list",
    ),
    pytest.param(
        lambda d: d["channels"][1].__setitem__("templates", None),
        ["channels[1].templates: expected a list, got null"],
        id="templates left empty",
    ),
    pytest.param(
        lambda d: d["channels"][1]["templates"].append("Spring SMS 2"),
        ["channels[1].templates[1]: expected a mapping, got a string"],
        id="template not a mapping",
    ),
    pytest.param(
        lambda d: (
            d["channels"][0]["templates"][0].__setitem__("subject", "{% if %}"),
            d["channels"][1]["templates"][0].__setitem__("colour", "red"),
            d["channels"][2]["templates"][0].__setitem__("template_id", True),
        ),
        [
            "channels[0].templates[0].subject: Syntax error on line 1: Expected an expression, got "
            "'end of statement block'.",
            "channels[1].templates[0].colour: unknown key (expected one of template_id, name, active, "
            "subject, html_body, text_body, payload, deep_link)",
            "channels[2].templates[0].template_id: expected an integer, got a boolean",
        ],
        id="every problem at once",
    ),
]


@pytest.mark.parametrize(("change", "errors"), BAD_TEMPLATES)
def test_a_bad_template_names_its_path_and_changes_nothing(
    tmp_path: Path, change: Any, errors: list[str]
) -> None:
    apply(write(tmp_path, templated_document()))
    before = full_snapshot()
    document = templated_document()
    # Valid changes in the same file that must not be applied either, even with --prune.
    document["channels"][0]["templates"][0]["name"] = "Renamed By A Bad File"
    del document["channels"][2]["templates"][0]["deep_link"]
    document["channels"][0]["templates"].append(
        {"template_id": 98, "name": "Also new", "subject": "s", "text_body": "t"}
    )
    change(document)
    path = write(tmp_path, document, "bad.yaml")

    with CaptureQueriesContext(connection) as queries, pytest.raises(CommandError) as raised:
        apply(path, "--prune")

    assert str(raised.value) == f"{path}: nothing was applied:\n" + "\n".join(f"  {e}" for e in errors)
    assert queries.captured_queries == []  # refused before the database was even asked
    assert full_snapshot() == before


def test_a_kind_change_that_kept_templates_do_not_suit_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    apply(write(tmp_path, templated_document()))
    before = full_snapshot()
    document = templated_document()
    hook = document["channels"][2]
    hook["kind"], hook["provider"], hook["provider_options"] = "email", "console", {}
    del hook["templates"]  # the stored webhook template is kept as it is, and cannot be an email
    path = write(tmp_path, document, "kind.yaml")

    with pytest.raises(CommandError) as raised:
        apply(path)

    prefix = "  channels[2].kind: template 30 does not suit kind email: An email template needs"
    assert str(raised.value).splitlines()[1:] == [
        f"{prefix} a subject.",
        f"{prefix} an HTML body or a text body.",
    ]
    assert full_snapshot() == before


def test_a_kind_change_that_the_kept_templates_suit_is_applied(tmp_path: Path) -> None:
    document = templated_document()
    document["channels"][2]["templates"][0].pop("deep_link")
    apply(write(tmp_path, document))
    document["channels"][2]["kind"] = "push"
    document["channels"][2]["provider"] = "console"
    document["channels"][2]["provider_options"] = {}
    document["channels"][2]["templates"][0]["payload"] = {"greeting": "Hello {{ FirstName }}"}
    document["channels"][2]["templates"][0]["subject"] = "Spring"
    apply(write(tmp_path, document, "push.yaml"))
    assert Channel.objects.get(optimove_channel_id=506).kind == "push"
