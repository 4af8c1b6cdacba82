"""Templates are written only through the services, which refuse bad input with readable messages
and change nothing when they do."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from apps.clients.models import Channel, Client
from apps.message_templates.models import MessageTemplate
from apps.message_templates.selectors import template_map_for_channel
from apps.message_templates.services import template_delete, template_upsert
from tests.message_templates.conftest import make_channels, make_client

pytestmark = pytest.mark.django_db


def test_upsert_creates_then_updates_the_same_row(channels: dict[str, Channel], acme: Client) -> None:
    created, was_created = template_upsert(
        channel=channels["sms"], template_id=14, name="Spring", text_body="Hi {{ FirstName }}"
    )
    updated, was_created_again = template_upsert(
        channel=channels["sms"], template_id=14, name="Spring sale", is_active=False
    )

    assert (was_created, was_created_again) == (True, False)
    assert updated.pk == created.pk
    row = MessageTemplate.objects.get()
    assert (row.client_id, row.channel_id, row.template_id) == (acme.pk, channels["sms"].pk, 14)
    assert (row.name, row.is_active, row.text_body) == ("Spring sale", False, "Hi {{ FirstName }}")


def test_the_same_template_id_on_another_channel_is_another_template(channels: dict[str, Channel]) -> None:
    template_upsert(channel=channels["sms"], template_id=14, name="SMS 14", text_body="a")
    template_upsert(channel=channels["console"], template_id=14, name="Console 14", text_body="b")

    assert sorted(MessageTemplate.objects.values_list("name", flat=True)) == ["Console 14", "SMS 14"]


@pytest.mark.parametrize(
    ("kind", "fields", "errors"),
    [
        (
            "email",
            {},
            {
                "subject": ["An email template needs a subject."],
                "html_body": ["An email template needs an HTML body or a text body."],
            },
        ),
        (
            "email",
            {"subject": "Hi", "html_body": "  "},
            {"html_body": ["An email template needs an HTML body or a text body."]},
        ),
        ("sms", {"subject": "only a subject"}, {"text_body": ["An SMS template needs a text."]}),
        (
            "push",
            {"deep_link": "app://x"},
            {"text_body": ["A push template needs a title (subject) or a body (text)."]},
        ),
        ("webhook", {"subject": "s"}, {"payload": ["A webhook template needs a JSON payload or a text."]}),
        ("console", {}, {"text_body": ["A console template needs at least one part."]}),
        (
            "push",
            {"text_body": "b", "payload": ["not", "an", "object"]},
            {"payload": ["Push data must be a JSON object of names to text values."]},
        ),
        (
            "push",
            {"text_body": "b", "payload": {"badge": 3, "screen": "home", "flag": True}},
            {
                "payload": [
                    "Push data values must be text (FCM sends data as strings); not text: badge, flag."
                ]
            },
        ),
        (
            "webhook",
            {"payload": {"a": ["ok", "{{ Broken "]}},
            {
                "payload": [
                    "Payload at $.a[1]: syntax error on line 1: unexpected end of template, "
                    "expected 'end of print statement'."
                ]
            },
        ),
        (
            "sms",
            {"text_body": "Hi {{ FirstName | safe }}"},
            {"text_body": ["Syntax error on line 1: No filter named 'safe'."]},
        ),
        (
            "email",
            {"subject": "s", "html_body": 'line\n{% include "/etc/passwd" %}'},
            {"html_body": ["Syntax error on line 2: {% include %} is not allowed in message templates."]},
        ),
        (
            "sms",
            {"text_body": "ok", "sample_attributes": {"Age": 42}},
            {
                "sample_attributes": [
                    'Sample attribute values must be text, as Optimove sends them (write "42", not 42); '
                    "not text: Age."
                ]
            },
        ),
    ],
    ids=[
        "email-empty",
        "email-blank-body",
        "sms-no-text",
        "push-no-title-or-body",
        "webhook-no-payload-or-text",
        "console-nothing",
        "push-data-not-an-object",
        "push-data-not-text",
        "payload-leaf-syntax",
        "unknown-filter",
        "include",
        "sample-not-text",
    ],
)
def test_content_the_kind_cannot_send_is_refused(
    channels: dict[str, Channel], kind: str, fields: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    with pytest.raises(ValidationError) as error:
        template_upsert(channel=channels[kind], template_id=5, name="T", **fields)

    assert error.value.message_dict == errors
    assert not MessageTemplate.objects.exists()


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("email", {"subject": "s", "text_body": "plain only"}),
        ("email", {"subject": "s", "html_body": "<p>html only</p>"}),
        ("sms", {"text_body": "t"}),
        ("push", {"subject": "title only"}),
        ("push", {"text_body": "body only", "payload": {"screen": "{{ Screen }}"}}),
        ("webhook", {"payload": [1, "{{ A }}"]}),
        ("webhook", {"payload": {}}),
        ("webhook", {"text_body": "text only"}),
        ("console", {"deep_link": "anything"}),
    ],
)
def test_content_the_kind_can_send_is_accepted(
    channels: dict[str, Channel], kind: str, fields: dict[str, Any]
) -> None:
    template, created = template_upsert(channel=channels[kind], template_id=5, name="T", **fields)

    assert created is True
    assert MessageTemplate.objects.get().pk == template.pk


@pytest.mark.parametrize(
    ("name", "template_id", "errors"),
    [
        ("", 5, {"name": ["This field cannot be blank."]}),
        ("   ", 5, {"name": ["A name is required: Optimove shows it to marketers."]}),
        ("T", 0, {"template_id": ["Ensure this value is greater than or equal to 1."]}),
    ],
)
def test_a_name_and_a_positive_template_id_are_required(
    channels: dict[str, Channel], name: str, template_id: int, errors: dict[str, list[str]]
) -> None:
    with pytest.raises(ValidationError) as error:
        template_upsert(channel=channels["sms"], template_id=template_id, name=name, text_body="t")

    assert error.value.message_dict == errors
    assert not MessageTemplate.objects.exists()


def test_a_bad_update_changes_nothing(channels: dict[str, Channel]) -> None:
    original, _ = template_upsert(channel=channels["sms"], template_id=5, name="Good", text_body="Hi {{ A }}")

    with pytest.raises(ValidationError):
        template_upsert(channel=channels["sms"], template_id=5, name="Renamed", text_body="Hi {{ A ")

    row = MessageTemplate.objects.get()
    assert (row.name, row.text_body, row.updated_at) == ("Good", "Hi {{ A }}", original.updated_at)


def test_a_channel_of_another_client_is_rejected(channels: dict[str, Channel], acme: Client) -> None:
    other_sms = make_channels(make_client("globex"))["sms"]
    template = MessageTemplate(client=acme, channel=other_sms, template_id=5, name="T", text_body="t")

    with pytest.raises(ValidationError) as error:
        template.full_clean()

    assert error.value.message_dict == {
        "channel": ["Channel “globex sms” belongs to another client; choose one of client “acme”'s channels."]
    }


def test_upsert_takes_the_client_from_the_channel(channels: dict[str, Channel]) -> None:
    globex = make_client("globex")
    globex_sms = make_channels(globex)["sms"]

    template, _ = template_upsert(channel=globex_sms, template_id=5, name="T", text_body="t")

    assert MessageTemplate.objects.get(pk=template.pk).client_id == globex.pk


def test_unknown_fields_are_a_programming_error(channels: dict[str, Channel]) -> None:
    with pytest.raises(TypeError, match="unexpected fields: client, colour"):
        template_upsert(
            channel=channels["sms"], template_id=5, name="T", text_body="t", colour="red", client=None
        )
    assert not MessageTemplate.objects.exists()


def test_delete(channels: dict[str, Channel]) -> None:
    keep, _ = template_upsert(channel=channels["sms"], template_id=1, name="Keep", text_body="t")
    drop, _ = template_upsert(channel=channels["sms"], template_id=2, name="Drop", text_body="t")

    template_delete(template=drop)

    assert list(MessageTemplate.objects.all()) == [keep]


def test_template_map_for_channel(channels: dict[str, Channel]) -> None:
    one, _ = template_upsert(channel=channels["sms"], template_id=1, name="One", text_body="t")
    template_upsert(channel=channels["sms"], template_id=2, name="Off", text_body="t", is_active=False)
    template_upsert(channel=channels["console"], template_id=3, name="Elsewhere", text_body="t")

    active = template_map_for_channel(channel=channels["sms"], template_ids=[1, 2, 3, 4])
    every = template_map_for_channel(channel=channels["sms"], template_ids=[1, 2], active_only=False)

    assert active == {1: one}
    assert sorted(every) == [1, 2]
