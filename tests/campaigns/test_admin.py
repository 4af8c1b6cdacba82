"""The admin pages an operator uses to watch and steer campaigns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client as HttpClient

from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunState
from apps.clients.models import Channel, ChannelKind, Client
from apps.optimove.models import Notification

pytestmark = pytest.mark.django_db


def make_run(slug: str, statuses: list[str]) -> CampaignRun:
    client = Client.objects.create(slug=slug, name=slug, optimove_base_url="https://api5.optimove.net")
    channel = Channel.objects.create(
        client=client, name="Email", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="console"
    )
    run = CampaignRun.objects.create(
        client=client,
        channel=channel,
        campaign_id=1111,
        state=RunState.SENDING,
        paging_done=True,
        fetched_count=len(statuses),
    )
    now = datetime.now(UTC)
    for i, status in enumerate(statuses):
        Message.objects.create(
            run=run,
            customer_id=f"{slug}-{i}",
            template_id=14,
            idempotency_key=f"{slug}{i}",
            send_at=now,
            due_at=now,
            status=status,
            history=[
                {"status": "pending", "at": now.isoformat()},
                {"status": status, "at": now.isoformat(), "reason": "because"},
            ],
        )
    Notification.objects.create(
        client=client,
        event_type_id=2,
        body={"EventTypeID": 2},
        acted=False,
        outcome="not acted on: event type 2 (all campaigns processed)",
    )
    return run


@pytest.fixture
def superuser(client: HttpClient) -> HttpClient:
    client.force_login(User.objects.create_superuser("root", "root@example.test", "pw"))
    return client


def test_runs_show_their_progress(superuser: HttpClient) -> None:
    make_run("acme", ["sent", "sent", "failed", "pending"])
    page = superuser.get("/admin/campaigns/campaignrun/").content.decode()
    assert "fetched 4 · 2 sent, 1 failed, 0 skipped, 0 cancelled" in page


def test_pause_resume_cancel_and_retry_from_the_admin(superuser: HttpClient) -> None:
    run = make_run("acme", ["failed", "pending", "pending"])
    url = "/admin/campaigns/campaignrun/"

    def act(action: str) -> Any:
        return superuser.post(url, {"action": action, "_selected_action": [run.pk]}, follow=True)

    assert "Paused 1 run(s)." in act("pause_runs").content.decode()
    assert CampaignRun.objects.get(pk=run.pk).state == RunState.PAUSED
    assert "Resumed 1 run(s)." in act("resume_runs").content.decode()
    assert "1 failed message(s) will be retried." in act("retry_failed_messages").content.decode()
    assert "Cancelled 3 pending message(s)." in act("cancel_runs").content.decode()
    assert set(Message.objects.filter(run=run).values_list("status", flat=True)) == {MessageStatus.CANCELLED}


def test_messages_are_found_by_customer_id_with_their_history(superuser: HttpClient) -> None:
    make_run("acme", ["sent", "failed"])
    found = superuser.get("/admin/campaigns/message/", {"q": "acme-1"}).content.decode()
    assert "acme-1" in found
    assert "acme-0" not in found
    message = Message.objects.get(customer_id="acme-1")
    detail = superuser.get(f"/admin/campaigns/message/{message.pk}/change/").content.decode()
    assert "failed because" in detail


def test_notifications_not_acted_on_are_listed(superuser: HttpClient) -> None:
    make_run("acme", [])
    page = superuser.get("/admin/optimove/notification/", {"acted__exact": "0"}).content.decode()
    assert "not acted on: event type 2 (all campaigns processed)" in page


def test_a_staff_user_limited_to_one_client_sees_only_its_runs_and_messages(client: HttpClient) -> None:
    mine = make_run("mine", ["sent"])
    theirs = make_run("theirs", ["sent"])
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_campaignrun", "change_campaignrun", "view_message", "view_notification"]
        )
    )
    mine.client.admins.add(staff)
    client.force_login(staff)
    runs = client.get("/admin/campaigns/campaignrun/").content.decode()
    assert "mine" in runs
    assert "theirs" not in runs
    messages = client.get("/admin/campaigns/message/").content.decode()
    assert "mine-0" in messages
    assert "theirs-0" not in messages
    other = Message.objects.get(run=theirs)
    assert client.get(f"/admin/campaigns/message/{other.pk}/change/").status_code in (302, 403, 404)
    client.post("/admin/campaigns/campaignrun/", {"action": "cancel_runs", "_selected_action": [theirs.pk]})
    assert Message.objects.get(run=theirs).status == MessageStatus.SENT
