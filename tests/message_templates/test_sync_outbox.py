"""What the template services write to the outbox, in the change's own transaction, and how the push is
woken: one task per client after commit, and the periodic run for rows whose wake-up was lost."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.clients.models import Channel, Client
from apps.message_templates.models import MessageTemplate, OptimoveOutbox, OutboxState
from apps.message_templates.services import template_delete, template_sync_again, template_upsert
from apps.message_templates.sync import DUE_TASK, PUSH_TASK, SYNC_QUEUE
from apps.message_templates.tasks import optimove_sync_due
from config.celery import app as celery_app
from tests.clients.test_client_apply import apply, write
from tests.clients.test_client_apply_templates import templated_document
from tests.message_templates.conftest import make_channels, make_client
from tests.message_templates.sync_support import EMAIL_CONTENT, outbox, queued_pushes


def upsert(channel: Channel, template_id: int, name: str, **fields: Any) -> MessageTemplate:
    template, _ = template_upsert(
        channel=channel, template_id=template_id, name=name, **{**EMAIL_CONTENT, **fields}
    )
    return template


@transaction.atomic
def save_then_fail(channel: Channel) -> None:
    """A request that saves a template and then fails: its transaction rolls back."""
    upsert(channel, 14, "Welcome")
    raise RuntimeError("the request fails after the save")


@pytest.mark.django_db
def test_each_change_records_what_optimove_must_hear(channels: dict[str, Channel]) -> None:
    email = channels["email"]  # ChannelID 500

    welcome = upsert(email, 14, "Welcome")
    upsert(email, 14, "Welcome", text_body="Hello again {{ FirstName }}")  # content only
    upsert(email, 14, "Welcome back")  # rename
    upsert(email, 14, "Welcome back", is_active=False)  # deactivated
    upsert(email, 14, "Welcome back", subject="Off {{ FirstName }}")  # inactive: still nothing listed
    upsert(email, 14, "Welcome back", is_active=True)  # reactivated
    draft = upsert(email, 15, "Draft", is_active=False)  # created inactive
    template_delete(template=draft)  # never listed: nothing to delete
    template_delete(template=welcome)

    assert outbox() == [
        (500, "template", "add", "14", "Welcome", "pending"),
        (500, "template", "add", "14", "Welcome back", "pending"),
        (500, "template", "delete", "14", "", "pending"),
        (500, "template", "add", "14", "Welcome back", "pending"),
        (500, "template", "delete", "14", "", "pending"),
    ]
    assert set(OptimoveOutbox.objects.values_list("client__slug", flat=True)) == {"acme"}
    assert MessageTemplate.objects.count() == 0


@pytest.mark.django_db
def test_pushing_again_records_the_current_state(channels: dict[str, Channel]) -> None:
    active = upsert(channels["email"], 14, "Welcome")
    inactive = upsert(channels["email"], 15, "Old", is_active=False)
    OptimoveOutbox.objects.all().delete()

    template_sync_again(template=active)
    template_sync_again(template=inactive)

    assert outbox() == [
        (500, "template", "add", "14", "Welcome", "pending"),
        (500, "template", "delete", "15", "", "pending"),
    ]


@pytest.mark.django_db
def test_a_refused_change_records_nothing(channels: dict[str, Channel]) -> None:
    upsert(channels["email"], 14, "Welcome")

    with pytest.raises(ValidationError) as raised:
        upsert(channels["email"], 14, "   ")
    with pytest.raises(ValidationError):
        upsert(channels["email"], 15, "Broken", subject="{{ unclosed")

    assert raised.value.message_dict == {"name": ["A name is required: Optimove shows it to marketers."]}
    assert outbox() == [(500, "template", "add", "14", "Welcome", "pending")]
    assert MessageTemplate.objects.get().name == "Welcome"


@pytest.mark.django_db
def test_the_row_is_part_of_the_changes_transaction(channels: dict[str, Channel]) -> None:
    with pytest.raises(RuntimeError):
        save_then_fail(channels["email"])

    assert MessageTemplate.objects.count() == 0
    assert outbox() == []


@pytest.mark.django_db
def test_client_apply_records_creates_renames_and_pruned_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_OPTIMOVE_API_KEY", "opt-key")
    monkeypatch.setenv("ACME_SMTP_PASSWORD", "smtp-pw")
    apply(write(tmp_path, templated_document()), "--dry-run")
    assert outbox() == []

    apply(write(tmp_path, templated_document()))
    # Template 15 of channel 504 is inactive in the file: created, but not listed.
    assert outbox() == [
        (504, "template", "add", "14", "Spring welcome", "pending"),
        (505, "template", "add", "14", "Spring SMS", "pending"),
        (506, "template", "add", "30", "Order hook", "pending"),
    ]

    apply(write(tmp_path, templated_document()))
    assert len(outbox()) == 3  # the same file again: nothing changed, nothing recorded

    document = templated_document()
    document["channels"][0]["templates"][0]["name"] = "Spring hello"
    document["channels"][1]["templates"] = []
    del document["channels"][2]
    apply(write(tmp_path, document), "--prune")

    assert outbox()[3:] == [
        (504, "template", "add", "14", "Spring hello", "pending"),
        (505, "template", "delete", "14", "", "pending"),
        (506, "template", "delete", "30", "", "pending"),
    ]


@pytest.mark.django_db(transaction=True)
def test_one_transaction_of_changes_queues_one_push_after_commit(redis_client: Any) -> None:
    acme = make_client("acme")
    email = make_channels(acme)["email"]

    with transaction.atomic():
        upsert(email, 14, "Welcome")
        upsert(email, 15, "Reminder")
        upsert(email, 16, "Later")
        assert queued_pushes(redis_client) == []  # nothing before the commit

    assert queued_pushes(redis_client) == [(PUSH_TASK, {"client_id": acme.pk})]

    upsert(email, 17, "Another")  # the first task has not started: no second one
    assert queued_pushes(redis_client) == [(PUSH_TASK, {"client_id": acme.pk})]


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_queues_nothing(redis_client: Any) -> None:
    email = make_channels(make_client("acme"))["email"]

    with pytest.raises(RuntimeError):
        save_then_fail(email)

    assert queued_pushes(redis_client) == []


@pytest.mark.django_db
def test_the_periodic_run_queues_one_push_per_client_with_due_rows(redis_client: Any) -> None:
    # Rows written in a test transaction never commit, so their wake-up never runs: exactly the rows
    # a crash between commit and enqueue (or a Redis restart) leaves behind.
    acme, globex, initech = make_client("acme"), make_client("globex"), make_client("initech")
    upsert(make_channels(acme)["email"], 14, "Welcome")
    upsert(make_channels(globex)["email"], 14, "Hello")
    initech_email = make_channels(initech)["email"]
    upsert(initech_email, 14, "Waiting")
    upsert(initech_email, 15, "Pushed")
    # initech's rows: one waits out a backoff, one is done: neither is due.
    OptimoveOutbox.objects.filter(client=initech, key="14").update(
        attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    OptimoveOutbox.objects.filter(client=initech, key="15").update(state=OutboxState.DONE)
    assert queued_pushes(redis_client) == []

    optimove_sync_due()

    assert sorted(queued_pushes(redis_client), key=lambda t: t[1]["client_id"]) == [
        (PUSH_TASK, {"client_id": acme.pk}),
        (PUSH_TASK, {"client_id": globex.pk}),
    ]
    optimove_sync_due()  # their tasks have not started yet: not queued twice
    assert len(queued_pushes(redis_client)) == 2


@pytest.mark.django_db
def test_a_push_task_started_lets_the_next_change_queue_another(redis_client: Any) -> None:
    acme = make_client("acme")
    email = make_channels(acme)["email"]
    upsert(email, 14, "Welcome")
    optimove_sync_due()
    assert len(queued_pushes(redis_client)) == 1
    redis_client.delete(SYNC_QUEUE)  # a worker took the task...

    # ... and it starts: it pushes (acme has no credentials, so its rows wait) and frees the wake-up.
    from apps.message_templates.tasks import optimove_sync

    optimove_sync(acme.pk)
    optimove_sync_due()

    assert queued_pushes(redis_client) == [(PUSH_TASK, {"client_id": acme.pk})]


def test_the_beat_schedule_runs_the_periodic_push_every_30_seconds_on_the_reporting_queue() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["message-templates-optimove-sync"]

    assert entry["task"] == DUE_TASK
    assert entry["schedule"] == settings.OPTIMOVE_SYNC_INTERVAL_SECONDS == 30.0
    assert entry["options"]["queue"] == SYNC_QUEUE == "reporting"
    celery_app.loader.import_default_modules()
    assert {DUE_TASK, PUSH_TASK} <= set(celery_app.tasks)


@pytest.mark.django_db
def test_channel_delete_and_a_new_channel_id_take_templates_and_apps_along(
    channels: dict[str, Channel],
) -> None:
    from apps.clients import services
    from apps.clients.push_apps import push_app_upsert

    email, push = channels["email"], channels["push"]  # ChannelIDs 500 and 502
    upsert(email, 14, "Welcome")
    upsert(email, 15, "Old", is_active=False)
    push_app_upsert(channel=push, app_id="com.acme.ios", name="Acme iOS")
    push_app_upsert(channel=push, app_id="com.acme.beta", name="Beta", is_active=False)
    recorded = len(outbox())

    email.optimove_channel_id = 600
    services.channel_save(channel=email)
    push.name = "Push (renamed)"  # not an Optimove identity: nothing to tell
    services.channel_save(channel=push)
    assert outbox()[recorded:] == [
        (500, "template", "delete", "14", "", "pending"),
        (600, "template", "add", "14", "Welcome", "pending"),
    ]

    services.channel_delete(channel=push)
    assert outbox()[recorded + 2 :] == [(502, "app", "delete", "com.acme.ios", "", "pending")]
    assert not Channel.objects.filter(pk=push.pk).exists()
    assert Client.objects.get(slug="acme").optimove_outbox.count() == recorded + 3
