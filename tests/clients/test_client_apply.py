"""`client_apply` / `client_export`: files in, rows out, driven through the management commands."""

from __future__ import annotations

import datetime
import io
import json
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
from tests.clients.conftest import (
    ALL_SECRETS,
    API_KEY,
    SENDGRID_TOKEN,
    SMTP_PASSWORD,
    TWILIO_TOKEN,
    acme_document,
    changed_columns,
    snapshot,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("acme_env")]


def write(tmp_path: Path, document: Any, name: str = "acme.yaml") -> Path:
    path = tmp_path / name
    text = json.dumps(document) if name.endswith(".json") else yaml.safe_dump(document, sort_keys=False)
    path.write_text(text)
    return path


def apply(path: Path, *args: str) -> list[str]:
    out = io.StringIO()
    call_command("client_apply", str(path), *args, stdout=out)
    return out.getvalue().splitlines()


def channel(channel_id: int) -> Channel:
    return Channel.objects.get(client__slug="acme", optimove_channel_id=channel_id)


def test_apply_creates_the_client_and_its_channels_with_env_and_literal_secrets(tmp_path: Path) -> None:
    lines = apply(write(tmp_path, acme_document()))

    assert lines == [
        "client acme: created",
        '  name: "Acme Retail"',
        "  active: true",
        "  personal_data_retention_days: 30",
        '  optimove.base_url: "https://api5.optimove.net"',
        '  optimove.username: ""',
        "  optimove.api_key: set",
        'channel 504 "Email": created',
        '  name: "Email"',
        '  kind: "email"',
        '  provider: "smtp"',
        '  provider_options: {"from_email": "news@acme.test", "host": "smtp.example.com", "port": 587}',
        '  address_attribute: "Email"',
        "  rate_limit_per_second: 50",
        "  realtime: false",
        "  scheduled_event_type: 13",
        "  active: true",
        '  consent_sync: "preference"',
        '  consent_attribute: ""',
        "  provider_secrets.api_token: set",
        "  provider_secrets.password: set",
        'channel 505 "SMS": created',
        '  name: "SMS"',
        '  kind: "sms"',
        '  provider: "twilio"',
        '  provider_options: {"from_number": "+15005550006"}',
        '  address_attribute: "Mobile"',
        "  rate_limit_per_second: null",
        "  realtime: true",
        "  scheduled_event_type: 1",
        "  active: true",
        '  consent_sync: "preference"',
        '  consent_attribute: ""',
        "  provider_secrets.auth_token: set",
    ]
    client = Client.objects.get(slug="acme")
    assert (client.name, client.is_active, client.optimove_base_url) == (
        "Acme Retail",
        True,
        "https://api5.optimove.net",
    )
    assert (client.optimove_api_key, client.optimove_username, client.optimove_password) == (API_KEY, "", "")
    assert len(client.listener_token) >= 40
    email, sms = channel(504), channel(505)
    assert (email.name, email.kind, email.provider, email.address_attribute) == (
        "Email",
        "email",
        "smtp",
        "Email",
    )
    assert email.provider_options == {"host": "smtp.example.com", "port": 587, "from_email": "news@acme.test"}
    assert email.provider_secrets == {"password": SMTP_PASSWORD, "api_token": SENDGRID_TOKEN}
    assert (email.rate_limit_per_second, email.is_realtime, email.scheduled_event_type, email.is_active) == (
        50,
        False,
        13,
        True,
    )
    assert sms.provider_secrets == {"auth_token": TWILIO_TOKEN}
    assert (sms.rate_limit_per_second, sms.is_realtime, sms.scheduled_event_type) == (None, True, 1)
    # The report names secrets, never their values.
    assert not any(secret in line for line in lines for secret in ALL_SECRETS)


def test_a_json_file_and_a_file_without_extension_apply_the_same(tmp_path: Path) -> None:
    apply(write(tmp_path, acme_document(), "acme.json"))
    before = snapshot()
    plain = tmp_path / "acme-client"
    plain.write_text(yaml.safe_dump(acme_document()))  # neither JSON nor named .yaml: YAML after JSON

    assert apply(plain) == ["client acme: no changes"]
    assert snapshot() == before


def test_applying_the_same_file_again_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, acme_document())
    apply(path)
    before = snapshot()

    with CaptureQueriesContext(connection) as queries:
        lines = apply(path)

    assert lines == ["client acme: no changes"]
    assert snapshot() == before  # updated_at and every encrypted token unchanged
    writes = [q["sql"] for q in queries if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")]
    assert writes == []


def test_a_changed_value_changes_only_that_value_and_is_reported(tmp_path: Path) -> None:
    apply(write(tmp_path, acme_document()))
    before = snapshot()
    document = acme_document()
    document["name"] = "Acme Retail Group"
    document["channels"][1]["rate_limit_per_second"] = 20
    document["channels"][1]["provider_options"]["from_number"] = "+15005550007"

    lines = apply(write(tmp_path, document))

    assert lines == [
        "client acme: updated",
        '  name: "Acme Retail" -> "Acme Retail Group"',
        'channel 505 "SMS": updated',
        '  provider_options: {"from_number": "+15005550006"} -> {"from_number": "+15005550007"}',
        "  rate_limit_per_second: null -> 20",
    ]
    after = snapshot()
    # Channel 504 is untouched, to the byte; the client and channel 505 changed only where reported.
    assert after["clients_channel"][0] == before["clients_channel"][0]
    assert changed_columns(before["clients_client"][0], after["clients_client"][0]) == {"name", "updated_at"}
    assert changed_columns(before["clients_channel"][1], after["clients_channel"][1]) == {
        "provider_options",
        "rate_limit_per_second",
        "updated_at",
    }
    assert Client.objects.get().name == "Acme Retail Group"
    assert channel(505).rate_limit_per_second == 20


def test_a_secret_absent_from_the_file_keeps_its_value_and_null_clears_it(tmp_path: Path) -> None:
    apply(write(tmp_path, acme_document()))
    before = snapshot()
    document = acme_document()
    del document["optimove"]["api_key"]
    for item in document["channels"]:
        del item["provider_secrets"]

    assert apply(write(tmp_path, document)) == ["client acme: no changes"]
    assert snapshot() == before
    assert Client.objects.get().optimove_api_key == API_KEY
    assert channel(504).provider_secrets == {"password": SMTP_PASSWORD, "api_token": SENDGRID_TOKEN}

    document["optimove"]["api_key"] = "opt-live-rotated-0000"
    assert apply(write(tmp_path, document)) == ["client acme: updated", "  optimove.api_key: changed"]
    assert Client.objects.get().optimove_api_key == "opt-live-rotated-0000"

    document["optimove"] = {"base_url": "https://api5.optimove.net", "api_key": None}
    assert apply(write(tmp_path, document)) == [
        "client acme: updated",
        "  optimove.api_key: removed",
        "warning: client acme has no Optimove credentials: set optimove.api_key "
        "(or optimove.username and optimove.password)",
    ]
    assert Client.objects.get().optimove_api_key == ""


def test_provider_secrets_merge_per_key_and_null_removes_a_key(tmp_path: Path) -> None:
    apply(write(tmp_path, acme_document()))
    document = acme_document()
    document["channels"][0]["provider_secrets"] = {
        "password": "smtp-pw-new-value",
        "api_token": None,
        "dkim_key": "dkim-private-9f",
        "never_stored": None,
    }

    lines = apply(write(tmp_path, document))

    assert lines == [
        'channel 504 "Email": updated',
        "  provider_secrets.api_token: removed",
        "  provider_secrets.dkim_key: set",
        "  provider_secrets.password: changed",
    ]
    assert channel(504).provider_secrets == {"password": "smtp-pw-new-value", "dkim_key": "dkim-private-9f"}
    assert channel(505).provider_secrets == {"auth_token": TWILIO_TOKEN}

    document["channels"][0]["provider_secrets"] = {"dkim_key": "dkim-private-9f"}  # only one key listed
    assert apply(write(tmp_path, document)) == ["client acme: no changes"]
    assert channel(504).provider_secrets == {"password": "smtp-pw-new-value", "dkim_key": "dkim-private-9f"}


def test_a_channel_absent_from_the_file_is_kept_unless_pruned(tmp_path: Path) -> None:
    apply(write(tmp_path, acme_document()))
    document = acme_document()
    del document["channels"][1]
    path = write(tmp_path, document)
    before = snapshot()

    assert apply(path) == [
        "client acme: no changes",
        'channel 505 "SMS": not in the file, kept (--prune deletes it)',
    ]
    assert snapshot() == before

    assert apply(path, "--prune") == ['channel 505 "SMS": deleted']
    assert sorted(Channel.objects.values_list("optimove_channel_id", flat=True)) == [504]
    assert apply(path, "--prune") == ["client acme: no changes"]


def test_export_then_apply_of_the_export_changes_nothing(tmp_path: Path) -> None:
    apply(write(tmp_path, acme_document()))
    Client.objects.filter(slug="acme").update(optimove_username="legacy-user")
    before = snapshot()

    exported = services.client_export(client=Client.objects.get(slug="acme"))

    assert exported == {
        "slug": "acme",
        "name": "Acme Retail",
        "active": True,
        "personal_data_retention_days": 30,
        "optimove": {"base_url": "https://api5.optimove.net", "username": "legacy-user"},
        "channels": [
            {
                "channel_id": 504,
                "name": "Email",
                "kind": "email",
                "provider": "smtp",
                "provider_options": {"host": "smtp.example.com", "port": 587, "from_email": "news@acme.test"},
                "address_attribute": "Email",
                "rate_limit_per_second": 50,
                "realtime": False,
                "scheduled_event_type": 13,
                "active": True,
                "consent_sync": "preference",
                "consent_attribute": "",
                "templates": [],
            },
            {
                "channel_id": 505,
                "name": "SMS",
                "kind": "sms",
                "provider": "twilio",
                "provider_options": {"from_number": "+15005550006"},
                "address_attribute": "Mobile",
                "rate_limit_per_second": None,
                "realtime": True,
                "scheduled_event_type": 1,
                "active": True,
                "consent_sync": "preference",
                "consent_attribute": "",
                "templates": [],
            },
        ],
    }
    result = services.client_apply(document=exported)
    assert (result.changed, result.lines()) == (False, ["client acme: no changes"])
    assert snapshot() == before


def test_export_command_output_applied_by_the_apply_command_changes_nothing(tmp_path: Path) -> None:
    apply(write(tmp_path, acme_document()))
    before = snapshot()
    out = io.StringIO()

    call_command("client_export", "acme", stdout=out)

    text = out.getvalue()
    assert text.startswith("# Exported by `manage.py client_export` without secrets")
    listener_token = Client.objects.get().listener_token
    for secret in (*ALL_SECRETS, listener_token):
        assert secret not in text
    for key in ("api_key:", "password:", "provider_secrets:", "listener"):
        assert key not in text.split("\n", 3)[3]  # below the header comment
    exported = tmp_path / "exported.yaml"
    exported.write_text(text)
    assert apply(exported) == ["client acme: no changes"]
    assert snapshot() == before


def test_export_of_an_unknown_slug_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match=r"^no client with slug 'nobody'$"):
        call_command("client_export", "nobody", stdout=io.StringIO())


def test_dry_run_reports_the_changes_and_saves_nothing(tmp_path: Path) -> None:
    assert apply(write(tmp_path, acme_document()), "--dry-run")[-1] == "dry run: nothing was saved"
    assert Client.objects.count() == 0
    assert Channel.objects.count() == 0

    apply(write(tmp_path, acme_document()))
    before = snapshot()
    document = acme_document()
    document["active"] = False
    document["optimove"]["api_key"] = "opt-live-dry-run-1111"
    del document["channels"][0]

    lines = apply(write(tmp_path, document), "--dry-run", "--prune")

    assert lines == [
        "client acme: updated",
        "  active: true -> false",
        "  optimove.api_key: changed",
        'channel 504 "Email": deleted',
        "dry run: nothing was saved",
    ]
    assert snapshot() == before


def _set_channel(index: int, key: str, value: Any) -> Any:
    return lambda d: d["channels"][index].__setitem__(key, value)


def test_consent_sync_and_retention_are_applied_and_exported(tmp_path: Path) -> None:
    document = acme_document()
    document["personal_data_retention_days"] = 90
    document["channels"][0].update(consent_sync="attribute", consent_attribute="EmailOptIn")
    document["channels"][1]["consent_sync"] = "off"
    apply(write(tmp_path, document))

    assert Client.objects.get().personal_data_retention_days == 90
    assert (channel(504).consent_sync, channel(504).consent_attribute) == ("attribute", "EmailOptIn")
    assert (channel(505).consent_sync, channel(505).consent_attribute) == ("off", "")
    exported = services.client_export(client=Client.objects.get())
    assert exported["personal_data_retention_days"] == 90
    assert [(c["consent_sync"], c["consent_attribute"]) for c in exported["channels"]] == [
        ("attribute", "EmailOptIn"),
        ("off", ""),
    ]


BAD_DOCUMENTS = [
    pytest.param(
        lambda d: d["channels"][0].__setitem__("consent_sync", "attribute"),
        ["channels[0].consent_attribute: required when consent_sync is attribute"],
        id="attribute consent sync without an attribute",
    ),
    pytest.param(
        lambda d: d["channels"][0].update(consent_sync="attribute", consent_attribute="Opt-In"),
        ["channels[0].consent_attribute: 'Opt-In' may hold letters, digits and _ only"],
        id="consent attribute with a dash",
    ),
    pytest.param(
        lambda d: d.__setitem__("personal_data_retention_days", 0),
        ["personal_data_retention_days: 0 is out of range (1 to 2147483647)"],
        id="retention of zero days",
    ),
    pytest.param(
        lambda d: d.__setitem__("colour", "red"),
        [
            "colour: unknown key (expected one of slug, name, optimove, active, "
            "personal_data_retention_days, channels)"
        ],
        id="unknown top-level key",
    ),
    pytest.param(
        _set_channel(1, "sender", "Acme"),
        [
            "channels[1].sender: unknown key (expected one of channel_id, name, kind, provider, "
            "provider_options, provider_secrets, address_attribute, rate_limit_per_second, realtime, "
            "scheduled_event_type, active, consent_sync, consent_attribute, templates, apps)"
        ],
        id="unknown channel key",
    ),
    pytest.param(
        lambda d: d["optimove"].__setitem__("apikey", "x"),
        ["optimove.apikey: unknown key (expected one of base_url, api_key, username, password)"],
        id="unknown optimove key",
    ),
    pytest.param(
        lambda d: d.__setitem__("active", "yes"),
        ["active: expected true or false, got a string"],
        id="wrong type bool",
    ),
    pytest.param(
        _set_channel(0, "rate_limit_per_second", "fast"),
        ["channels[0].rate_limit_per_second: expected an integer, got a string"],
        id="wrong type int",
    ),
    pytest.param(
        _set_channel(0, "rate_limit_per_second", 0),
        ["channels[0].rate_limit_per_second: 0 is out of range (1 to 2147483647)"],
        id="rate limit zero",
    ),
    pytest.param(
        _set_channel(0, "channel_id", True),
        ["channels[0].channel_id: expected an integer, got a boolean"],
        id="channel id boolean",
    ),
    pytest.param(
        lambda d: d.__setitem__("channels", {"504": {}}),
        ["channels: expected a list, got a mapping"],
        id="channels not a list",
    ),
    pytest.param(
        lambda d: d.__setitem__("channels", None),
        ["channels: expected a list, got null"],
        id="channels left empty",
    ),
    pytest.param(
        _set_channel(0, "provider_options", {"since": datetime.date(2024, 5, 1)}),
        ["channels[0].provider_options.since: date is not a JSON value (quote it)"],
        id="yaml date in options",
    ),
    pytest.param(lambda d: d.__delitem__("name"), ["name: required"], id="missing name"),
    pytest.param(
        lambda d: d["channels"][0].__delitem__("kind"),
        ["channels[0].kind: required"],
        id="missing channel kind",
    ),
    pytest.param(
        lambda d: d["optimove"].__delitem__("base_url"),
        ["optimove.base_url: required"],
        id="missing base url",
    ),
    pytest.param(
        _set_channel(1, "kind", "fax"),
        ["channels[1].kind: 'fax' is not one of email, sms, push, webhook, console"],
        id="bad kind",
    ),
    pytest.param(
        _set_channel(1, "scheduled_event_type", 11),
        ["channels[1].scheduled_event_type: 11 is not one of 13, 1"],
        id="bad event type",
    ),
    pytest.param(
        lambda d: d["optimove"].__setitem__("base_url", "ftp://api5.optimove.net"),
        ["optimove.base_url: 'ftp://api5.optimove.net' is not an http(s) URL"],
        id="bad url",
    ),
    pytest.param(
        _set_channel(1, "channel_id", 504),
        ["channels[1].channel_id: 504 is already used by channels[0]"],
        id="duplicate channel id",
    ),
    pytest.param(
        lambda d: d["optimove"].__setitem__("api_key", "env:ACME_NOT_SET_KEY"),
        ["optimove.api_key: environment variable ACME_NOT_SET_KEY is not set"],
        id="env not set",
    ),
    pytest.param(
        _set_channel(0, "provider_secrets", {"password": "env:ACME_NOT_SET_PW"}),
        ["channels[0].provider_secrets.password: environment variable ACME_NOT_SET_PW is not set"],
        id="provider secret env not set",
    ),
    pytest.param(
        _set_channel(0, "provider_secrets", {"password": 12345678}),
        ["channels[0].provider_secrets.password: expected a string or env:NAME, got an integer"],
        id="provider secret not a string",
    ),
    pytest.param(
        lambda d: d.__setitem__("slug", "acme retail"),
        ["slug: 'acme retail' is not a slug (letters, digits, - and _ only)"],
        id="bad slug",
    ),
    pytest.param(
        lambda d: d["optimove"].update(username="u", password="literal-pw-3"),
        ["optimove: give api_key or username and password, not both"],
        id="api key and password",
    ),
    pytest.param(
        lambda d: d["optimove"].update(api_key=None, password="literal-pw-3"),
        ["optimove.username: required when optimove.password is given"],
        id="password without username",
    ),
    pytest.param(
        lambda d: (d.__setitem__("slug", "acme!"), d["channels"][1].__setitem__("kind", "fax")),
        [
            "slug: 'acme!' is not a slug (letters, digits, - and _ only)",
            "channels[1].kind: 'fax' is not one of email, sms, push, webhook, console",
        ],
        id="every problem at once",
    ),
]


@pytest.mark.parametrize(("change", "errors"), BAD_DOCUMENTS)
def test_a_bad_file_names_the_field_and_changes_nothing(
    tmp_path: Path, change: Any, errors: list[str]
) -> None:
    apply(write(tmp_path, acme_document()))
    before = snapshot()
    document = acme_document()
    document["name"] = "Renamed By A Bad File"  # a valid change that must not be applied either
    document["channels"][0]["provider_secrets"]["api_token"] = "SG.would-be-new-token"
    change(document)
    path = write(tmp_path, document, "bad.yaml")

    with pytest.raises(CommandError) as raised:
        apply(path)

    assert str(raised.value) == f"{path}: nothing was applied:\n" + "\n".join(f"  {e}" for e in errors)
    for secret in (*ALL_SECRETS, "SG.would-be-new-token", "literal-pw-3"):
        assert secret not in str(raised.value)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "bad.yaml",
            "slug: acme\nname: [Acme\noptimove: {}\n",
            "(file): not valid YAML: expected ',' or ']', but got ':' (line 3, column 9)",
        ),
        (
            "bad.json",
            '{"slug": "acme", "name": }',
            "(file): not valid JSON: Expecting value (line 1, column 26)",
        ),
        ("bad.yaml", "- slug: acme\n", "(top level): expected a mapping of keys, got a list"),
        ("bad.yaml", "", "(top level): expected a mapping of keys, got null"),
    ],
)
def test_a_file_that_does_not_parse_is_rejected_and_changes_nothing(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    apply(write(tmp_path, acme_document()))
    before = snapshot()
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(CommandError) as raised:
        apply(path)

    assert str(raised.value) == f"{path}: nothing was applied:\n  {message}"
    assert snapshot() == before


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        CommandError, match=r"nothing-here.yaml: cannot read the file: No such file or directory"
    ):
        apply(tmp_path / "nothing-here.yaml")


def test_stdin_is_read_when_the_file_is_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(acme_document())))

    lines = apply(Path("-"), "--dry-run")

    assert (lines[0], lines[-1]) == ("client acme: created", "dry run: nothing was saved")
    assert Client.objects.count() == 0
