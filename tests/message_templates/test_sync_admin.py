"""Every admin path to a template records what Optimove must hear (add and change forms, delete, Django's
bulk "delete selected", the activate / deactivate / push-again actions), the list shows each template's
sync state, and the outbox has a read-only page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client as HttpClient

from apps.clients.models import Channel, Client
from apps.message_templates.models import MessageTemplate, OptimoveOutbox, OutboxState
from apps.message_templates.services import template_upsert
from tests.message_templates.conftest import make_channels, make_client, stored_template
from tests.message_templates.sync_support import outbox
from tests.message_templates.test_admin import ADD, CHANGELIST, change_url, form_data

pytestmark = pytest.mark.django_db

OUTBOX = "/admin/message_templates/optimoveoutbox/"


@pytest.fixture
def root(client: HttpClient) -> HttpClient:
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def sms(channel: Channel, template_id: int, name: str, **fields: Any) -> MessageTemplate:
    template, _ = template_upsert(
        channel=channel, template_id=template_id, name=name, text_body="Hi", **fields
    )
    return template


def test_the_add_and_change_forms_record_creates_and_renames_not_content_edits(
    root: HttpClient, channels: dict[str, Channel], acme: Client
) -> None:
    sms_channel = channels["sms"]  # ChannelID 501
    added = root.post(
        ADD,
        form_data(client=acme.pk, channel=sms_channel.pk, template_id="21", name="Hello", text_body="Hi"),
    )
    template = MessageTemplate.objects.get()
    content_edit = root.post(change_url(template), form_data(template, text_body="Hi {{ FirstName }}"))
    template.refresh_from_db()
    renamed = root.post(change_url(template), form_data(template, name="Hello there"))
    template.refresh_from_db()
    deactivated = root.post(change_url(template), form_data(template, is_active=None))

    assert [r.status_code for r in (added, content_edit, renamed, deactivated)] == [302, 302, 302, 302]
    assert outbox() == [
        (501, "template", "add", "21", "Hello", "pending"),
        (501, "template", "add", "21", "Hello there", "pending"),
        (501, "template", "delete", "21", "", "pending"),
    ]


def test_a_refused_form_records_nothing(root: HttpClient, channels: dict[str, Channel], acme: Client) -> None:
    response = root.post(
        ADD,
        form_data(client=acme.pk, channel=channels["sms"].pk, template_id="21", name="Hi", text_body="{{ x"),
    )

    assert response.status_code == 200
    assert outbox() == []


def test_the_delete_page_and_the_bulk_delete_action_record_a_delete_per_listed_template(
    root: HttpClient, channels: dict[str, Channel]
) -> None:
    one = sms(channels["sms"], 1, "One")
    two = sms(channels["sms"], 2, "Two")
    three = sms(channels["sms"], 3, "Three", is_active=False)
    four = sms(channels["email"], 4, "Four", subject="S")
    OptimoveOutbox.objects.all().delete()

    page = root.post(f"{CHANGELIST}{one.pk}/delete/", {"post": "yes"})
    bulk = root.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [two.pk, three.pk, four.pk], "post": "yes"},
    )

    assert (page.status_code, bulk.status_code) == (302, 302)
    assert MessageTemplate.objects.count() == 0
    # Template 3 was inactive, so Optimove never listed it: nothing to delete there. The bulk action
    # goes in the list's order (by ChannelID).
    assert outbox() == [
        (501, "template", "delete", "1", "", "pending"),
        (500, "template", "delete", "4", "", "pending"),
        (501, "template", "delete", "2", "", "pending"),
    ]


def test_the_bulk_delete_is_one_transaction_deleted_whole_or_not_at_all(
    root: HttpClient, channels: dict[str, Channel], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its outbox rows commit together, so one push carries them; and a failure half-way deletes nothing.
    from apps.message_templates import admin as templates_admin

    two = sms(channels["sms"], 2, "Two")
    three = sms(channels["sms"], 3, "Three")
    OptimoveOutbox.objects.all().delete()
    real_delete = templates_admin.template_delete
    deleted: list[int] = []

    def delete_then_fail(*, template: MessageTemplate) -> None:
        if deleted:
            raise RuntimeError("the database went away")
        real_delete(template=template)
        deleted.append(template.pk)

    monkeypatch.setattr(templates_admin, "template_delete", delete_then_fail)
    root.raise_request_exception = False
    response = root.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [two.pk, three.pk], "post": "yes"}
    )
    assert response.status_code == 500
    assert deleted == [two.pk]
    assert set(MessageTemplate.objects.values_list("template_id", flat=True)) == {2, 3}
    assert outbox() == []


def test_activate_deactivate_and_push_again_actions(root: HttpClient, channels: dict[str, Channel]) -> None:
    on = sms(channels["sms"], 1, "On")
    off = sms(channels["sms"], 2, "Off", is_active=False)
    broken = stored_template(channels["sms"], 3, name="Broken", text_body="{{ x", is_active=False)
    OptimoveOutbox.objects.all().delete()

    activated = root.post(
        CHANGELIST, {"action": "activate", "_selected_action": [on.pk, off.pk, broken.pk]}, follow=True
    )
    assert [str(m) for m in activated.context["messages"]] == [
        "Activated 1 template(s): 501/2.",
        "Not changed, fix them first: 501/3 (Syntax error on line 1: unexpected end of template, expected "
        "'end of print statement'.)",
    ]
    assert outbox() == [(501, "template", "add", "2", "Off", "pending")]

    root.post(CHANGELIST, {"action": "deactivate", "_selected_action": [on.pk]})
    root.post(CHANGELIST, {"action": "sync_again", "_selected_action": [off.pk, broken.pk]})

    assert outbox()[1:] == [
        (501, "template", "delete", "1", "", "pending"),
        (501, "template", "add", "2", "Off", "pending"),
        (501, "template", "delete", "3", "", "pending"),
    ]
    assert dict(MessageTemplate.objects.values_list("template_id", "is_active")) == {
        1: False,
        2: True,
        3: False,
    }


def test_the_list_shows_each_templates_sync_state_and_filters_by_it(
    root: HttpClient, channels: dict[str, Channel]
) -> None:
    synced = sms(channels["sms"], 1, "Synced")
    pending = sms(channels["sms"], 2, "Pending")
    retrying = sms(channels["sms"], 3, "Retrying")
    failed = sms(channels["sms"], 4, "Failed")
    never = stored_template(channels["sms"], 5, name="Never", text_body="t")  # saved before the sync existed
    OptimoveOutbox.objects.filter(key="1").update(state=OutboxState.DONE, last_error="an old error")
    OptimoveOutbox.objects.filter(key="3").update(
        attempts=2, last_error="Optimove AddChannelTemplates answered 503"
    )
    OptimoveOutbox.objects.filter(key="4").update(
        state=OutboxState.FAILED, attempts=1, last_error="Optimove AddChannelTemplates answered 400"
    )
    # The same TemplateID on another channel and another client do not count.
    sms(channels["email"], 4, "Email four", subject="S")
    sms(make_channels(make_client("globex"))["sms"], 4, "Globex four")

    page = root.get(CHANGELIST, {"channel__id__exact": channels["sms"].pk})
    rows = {
        obj.template_id: (
            page.context["cl"].model_admin.optimove_sync(obj),
            page.context["cl"].model_admin.sync_error(obj),
        )
        for obj in page.context["cl"].result_list
    }

    assert rows == {
        1: ("synced", ""),
        2: ("pending", ""),
        3: ("pending (retrying)", "Optimove AddChannelTemplates answered 503"),
        4: ("failed", "Optimove AddChannelTemplates answered 400"),
        5: ("never pushed", ""),
    }
    html = page.content.decode()
    assert '<td class="field-optimove_sync">failed</td>' in html
    assert '<td class="field-sync_error">Optimove AddChannelTemplates answered 400</td>' in html

    def listed(state: str) -> list[MessageTemplate]:
        return list(
            root.get(CHANGELIST, {"sync": state, "channel__id__exact": channels["sms"].pk})
            .context["cl"]
            .result_list
        )

    assert listed("failed") == [failed]
    assert listed("pending") == [pending, retrying]
    assert listed("synced") == [synced]
    assert listed("never") == [never]


def test_the_outbox_page_lists_rows_and_allows_no_change(
    root: HttpClient, channels: dict[str, Channel]
) -> None:
    sms(channels["sms"], 1, "One")
    row = OptimoveOutbox.objects.get()

    listing = root.get(OUTBOX, {"state__exact": "pending"})
    detail = root.get(f"{OUTBOX}{row.pk}/change/")

    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [row]
    assert detail.status_code == 200
    assert b'name="key"' not in detail.content  # read only: no inputs
    assert root.get(f"{OUTBOX}add/").status_code == 403
    assert root.post(f"{OUTBOX}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert OptimoveOutbox.objects.count() == 1
