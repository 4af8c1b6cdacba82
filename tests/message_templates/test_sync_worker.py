"""End to end with a real Celery worker on the `reporting` queue (slow: it starts one, a few seconds):
admin changes reach the sandbox's list through the after-commit wake-up, and a change whose wake-up was
lost is pushed by the periodic run."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client as HttpClient

from apps.message_templates import sync
from apps.message_templates.models import MessageTemplate
from apps.message_templates.services import template_upsert
from apps.message_templates.tasks import optimove_sync_due
from tests.conftest import wait_for
from tests.message_templates.sync_support import (
    EMAIL_CONTENT,
    Optimove,
    optimove_fixture,
    outbox,
    sandbox_server,
)
from tests.message_templates.test_admin import ADD, CHANGELIST, form_data

__all__ = ["optimove_fixture", "sandbox_server"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_changes_and_a_lost_wake_up_reach_the_sandbox_through_a_worker(
    optimove: Optimove, celery_worker: Any, client: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    celery_worker(queues="reporting", concurrency=1)
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    for template_id, name in ((14, "Welcome"), (15, "Reminder"), (16, "Goodbye")):
        response = client.post(
            ADD,
            form_data(
                client=optimove.client.pk,
                channel=optimove.email.pk,
                template_id=str(template_id),
                name=name,
                **EMAIL_CONTENT,
            ),
        )
        assert response.status_code == 302

    wait_for(lambda: optimove.templates() == {14: "Welcome", 15: "Reminder", 16: "Goodbye"}, 20, "the adds")

    doomed = MessageTemplate.objects.filter(template_id__in=[15, 16]).values_list("pk", flat=True)
    response = client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": list(doomed), "post": "yes"}
    )
    assert response.status_code == 302
    wait_for(lambda: optimove.templates() == {14: "Welcome"}, 20, "the bulk delete")

    # A change committed, and its wake-up lost (a crash right after the commit, a Redis restart).
    monkeypatch.setattr(sync, "outbox_push_soon", lambda *, client_id: False)
    template_upsert(channel=optimove.email, template_id=17, name="Later", **EMAIL_CONTENT)
    monkeypatch.undo()
    assert outbox(key="17") == [(504, "template", "add", "17", "Later", "pending")]

    optimove_sync_due()  # what beat runs every OPTIMOVE_SYNC_INTERVAL_SECONDS

    wait_for(lambda: optimove.templates() == {14: "Welcome", 17: "Later"}, 20, "the periodic push")
    wait_for(lambda: not outbox(state="pending"), 10, "every row to be marked")
    assert optimove.calls("DeleteChannelTemplates") == [200]
