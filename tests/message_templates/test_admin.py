"""The admin through real requests: the preview, saves and deletes through the services, and a staff
user limited to their own clients' templates."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client as HttpClient

from apps.clients.models import Channel, Client
from apps.message_templates.models import MessageTemplate
from apps.message_templates.services import template_upsert
from tests.message_templates.conftest import make_channels, make_client, stored_template

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/message_templates/messagetemplate/"
ADD = f"{CHANGELIST}add/"
PROVIDER_SECRET = "provider-secret-Walnut-42"


def change_url(template: MessageTemplate) -> str:
    return f"{CHANGELIST}{template.pk}/change/"


@pytest.fixture
def root(client: HttpClient) -> HttpClient:
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def form_data(template: MessageTemplate | None = None, **overrides: Any) -> dict[str, Any]:
    """What the change form posts (its editable fields); None drops a key."""
    data: dict[str, Any] = {
        "name": template.name if template else "",
        "is_active": "on" if template is None or template.is_active else None,
        "subject": template.subject if template else "",
        "html_body": template.html_body if template else "",
        "text_body": template.text_body if template else "",
        "payload": json.dumps(template.payload) if template and template.payload is not None else "",
        "deep_link": template.deep_link if template else "",
        "sample_attributes": json.dumps(template.sample_attributes if template else {}),
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_the_preview_shows_every_rendered_part(root: HttpClient, channels: dict[str, Channel]) -> None:
    channel = channels["email"]
    channel.provider_secrets = {"api_token": PROVIDER_SECRET}
    channel.save()
    template, _ = template_upsert(
        channel=channel,
        template_id=14,
        name="Welcome",
        subject="Hi {{ FirstName }}",
        html_body="<p>Hello {{ FirstName }}</p>",
        text_body="Hello {{ FirstName }}, code {{ promo_code }}",
        sample_attributes={"FirstName": "Ada <3", "promo_code": "SPRING"},
    )

    page = root.get(change_url(template)).content.decode()

    assert '<p class="preview-subject">Hi Ada &lt;3</p>' in page
    # The HTML part (escaped once by the template, once more for the attribute) in a sandboxed iframe.
    assert 'sandbox="" srcdoc="&lt;p&gt;Hello Ada &amp;lt;3&lt;/p&gt;"' in page
    assert (
        '<pre class="preview-text" style="white-space: pre-wrap;">Hello Ada &lt;3, code SPRING</pre>' in page
    )
    assert PROVIDER_SECRET not in page


def test_the_preview_counts_sms_segments(root: HttpClient, channels: dict[str, Channel]) -> None:
    template, _ = template_upsert(
        channel=channels["sms"],
        template_id=2,
        name="Long",
        text_body="{{ Word }} " + "x" * 155,
        sample_attributes={"Word": "€uro"},
    )

    page = root.get(change_url(template)).content.decode()

    assert '<p class="preview-sms">SMS: 161 characters in GSM-7, 2 segments</p>' in page


def test_the_preview_shows_push_data_and_webhook_payloads(
    root: HttpClient, channels: dict[str, Channel]
) -> None:
    push, _ = template_upsert(
        channel=channels["push"],
        template_id=3,
        name="Push",
        subject="T",
        deep_link="app://o/{{ Offer }}",
        payload={"offer": "{{ Offer }}"},
        sample_attributes={"Offer": "o-1"},
    )
    hook, _ = template_upsert(
        channel=channels["webhook"], template_id=4, name="Hook", payload={"n": 1, "who": "{{ customer_id }}"}
    )

    push_page = root.get(change_url(push)).content.decode()
    hook_page = root.get(change_url(hook)).content.decode()

    assert '<p class="preview-deep-link">app://o/o-1</p>' in push_page
    assert '<pre class="preview-data">{\n  &quot;offer&quot;: &quot;o-1&quot;\n}</pre>' in push_page
    assert (
        '<pre class="preview-payload">{\n  &quot;n&quot;: 1,\n  '
        "&quot;who&quot;: &quot;SAMPLE-CUSTOMER&quot;\n}</pre>" in hook_page
    )


def test_the_preview_shows_why_a_template_cannot_render(
    root: HttpClient, channels: dict[str, Channel]
) -> None:
    template, _ = template_upsert(
        channel=channels["sms"],
        template_id=2,
        name="Broken",
        text_body="{{ FirstName.__class__ }}",
        sample_attributes={"FirstName": "Ada"},
    )
    looping = stored_template(
        channels["sms"], template_id=3, text_body="{% for i in range(10**9) %}{% endfor %}"
    )

    page = root.get(change_url(template)).content.decode()
    looping_page = root.get(change_url(looping)).content.decode()

    assert (
        '<p class="errornote">Cannot render: text_body: not allowed: access to attribute '
        "&#x27;__class__&#x27; of a &#x27;str&#x27; object</p>"
    ) in page
    assert (
        "Cannot render: text_body: range() of 1000000000 numbers is over the loop budget "
        "(100000 of 100000 iterations left)"
    ) in looping_page


def test_adding_through_the_admin_validates_and_saves(
    root: HttpClient, channels: dict[str, Channel], acme: Client
) -> None:
    channel = channels["sms"]
    base = {"client": acme.pk, "channel": channel.pk, "template_id": "21", "name": "Hello"}

    refused = root.post(ADD, form_data(**base, text_body="Hi {{ FirstName "))
    saved = root.post(ADD, form_data(**base, text_body="Hi {{ FirstName }}"))

    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors == {
        "text_body": [
            "Syntax error on line 1: unexpected end of template, expected 'end of print statement'."
        ]
    }
    assert saved.status_code == 302
    template = MessageTemplate.objects.get()
    assert (template.client_id, template.channel_id, template.template_id, template.text_body) == (
        acme.pk,
        channel.pk,
        21,
        "Hi {{ FirstName }}",
    )


def test_an_emptied_sample_is_an_empty_sample(root: HttpClient, channels: dict[str, Channel]) -> None:
    template, _ = template_upsert(
        channel=channels["sms"], template_id=2, name="T", text_body="t", sample_attributes={"A": "a"}
    )

    response = root.post(change_url(template), form_data(template, sample_attributes=""))

    assert response.status_code == 302
    template.refresh_from_db()
    assert template.sample_attributes == {}


def test_the_admin_refuses_a_channel_of_another_client(
    root: HttpClient, channels: dict[str, Channel], acme: Client
) -> None:
    globex_sms = make_channels(make_client("globex"))["sms"]

    response = root.post(
        ADD, form_data(client=acme.pk, channel=globex_sms.pk, template_id="21", name="X", text_body="t")
    )

    assert response.context["adminform"].form.errors == {
        "channel": ["Channel “globex sms” belongs to another client; choose one of client “acme”'s channels."]
    }
    assert not MessageTemplate.objects.exists()


def test_editing_keeps_the_template_id_and_updates_the_row(
    root: HttpClient, channels: dict[str, Channel]
) -> None:
    template, _ = template_upsert(channel=channels["sms"], template_id=21, name="Old", text_body="old")

    response = root.post(
        change_url(template), form_data(template, name="New", text_body="new {{ A }}", template_id="99")
    )

    assert response.status_code == 302
    row = MessageTemplate.objects.get()
    assert (row.pk, row.template_id, row.name, row.text_body) == (template.pk, 21, "New", "new {{ A }}")


def test_deleting_through_the_admin(root: HttpClient, channels: dict[str, Channel]) -> None:
    one, _ = template_upsert(channel=channels["sms"], template_id=1, name="One", text_body="t")
    two, _ = template_upsert(channel=channels["sms"], template_id=2, name="Two", text_body="t")
    three, _ = template_upsert(channel=channels["sms"], template_id=3, name="Three", text_body="t")

    root.post(f"{CHANGELIST}{one.pk}/delete/", {"post": "yes"})
    root.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [two.pk], "post": "yes"})

    assert list(MessageTemplate.objects.all()) == [three]


def test_search_by_name_and_by_template_id(root: HttpClient, channels: dict[str, Channel]) -> None:
    spring, _ = template_upsert(channel=channels["sms"], template_id=14, name="Spring sale", text_body="t")
    autumn, _ = template_upsert(channel=channels["sms"], template_id=140, name="Autumn", text_body="t")

    by_name = root.get(CHANGELIST, {"q": "spring"})
    by_id = root.get(CHANGELIST, {"q": "140"})

    assert list(by_name.context["cl"].result_list) == [spring]
    assert list(by_id.context["cl"].result_list) == [autumn]


@pytest.fixture
def scoped(client: HttpClient, channels: dict[str, Channel], acme: Client) -> dict[str, Any]:
    globex = make_client("globex")
    globex_channels = make_channels(globex)
    staff = User.objects.create_user("acme-ops", password="pw", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(
            codename__in=[f"{action}_messagetemplate" for action in ("view", "add", "change", "delete")]
        )
    )
    acme.admins.add(staff)
    client.force_login(staff)
    mine, _ = template_upsert(channel=channels["sms"], template_id=1, name="Acme hello", text_body="t")
    theirs, _ = template_upsert(
        channel=globex_channels["sms"], template_id=1, name="Globex hello", text_body="t"
    )
    return {
        "http": client,
        "mine": mine,
        "theirs": theirs,
        "globex_sms": globex_channels["sms"],
        "globex": globex,
    }


def test_a_scoped_staff_user_sees_only_their_clients_templates(scoped: dict[str, Any]) -> None:
    http: HttpClient = scoped["http"]

    listing = http.get(CHANGELIST)
    theirs = http.get(change_url(scoped["theirs"]))
    add_form = http.get(ADD).context["adminform"].form

    assert list(listing.context["cl"].result_list) == [scoped["mine"]]
    assert "Globex" not in listing.content.decode()
    assert "globex" not in listing.content.decode()  # not even in the filter sidebar
    assert theirs.status_code == 302  # answered like a missing object
    assert http.get(change_url(scoped["mine"])).status_code == 200
    assert scoped["globex_sms"] not in add_form.fields["channel"].queryset
    assert scoped["globex"] not in add_form.fields["client"].queryset


def test_a_scoped_staff_user_cannot_post_to_another_clients_template(scoped: dict[str, Any]) -> None:
    http: HttpClient = scoped["http"]
    theirs: MessageTemplate = scoped["theirs"]

    http.post(change_url(theirs), form_data(theirs, name="Hijacked"))
    http.post(f"{CHANGELIST}{theirs.pk}/delete/", {"post": "yes"})
    forged = http.post(
        ADD,
        form_data(
            client=scoped["globex"].pk,
            channel=scoped["globex_sms"].pk,
            template_id="9",
            name="F",
            text_body="t",
        ),
    )

    theirs.refresh_from_db()
    assert theirs.name == "Globex hello"
    assert forged.status_code == 200
    assert set(forged.context["adminform"].form.errors) == {"client", "channel"}
    assert MessageTemplate.objects.count() == 2
