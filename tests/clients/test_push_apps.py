"""Push apps: the services (and what they record for Optimove), `apps:` in client files (apply, prune,
export, bad input), the admin inline on a push channel's page, channel deletes and moves taking the
apps along, and the apps reaching the sandbox."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.test import Client as HttpClient

from apps.clients import services
from apps.clients.models import Channel, ChannelKind, Client, PushApp
from apps.clients.push_apps import push_app_delete, push_app_upsert
from apps.message_templates.models import OptimoveOutbox
from apps.message_templates.tasks import optimove_sync
from tests.clients.conftest import acme_document, channel_form_data, client_form_data
from tests.clients.test_client_apply import apply, write
from tests.message_templates.sync_support import Optimove, optimove_fixture, outbox, sandbox_server

__all__ = ["optimove_fixture", "sandbox_server"]  # fixtures

pytestmark = pytest.mark.django_db

PUSH_ENTRY: dict[str, Any] = {
    "channel_id": 506,
    "name": "Push",
    "kind": "push",
    "provider": "fcm",
    "apps": [
        {"app_id": "com.acme.ios", "name": "Acme iOS"},
        {"app_id": "com.acme.android", "name": "Acme Android", "active": True},
        {"app_id": "com.acme.beta", "name": "Acme Beta", "active": False},
    ],
}


def pushed_document() -> dict[str, Any]:
    document = acme_document()
    document["channels"].append(PUSH_ENTRY | {"apps": [dict(app) for app in PUSH_ENTRY["apps"]]})
    return document


def apps_of(channel_id: int = 506) -> dict[str, tuple[str, bool]]:
    return {
        app.app_id: (app.name, app.is_active)
        for app in PushApp.objects.filter(channel__optimove_channel_id=channel_id)
    }


def push_channel(client: Client, channel_id: int = 506) -> Channel:
    return Channel.objects.create(
        client=client, name="Push", kind=ChannelKind.PUSH, optimove_channel_id=channel_id, provider="fcm"
    )


@pytest.fixture
def acme(db: None) -> Client:
    return Client.objects.create(slug="acme", name="Acme", optimove_base_url="https://api5.optimove.net")


# --- services --------------------------------------------------------------------------------------


def test_each_app_change_records_what_optimove_must_hear(acme: Client) -> None:
    push = push_channel(acme)

    ios, created = push_app_upsert(channel=push, app_id="com.acme.ios", name="Acme iOS")
    _, created_again = push_app_upsert(channel=push, app_id="com.acme.ios", name="Acme iOS")  # no change
    push_app_upsert(channel=push, app_id="com.acme.ios", name="Acme for iOS")
    push_app_upsert(channel=push, app_id="com.acme.ios", name="Acme for iOS", is_active=False)
    push_app_upsert(channel=push, app_id="com.acme.ios", name="Acme for iOS", is_active=True)
    beta, _ = push_app_upsert(channel=push, app_id="com.acme.beta", name="Beta", is_active=False)
    push_app_delete(app=beta)
    push_app_delete(app=ios)

    assert (created, created_again) == (True, False)
    assert outbox() == [
        (506, "app", "add", "com.acme.ios", "Acme iOS", "pending"),
        (506, "app", "add", "com.acme.ios", "Acme for iOS", "pending"),
        (506, "app", "delete", "com.acme.ios", "", "pending"),
        (506, "app", "add", "com.acme.ios", "Acme for iOS", "pending"),
        (506, "app", "delete", "com.acme.ios", "", "pending"),
    ]
    assert PushApp.objects.count() == 0


@pytest.mark.parametrize(
    ("kind", "app_id", "name", "errors"),
    [
        (
            "email",
            "com.acme.ios",
            "Acme iOS",
            {"channel": ["Channel “Push” is a Email channel; only push channels have apps."]},
        ),
        (
            "push",
            " com.acme.ios",
            "Acme iOS",
            {"app_id": ["The AppID must not start or end with spaces or hold control characters."]},
        ),
        ("push", "", "Acme iOS", {"app_id": ["This field cannot be blank."]}),
        ("push", "com.acme.ios", "  ", {"name": ["A name is required: Optimove shows it to marketers."]}),
        (
            "push",
            "a" * 201,
            "Acme",
            {"app_id": ["Ensure this value has at most 200 characters (it has 201)."]},
        ),
    ],
)
def test_a_bad_app_is_refused_naming_the_problem_and_nothing_is_saved(
    acme: Client, kind: str, app_id: str, name: str, errors: dict[str, list[str]]
) -> None:
    channel = Channel.objects.create(
        client=acme, name="Push", kind=kind, optimove_channel_id=506, provider="console"
    )

    with pytest.raises(ValidationError) as raised:
        push_app_upsert(channel=channel, app_id=app_id, name=name)

    assert raised.value.message_dict == errors
    assert PushApp.objects.count() == 0
    assert outbox() == []


# --- client files ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("acme_env")
def test_apply_creates_updates_and_prunes_a_push_channels_apps(tmp_path: Path) -> None:
    lines = apply(write(tmp_path, pushed_document()))

    assert lines[-9:] == [
        'channel 506 app "com.acme.ios" "Acme iOS": created',
        '  name: "Acme iOS"',
        "  active: true",
        'channel 506 app "com.acme.android" "Acme Android": created',
        '  name: "Acme Android"',
        "  active: true",
        'channel 506 app "com.acme.beta" "Acme Beta": created',
        '  name: "Acme Beta"',
        "  active: false",
    ]
    assert apps_of() == {
        "com.acme.ios": ("Acme iOS", True),
        "com.acme.android": ("Acme Android", True),
        "com.acme.beta": ("Acme Beta", False),
    }
    assert outbox() == [
        (506, "app", "add", "com.acme.ios", "Acme iOS", "pending"),
        (506, "app", "add", "com.acme.android", "Acme Android", "pending"),
    ]
    assert apply(write(tmp_path, pushed_document())) == ["client acme: no changes"]

    document = pushed_document()
    document["channels"][2]["apps"] = [
        {"app_id": "com.acme.ios", "name": "Acme for iOS"},
        {"app_id": "com.acme.beta", "name": "Acme Beta", "active": True},
    ]
    path = write(tmp_path, document)
    assert apply(path) == [
        'channel 506 app "com.acme.ios" "Acme iOS": updated',
        '  name: "Acme iOS" -> "Acme for iOS"',
        'channel 506 app "com.acme.beta" "Acme Beta": updated',
        "  active: false -> true",
        'channel 506 app "com.acme.android" "Acme Android": not in the file, kept (--prune deletes it)',
    ]
    assert apply(path, "--prune") == ['channel 506 app "com.acme.android" "Acme Android": deleted']
    assert apps_of() == {"com.acme.ios": ("Acme for iOS", True), "com.acme.beta": ("Acme Beta", True)}
    assert outbox()[2:] == [
        (506, "app", "add", "com.acme.ios", "Acme for iOS", "pending"),
        (506, "app", "add", "com.acme.beta", "Acme Beta", "pending"),
        (506, "app", "delete", "com.acme.android", "", "pending"),
    ]


@pytest.mark.usefixtures("acme_env")
def test_a_push_channel_entry_without_apps_leaves_them_alone_and_pruning_the_channel_deletes_them(
    tmp_path: Path,
) -> None:
    apply(write(tmp_path, pushed_document()))
    document = pushed_document()
    del document["channels"][2]["apps"]
    assert apply(write(tmp_path, document), "--prune") == ["client acme: no changes"]
    assert len(apps_of()) == 3

    document = pushed_document()
    del document["channels"][2]
    assert apply(write(tmp_path, document), "--prune") == [
        'channel 506 "Push": deleted',
        'channel 506 app "com.acme.android" "Acme Android": deleted',
        'channel 506 app "com.acme.beta" "Acme Beta": deleted',
        'channel 506 app "com.acme.ios" "Acme iOS": deleted',
    ]
    assert PushApp.objects.count() == 0
    # Only the listed (active) apps had anything to delete in Optimove.
    assert outbox()[2:] == [
        (506, "app", "delete", "com.acme.android", "", "pending"),
        (506, "app", "delete", "com.acme.ios", "", "pending"),
    ]


@pytest.mark.usefixtures("acme_env")
def test_export_lists_a_push_channels_apps_and_applying_it_changes_nothing(tmp_path: Path) -> None:
    apply(write(tmp_path, pushed_document()))

    exported = services.client_export(client=Client.objects.get(slug="acme"))

    assert "apps" not in exported["channels"][0]  # email and SMS channels have none
    assert "apps" not in exported["channels"][1]
    assert exported["channels"][2]["apps"] == [
        {"app_id": "com.acme.android", "name": "Acme Android", "active": True},
        {"app_id": "com.acme.beta", "name": "Acme Beta", "active": False},
        {"app_id": "com.acme.ios", "name": "Acme iOS", "active": True},
    ]
    rows = OptimoveOutbox.objects.count()
    result = services.client_apply(document=exported, prune=True)
    assert (result.changed, result.lines()) == (False, ["client acme: no changes"])
    assert OptimoveOutbox.objects.count() == rows


def _set_apps(value: Any, channel: int = 2) -> Any:
    def change(document: dict[str, Any]) -> None:
        document["channels"][channel]["apps"] = value

    return change


@pytest.mark.usefixtures("acme_env")
@pytest.mark.parametrize(
    ("change", "errors"),
    [
        pytest.param(
            _set_apps([{"app_id": "com.acme.sms", "name": "SMS app"}], channel=1),
            ["channels[1].apps: only push channels have apps (this channel's kind is sms)"],
            id="apps on an SMS channel",
        ),
        pytest.param(
            _set_apps([{"app_id": "a", "name": "A"}, {"app_id": "a", "name": "Again"}]),
            ["channels[2].apps[1].app_id: 'a' is already used by channels[2].apps[0]"],
            id="an AppID twice",
        ),
        pytest.param(
            _set_apps([{"app_id": " a", "name": "A", "colour": "red"}, {"name": 5}]),
            [
                "channels[2].apps[0].colour: unknown key (expected one of app_id, name, active)",
                "channels[2].apps[0].app_id: ' a' must not start or end with spaces or hold control "
                "characters",
                "channels[2].apps[1].app_id: required",
                "channels[2].apps[1].name: expected a string, got an integer",
            ],
            id="bad app entries",
        ),
        pytest.param(_set_apps(None), ["channels[2].apps: expected a list, got null"], id="empty apps key"),
        pytest.param(
            _set_apps([{"app_id": "a", "name": "A", "active": "yes"}]),
            ["channels[2].apps[0].active: expected true or false, got a string"],
            id="active not a boolean",
        ),
    ],
)
def test_a_bad_apps_list_names_its_path_and_changes_nothing(
    tmp_path: Path, change: Any, errors: list[str]
) -> None:
    apply(write(tmp_path, pushed_document()))
    before = (apps_of(), outbox())
    document = pushed_document()
    document["name"] = "Renamed By A Bad File"
    document["channels"][2]["apps"][0]["name"] = "Renamed app"
    change(document)
    path = write(tmp_path, document, "bad.yaml")

    with pytest.raises(CommandError) as raised:
        apply(path)

    assert str(raised.value) == f"{path}: nothing was applied:\n" + "\n".join(f"  {e}" for e in errors)
    assert (apps_of(), outbox()) == before
    assert Client.objects.get(slug="acme").name == "Acme Retail"


# --- admin -----------------------------------------------------------------------------------------


@pytest.fixture
def root(client: HttpClient) -> HttpClient:
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def change_url(obj: Any) -> str:
    return f"/admin/clients/{obj._meta.model_name}/{obj.pk}/change/"


def inline_data(channel: Channel, rows: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """The channel form plus its push-app inline; each row: app_id, name, is_active, id, DELETE."""
    existing = [row for row in rows if row.get("id")]
    data = channel_form_data(channel)
    data.update(
        {
            "push_apps-TOTAL_FORMS": str(len(rows)),
            "push_apps-INITIAL_FORMS": str(len(existing)),
            "push_apps-MIN_NUM_FORMS": "0",
            "push_apps-MAX_NUM_FORMS": "1000",
        }
    )
    for index, row in enumerate(rows):
        data[f"push_apps-{index}-channel"] = str(channel.pk)
        data[f"push_apps-{index}-id"] = str(row.get("id", ""))
        data[f"push_apps-{index}-app_id"] = row["app_id"]
        data[f"push_apps-{index}-name"] = row["name"]
        if row.get("is_active", True):
            data[f"push_apps-{index}-is_active"] = "on"
        if row.get("DELETE"):
            data[f"push_apps-{index}-DELETE"] = "on"
    data.update(overrides)
    return data


def test_a_push_channels_page_edits_its_apps_through_the_services(root: HttpClient, acme: Client) -> None:
    push = push_channel(acme)
    email = Channel.objects.create(
        client=acme, name="Email", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="console"
    )
    assert "push_apps-TOTAL_FORMS" in root.get(change_url(push)).content.decode()
    assert "push_apps-TOTAL_FORMS" not in root.get(change_url(email)).content.decode()

    added = root.post(
        change_url(push),
        inline_data(push, [{"app_id": "com.acme.ios", "name": "Acme iOS"}, {"app_id": "old", "name": "Old"}]),
    )
    ios, old = PushApp.objects.get(app_id="com.acme.ios"), PushApp.objects.get(app_id="old")
    changed = root.post(
        change_url(push),
        inline_data(
            push,
            [
                {"id": ios.pk, "app_id": "com.acme.ios2", "name": "Acme iOS"},  # a new AppID
                {"id": old.pk, "app_id": "old", "name": "Old", "DELETE": True},
            ],
        ),
    )

    assert (added.status_code, changed.status_code) == (302, 302)
    assert apps_of() == {"com.acme.ios2": ("Acme iOS", True)}
    assert outbox() == [
        (506, "app", "add", "com.acme.ios", "Acme iOS", "pending"),
        (506, "app", "add", "old", "Old", "pending"),
        (506, "app", "delete", "com.acme.ios", "", "pending"),
        (506, "app", "add", "com.acme.ios2", "Acme iOS", "pending"),
        (506, "app", "delete", "old", "", "pending"),
    ]
    page = root.get(change_url(push)).content.decode()
    assert re.search(r'<td class="field-optimove_sync">\s*<p>pending</p>', page)


def test_a_bad_apps_inline_is_refused_and_changes_nothing(root: HttpClient, acme: Client) -> None:
    push = push_channel(acme)

    response = root.post(
        change_url(push), inline_data(push, [{"app_id": "x", "name": "X"}, {"app_id": "x", "name": "Again"}])
    )

    assert response.status_code == 200
    assert response.context["inline_admin_formsets"][0].formset.non_form_errors() == [
        "Please correct the duplicate data for app_id."
    ]
    assert PushApp.objects.count() == 0
    assert outbox() == []


def test_deleting_a_channel_in_the_admin_deletes_its_apps_and_templates_in_optimove(
    root: HttpClient, acme: Client
) -> None:
    from apps.message_templates.services import template_upsert

    push = push_channel(acme)
    push_app_upsert(channel=push, app_id="com.acme.ios", name="Acme iOS")
    template_upsert(channel=push, template_id=7, name="Push seven", text_body="Hi")
    other = push_channel(acme, channel_id=507)
    push_app_upsert(channel=other, app_id="com.acme.web", name="Acme Web")
    OptimoveOutbox.objects.all().delete()

    single = root.post(f"/admin/clients/channel/{push.pk}/delete/", {"post": "yes"})
    bulk = root.post(
        "/admin/clients/channel/",
        {"action": "delete_selected", "_selected_action": [other.pk], "post": "yes"},
    )

    assert (single.status_code, bulk.status_code) == (302, 302)
    assert not Channel.objects.exists()
    assert outbox() == [
        (506, "template", "delete", "7", "", "pending"),
        (506, "app", "delete", "com.acme.ios", "", "pending"),
        (507, "app", "delete", "com.acme.web", "", "pending"),
    ]


@pytest.mark.usefixtures("acme_env")
def test_a_new_channel_id_in_the_admin_moves_the_apps_to_the_new_list(
    root: HttpClient, tmp_path: Path
) -> None:
    apply(write(tmp_path, pushed_document()))
    push = Channel.objects.get(optimove_channel_id=506)
    OptimoveOutbox.objects.all().delete()

    response = root.post(
        change_url(push),
        inline_data(
            push,
            [
                {"id": app.pk, "app_id": app.app_id, "name": app.name, "is_active": app.is_active}
                for app in PushApp.objects.order_by("pk")
            ],
            optimove_channel_id="516",
        ),
    )

    assert response.status_code == 302
    assert outbox() == [
        (506, "app", "delete", "com.acme.android", "", "pending"),
        (516, "app", "add", "com.acme.android", "Acme Android", "pending"),
        (506, "app", "delete", "com.acme.ios", "", "pending"),
        (516, "app", "add", "com.acme.ios", "Acme iOS", "pending"),
    ]


@pytest.mark.usefixtures("acme_env")
def test_the_client_pages_channel_rows_delete_and_move_through_the_services(
    root: HttpClient, tmp_path: Path
) -> None:
    apply(write(tmp_path, pushed_document()))
    client = Client.objects.get(slug="acme")
    OptimoveOutbox.objects.all().delete()
    data = client_form_data(client)
    index = {c.optimove_channel_id: i for i, c in enumerate(client.channels.order_by("pk"))}
    data[f"channels-{index[506]}-DELETE"] = "on"
    data[f"channels-{index[505]}-optimove_channel_id"] = "515"
    from apps.message_templates.services import template_upsert

    template_upsert(
        channel=Channel.objects.get(optimove_channel_id=505), template_id=3, name="SMS three", text_body="Hi"
    )
    OptimoveOutbox.objects.all().delete()

    response = root.post(change_url(client), data)

    assert response.status_code == 302
    assert sorted(client.channels.values_list("optimove_channel_id", flat=True)) == [504, 515]
    assert outbox() == [
        (505, "template", "delete", "3", "", "pending"),
        (515, "template", "add", "3", "SMS three", "pending"),
        (506, "app", "delete", "com.acme.android", "", "pending"),
        (506, "app", "delete", "com.acme.ios", "", "pending"),
    ]


# --- the sandbox -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_apps_from_a_client_file_reach_the_sandbox(
    optimove: Optimove, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "smtp-pw")
    document = pushed_document()
    document["optimove"] = {"base_url": optimove.base_url, "api_key": optimove.account.api_key}
    document["channels"][2]["apps"].append({"app_id": "com.acme.watch", "name": "Acme Watch"})
    services.client_apply(document=document)
    optimove_sync(optimove.client.pk)
    assert optimove.apps() == {
        "com.acme.ios": "Acme iOS",
        "com.acme.android": "Acme Android",
        "com.acme.watch": "Acme Watch",
    }

    document["channels"][2]["apps"] = [{"app_id": "com.acme.ios", "name": "Acme for iOS"}]
    services.client_apply(document=document, prune=True)
    optimove_sync(optimove.client.pk)

    assert optimove.apps() == {"com.acme.ios": "Acme for iOS"}
    assert optimove.calls("AddChannelApps") == [200, 200]
    assert optimove.calls("DeleteChannelApps") == [200]
