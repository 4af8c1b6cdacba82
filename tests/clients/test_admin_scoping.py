"""A staff user limited to some clients sees and touches only those, through real admin requests."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.test import Client as HttpClient
from django.test import RequestFactory

from apps.clients.models import Channel, Client
from tests.clients.conftest import channel_form_data, client_form_data, snapshot

pytestmark = pytest.mark.django_db

ALL_CLIENT_PERMISSIONS = [
    f"{action}_{model}" for action in ("view", "add", "change", "delete") for model in ("client", "channel")
]


@pytest.fixture
def world() -> dict[str, Any]:
    x = Client.objects.create(slug="x-corp", name="X Corp", optimove_base_url="https://api5.optimove.net")
    y = Client.objects.create(slug="y-corp", name="Y Corp", optimove_base_url="https://api5.optimove.net")
    x_email = Channel.objects.create(
        client=x, name="X mail", kind="email", optimove_channel_id=504, provider="smtp"
    )
    y_email = Channel.objects.create(
        client=y, name="Y mail", kind="email", optimove_channel_id=504, provider="smtp"
    )
    y_sms = Channel.objects.create(
        client=y, name="Y texts", kind="sms", optimove_channel_id=505, provider="twilio"
    )
    staff = User.objects.create_user("x-ops", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=ALL_CLIENT_PERMISSIONS))
    x.admins.add(staff)
    return {"x": x, "y": y, "x_email": x_email, "y_email": y_email, "y_sms": y_sms, "staff": staff}


@pytest.fixture
def staff_client(client: HttpClient, world: dict[str, Any]) -> HttpClient:
    client.force_login(world["staff"])
    return client


def test_a_limited_staff_user_sees_only_their_clients_and_channels(
    staff_client: HttpClient, world: dict[str, Any]
) -> None:
    clients = staff_client.get("/admin/clients/client/")
    channels = staff_client.get("/admin/clients/channel/")

    assert list(clients.context["cl"].result_list) == [world["x"]]
    assert list(channels.context["cl"].result_list) == [world["x_email"]]
    for response in (clients, channels):
        content = response.content.decode()
        assert "y-corp" not in content  # not even in the filter sidebar
        assert "Y Corp" not in content
    x_page = staff_client.get(f"/admin/clients/client/{world['x'].pk}/change/").content.decode()
    assert "X mail" in x_page  # the inline lists X's channels
    assert "Y mail" not in x_page


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/admin/clients/client/{y.pk}/change/", 302),
        ("/admin/clients/client/{y.pk}/delete/", 403),  # deleting any client is for superusers only
        ("/admin/clients/client/{y.pk}/history/", 302),
        ("/admin/clients/channel/{y_email.pk}/change/", 302),
        ("/admin/clients/channel/{y_email.pk}/delete/", 302),
        ("/admin/clients/channel/{y_email.pk}/history/", 302),
    ],
)
def test_another_clients_pages_answer_as_if_missing(
    staff_client: HttpClient, world: dict[str, Any], url: str, status: int
) -> None:
    response = staff_client.get(url.format(**world))

    assert response.status_code == status
    if status == 302:  # what the admin answers for a missing object
        assert response["Location"] == "/admin/"


def test_forged_posts_to_another_clients_objects_change_nothing(
    staff_client: HttpClient, world: dict[str, Any]
) -> None:
    before = snapshot()
    y, y_email = world["y"], world["y_email"]

    responses = [
        staff_client.post(f"/admin/clients/client/{y.pk}/change/", client_form_data(y, name="Owned")),
        staff_client.post(
            f"/admin/clients/channel/{y_email.pk}/change/", channel_form_data(y_email, name="Owned")
        ),
        staff_client.post(f"/admin/clients/channel/{y_email.pk}/delete/", {"post": "yes"}),
        staff_client.post(f"/admin/clients/client/{y.pk}/delete/", {"post": "yes"}),
        staff_client.post(
            "/admin/clients/channel/",
            {"action": "delete_selected", "_selected_action": [str(y_email.pk)], "post": "yes"},
        ),
    ]

    assert [r.status_code for r in responses[:4]] == [302, 302, 302, 403]
    assert snapshot() == before


def test_a_staff_user_cannot_create_a_channel_for_another_client(
    staff_client: HttpClient, world: dict[str, Any]
) -> None:
    form = staff_client.get("/admin/clients/channel/add/").context["adminform"].form
    assert list(form.fields["client"].queryset) == [world["x"]]

    forged = channel_form_data(Channel(client=world["y"], name="Sneaky", kind="sms", optimove_channel_id=777))
    response = staff_client.post("/admin/clients/channel/add/", forged)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["client"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    assert not Channel.objects.filter(optimove_channel_id=777).exists()

    allowed = channel_form_data(
        Channel(client=world["x"], name="X texts", kind="sms", optimove_channel_id=777)
    )
    assert (
        staff_client.post("/admin/clients/channel/add/", {**allowed, "provider": "twilio"}).status_code == 302
    )
    assert Channel.objects.get(optimove_channel_id=777).client == world["x"]


def test_a_staff_user_cannot_move_their_channel_to_another_client(
    staff_client: HttpClient, world: dict[str, Any]
) -> None:
    x_email = world["x_email"]

    response = staff_client.post(
        f"/admin/clients/channel/{x_email.pk}/change/",
        channel_form_data(x_email, client=str(world["y"].pk), optimove_channel_id="999"),
    )

    assert response.status_code == 200
    x_email.refresh_from_db()
    assert (x_email.client_id, x_email.optimove_channel_id) == (world["x"].pk, 504)


def test_only_superusers_add_clients_delete_them_or_edit_their_admins(
    staff_client: HttpClient, world: dict[str, Any]
) -> None:
    x = world["x"]
    other = User.objects.create_user("y-ops", password="pw", is_staff=True)

    assert staff_client.get("/admin/clients/client/add/").status_code == 403
    add = staff_client.post(
        "/admin/clients/client/add/",
        {"slug": "z-corp", "name": "Z", "optimove_base_url": "https://api5.optimove.net", "is_active": "on"},
    )
    assert add.status_code == 403
    assert not Client.objects.filter(slug="z-corp").exists()
    assert staff_client.get(f"/admin/clients/client/{x.pk}/delete/").status_code == 403

    page = staff_client.get(f"/admin/clients/client/{x.pk}/change/")
    assert "admins" not in page.context["adminform"].form.fields
    response = staff_client.post(
        f"/admin/clients/client/{x.pk}/change/", client_form_data(x, name="X Corp 2", admins=[str(other.pk)])
    )
    assert response.status_code == 302
    x.refresh_from_db()
    assert x.name == "X Corp 2"
    assert list(x.admins.all()) == [world["staff"]]


def test_model_permissions_still_apply(client: HttpClient, world: dict[str, Any]) -> None:
    viewer = User.objects.create_user("x-viewer", password="pw", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_client"))
    world["x"].admins.add(viewer)
    client.force_login(viewer)

    assert client.get("/admin/clients/channel/").status_code == 403
    assert client.get("/admin/clients/client/").status_code == 200
    x = world["x"]
    response = client.post(f"/admin/clients/client/{x.pk}/change/", client_form_data(x, name="Renamed"))
    assert response.status_code == 403
    x.refresh_from_db()
    assert x.name == "X Corp"


def test_a_staff_user_in_no_client_sees_nothing(client: HttpClient, world: dict[str, Any]) -> None:
    loner = User.objects.create_user("loner", password="pw", is_staff=True)
    loner.user_permissions.set(Permission.objects.filter(codename__in=ALL_CLIENT_PERMISSIONS))
    client.force_login(loner)

    assert list(client.get("/admin/clients/client/").context["cl"].result_list) == []
    assert list(client.get("/admin/clients/channel/").context["cl"].result_list) == []


def test_a_superuser_sees_every_client_and_channel(client: HttpClient, world: dict[str, Any]) -> None:
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))

    clients = client.get("/admin/clients/client/").context["cl"].result_list
    channels = client.get("/admin/clients/channel/").context["cl"].result_list

    assert list(clients) == [world["x"], world["y"]]
    assert sorted(c.pk for c in channels) == sorted(world[k].pk for k in ("x_email", "y_email", "y_sms"))
    assert client.get(f"/admin/clients/channel/{world['y_email'].pk}/change/").status_code == 200


def test_the_mixin_checks_each_object_and_each_save(rf: RequestFactory, world: dict[str, Any]) -> None:
    """What later apps rely on when they reuse ClientScopedAdminMixin, object by object."""
    request = rf.get("/admin/")
    request.user = world["staff"]
    channel_admin = admin.site._registry[Channel]
    client_admin = admin.site._registry[Client]

    for check in ("has_view_permission", "has_change_permission", "has_delete_permission"):
        assert getattr(channel_admin, check)(request, world["x_email"]) is True, check
        assert getattr(channel_admin, check)(request, world["y_email"]) is False, check
        assert getattr(channel_admin, check)(request, None) is True, check
    assert client_admin.has_change_permission(request, world["x"]) is True
    assert client_admin.has_change_permission(request, world["y"]) is False
    sneaky = Channel(client=world["y"], name="Sneaky", kind="sms", optimove_channel_id=778, provider="twilio")
    with pytest.raises(PermissionDenied):
        channel_admin.save_model(request, sneaky, None, change=False)
    assert not Channel.objects.filter(optimove_channel_id=778).exists()
