"""The outbox pushed to the sandbox (a real gunicorn playing Optimove) by the push task, run in-process:
changes reach the lists, only the latest change per key is sent, an outage leaves the rows pending and
loses nothing, a refusal fails them with the reason, and two pushers never push the same list."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.clients.push_apps import push_app_delete, push_app_upsert
from apps.message_templates.models import MessageTemplate, OptimoveOutbox, OutboxKind, OutboxState
from apps.message_templates.services import template_delete, template_sync_again, template_upsert
from apps.message_templates.sync import (
    NO_CREDENTIALS,
    OutboxPushResult,
    outbox_group_lock,
    outbox_push,
    outbox_record_change,
)
from apps.message_templates.tasks import optimove_sync
from tests.message_templates.sync_support import (
    EMAIL_CONTENT,
    Optimove,
    optimove_fixture,
    outbox,
    sandbox_server,
)

__all__ = ["optimove_fixture", "sandbox_server"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)


def upsert(optimove: Optimove, template_id: int, name: str, **fields: Any) -> MessageTemplate:
    template, _ = template_upsert(
        channel=optimove.email, template_id=template_id, name=name, **{**EMAIL_CONTENT, **fields}
    )
    return template


def test_creates_renames_deactivations_and_deletes_reach_the_list_latest_change_only(
    optimove: Optimove,
) -> None:
    upsert(optimove, 14, "Welcome")
    reminder = upsert(optimove, 15, "Reminder")
    upsert(optimove, 16, "Draft", is_active=False)  # not listed: nothing to tell Optimove
    upsert(optimove, 14, "Welcome back")  # a rename
    upsert(optimove, 15, "Reminder", text_body="Still {{ FirstName }}")  # content only: nothing
    template_delete(template=reminder)
    upsert(optimove, 16, "Draft", is_active=True)  # listed from now on
    upsert(optimove, 17, "Old offer")
    upsert(optimove, 17, "Old offer", is_active=False)  # added and taken back before any push

    optimove_sync(optimove.client.pk)

    assert optimove.templates() == {14: "Welcome back", 16: "Draft"}
    # One call each way: the superseded rows never went out on their own.
    assert optimove.calls("AddChannelTemplates") == [200]
    assert optimove.calls("DeleteChannelTemplates") == [200]
    assert outbox() == [
        (504, "template", "add", "14", "Welcome", "superseded"),
        (504, "template", "add", "15", "Reminder", "superseded"),
        (504, "template", "add", "14", "Welcome back", "done"),
        (504, "template", "delete", "15", "", "done"),
        (504, "template", "add", "16", "Draft", "done"),
        (504, "template", "add", "17", "Old offer", "superseded"),
        (504, "template", "delete", "17", "", "done"),
    ]
    assert all(row.done_at is not None for row in OptimoveOutbox.objects.all())

    assert outbox_push(client_id=optimove.client.pk) == OutboxPushResult()
    assert optimove.calls("AddChannelTemplates") == [200]


def test_app_changes_reach_the_push_channels_app_list(optimove: Optimove) -> None:
    ios, _ = push_app_upsert(channel=optimove.push, app_id="com.acme.ios", name="Acme iOS")
    push_app_upsert(channel=optimove.push, app_id="com.acme.android", name="Acme Android")
    optimove_sync(optimove.client.pk)
    assert optimove.apps() == {"com.acme.ios": "Acme iOS", "com.acme.android": "Acme Android"}

    push_app_upsert(channel=optimove.push, app_id="com.acme.android", name="Acme for Android")
    push_app_delete(app=ios)
    optimove_sync(optimove.client.pk)

    assert optimove.apps() == {"com.acme.android": "Acme for Android"}
    assert optimove.calls("AddChannelApps") == [200, 200]
    assert optimove.calls("DeleteChannelApps") == [200]
    assert optimove.templates() == {}


def test_more_than_a_hundred_changes_go_in_calls_of_a_hundred(optimove: Optimove) -> None:
    with transaction.atomic():
        for template_id in range(1, 151):
            outbox_record_change(
                client_id=optimove.client.pk,
                optimove_channel_id=504,
                kind=OutboxKind.TEMPLATE,
                key=str(template_id),
                before=None,
                after=f"Template {template_id}",
            )

    result = outbox_push(client_id=optimove.client.pk)

    assert result == OutboxPushResult(done=150)
    assert optimove.templates() == {i: f"Template {i}" for i in range(1, 151)}
    assert optimove.calls("AddChannelTemplates") == [200, 200]


def test_an_outage_keeps_the_rows_pending_and_after_it_everything_arrives_once(optimove: Optimove) -> None:
    upsert(optimove, 14, "Welcome")
    upsert(optimove, 15, "Reminder")
    push_app_upsert(channel=optimove.push, app_id="com.acme.ios", name="Acme iOS")
    optimove.set_faults(1.0, [429, 503])
    started = timezone.now()

    result = outbox_push(client_id=optimove.client.pk, now=started)

    # The first list failed after the API client's own retry (2 calls); the app list was not tried:
    # Optimove is down for this client, and it would only fail the same way.
    assert result == OutboxPushResult(retrying=2)
    statuses = optimove.calls("AddChannelTemplates")
    assert len(statuses) == 2
    assert set(statuses) <= {429, 503}
    assert optimove.calls("AddChannelApps") == []
    templates = OptimoveOutbox.objects.filter(kind=OutboxKind.TEMPLATE).order_by("id")
    for row in templates:
        assert row.state == OutboxState.PENDING
        assert row.attempts == 1
        assert re.fullmatch(
            r"Optimove AddChannelTemplates answered (429|503) after 2 attempts", row.last_error
        )
        assert row.next_attempt_at == started + timedelta(seconds=30)
        assert row.done_at is None
    app_row = OptimoveOutbox.objects.get(kind=OutboxKind.APP)
    assert (app_row.state, app_row.attempts, app_row.last_error) == (OutboxState.PENDING, 0, "")
    assert optimove.templates() == {}
    assert optimove.apps() == {}

    # Still down, and the templates wait out their backoff: only the app list is tried.
    assert outbox_push(client_id=optimove.client.pk, now=started + timedelta(seconds=5)) == OutboxPushResult(
        retrying=1
    )
    assert len(optimove.calls("AddChannelTemplates")) == 2
    assert len(optimove.calls("AddChannelApps")) == 2

    optimove.set_faults(0.0)
    result = outbox_push(client_id=optimove.client.pk, now=started + timedelta(minutes=5))

    assert result == OutboxPushResult(done=3)
    assert optimove.templates() == {14: "Welcome", 15: "Reminder"}
    assert optimove.apps() == {"com.acme.ios": "Acme iOS"}
    assert optimove.calls("AddChannelTemplates")[2:] == [200]
    assert optimove.calls("AddChannelApps")[2:] == [200]
    assert list(OptimoveOutbox.objects.order_by("id").values_list("state", "attempts", "last_error")) == [
        ("done", 2, ""),
        ("done", 2, ""),
        ("done", 2, ""),
    ]


def test_rows_that_keep_failing_give_up_after_the_last_attempt(optimove: Optimove, settings: Any) -> None:
    settings.OPTIMOVE_SYNC_MAX_ATTEMPTS = 2
    upsert(optimove, 14, "Welcome")
    optimove.set_faults(1.0, [503])
    started = timezone.now()

    assert outbox_push(client_id=optimove.client.pk, now=started) == OutboxPushResult(retrying=1)
    result = outbox_push(client_id=optimove.client.pk, now=started + timedelta(hours=1))

    assert result == OutboxPushResult(failed=1)
    row = OptimoveOutbox.objects.get()
    assert (row.state, row.attempts) == (OutboxState.FAILED, 2)
    assert (
        row.last_error
        == "gave up after 2 attempts: Optimove AddChannelTemplates answered 503 after 2 attempts"
    )


def test_a_refusal_fails_the_rows_with_the_reason_and_pushing_again_fixes_it(optimove: Optimove) -> None:
    welcome = upsert(optimove, 14, "Welcome")
    optimove.set_faults(1.0, [400])

    assert outbox_push(client_id=optimove.client.pk) == OutboxPushResult(failed=1)

    row = OptimoveOutbox.objects.get()
    assert (row.state, row.attempts, row.last_error) == (
        OutboxState.FAILED,
        1,
        "Optimove AddChannelTemplates answered 400",
    )
    assert row.done_at is not None
    # A refusal is final: not asked again, however often the push runs.
    assert (
        outbox_push(client_id=optimove.client.pk, now=timezone.now() + timedelta(days=1))
        == OutboxPushResult()
    )
    assert optimove.calls("AddChannelTemplates") == [400]

    optimove.set_faults(0.0)
    template_sync_again(template=welcome)
    assert outbox_push(client_id=optimove.client.pk) == OutboxPushResult(done=1)
    assert optimove.templates() == {14: "Welcome"}


def test_a_refused_add_does_not_stop_the_deletes(optimove: Optimove) -> None:
    upsert(optimove, 14, "Welcome")
    optimove_sync(optimove.client.pk)
    template_delete(template=MessageTemplate.objects.get(template_id=14))
    upsert(optimove, 15, "Reminder")
    # A row the API client refuses before sending it: as final as a 400 from Optimove.
    OptimoveOutbox.objects.filter(key="15").update(key="fifteen")

    result = outbox_push(client_id=optimove.client.pk)

    assert result == OutboxPushResult(done=1, failed=1)
    assert optimove.calls("DeleteChannelTemplates") == [200]
    assert outbox(key="fifteen") == [(504, "template", "add", "fifteen", "Reminder", "failed")]
    assert OptimoveOutbox.objects.get(key="fifteen").last_error == "outbox key 'fifteen' is not a TemplateID"
    assert optimove.templates() == {}


def test_a_list_another_worker_is_pushing_is_left_to_it(optimove: Optimove) -> None:
    upsert(optimove, 14, "Welcome")
    held = threading.Event()
    release = threading.Event()

    def other_worker() -> None:
        try:
            with outbox_group_lock(
                client_id=optimove.client.pk, optimove_channel_id=504, kind=OutboxKind.TEMPLATE
            ) as locked:
                assert locked
                held.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert held.wait(10)
        assert outbox_push(client_id=optimove.client.pk) == OutboxPushResult(busy_groups=1)
        assert optimove.calls("AddChannelTemplates") == []
        assert outbox() == [(504, "template", "add", "14", "Welcome", "pending")]
    finally:
        release.set()
        thread.join(10)

    assert outbox_push(client_id=optimove.client.pk) == OutboxPushResult(done=1)
    assert optimove.templates() == {14: "Welcome"}


def test_without_credentials_the_rows_wait_and_go_out_once_they_are_set(optimove: Optimove) -> None:
    client = optimove.client
    client.optimove_api_key = ""
    client.save()
    upsert(optimove, 14, "Welcome")

    assert outbox_push(client_id=client.pk) == OutboxPushResult(waiting=1)
    assert outbox_push(client_id=client.pk) == OutboxPushResult(waiting=1)

    row = OptimoveOutbox.objects.get()
    assert (row.state, row.attempts, row.last_error) == (OutboxState.PENDING, 0, NO_CREDENTIALS)
    assert optimove.calls("AddChannelTemplates") == []

    client.optimove_api_key = optimove.account.api_key
    client.save()
    assert outbox_push(client_id=client.pk) == OutboxPushResult(done=1)
    assert optimove.templates() == {14: "Welcome"}
    assert OptimoveOutbox.objects.get().last_error == ""


def test_rejected_credentials_fail_the_rows_and_say_so(optimove: Optimove) -> None:
    optimove.client.optimove_api_key = "not-the-key"
    optimove.client.save()
    upsert(optimove, 14, "Welcome")

    assert outbox_push(client_id=optimove.client.pk) == OutboxPushResult(failed=1)

    row = OptimoveOutbox.objects.get()
    assert (row.state, row.last_error) == (
        OutboxState.FAILED,
        "Optimove AddChannelTemplates rejected the credentials (401): "
        "check the client's Optimove credentials",
    )
    assert "not-the-key" not in row.last_error
