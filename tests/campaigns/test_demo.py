"""What `make run` offers a person: after the sandbox bootstrap, firing the demo campaign sends it."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from apps.campaigns.models import CampaignRun, Message
from apps.sandbox.models import SandboxAccount
from apps.sandbox.services import sandbox_fire
from tests.campaigns.harness import worker_env
from tests.conftest import wait_for

pytestmark = pytest.mark.worker


def test_the_bootstrapped_demo_campaign_goes_through_when_fired(
    web_server: Any, celery_worker: Any, celery_beat: Any, settings: Any
) -> None:
    env = worker_env()
    base = web_server(**env)
    settings.PUBLIC_BASE_URL = base
    call_command("sandbox_bootstrap", f"--public-base-url={base}")
    celery_worker(**env)
    celery_beat(**env)
    account = SandboxAccount.objects.get(name="local")
    # What `manage.py sandbox_fire --account local --event-type 13 --campaign-id 1111 --channel-id 504` does.
    [notification] = sandbox_fire(account=account, event_type_id=13, campaign_id=1111, channel_id=504)
    assert notification.status_code == 200
    wait_for(lambda: CampaignRun.objects.filter(state="completed").exists(), 60, "the demo run to complete")
    run = CampaignRun.objects.get()
    assert (run.client.slug, run.channel.optimove_channel_id, run.campaign_id, run.fetched_count) == (
        "demo",
        504,
        1111,
        1000,
    )
    assert Message.objects.filter(run=run, status="sent").count() == 1000
    # What `manage.py sandbox_fire --account local --event-type 11 --campaign-id 2001 --channel-id 520` does.
    [notification] = sandbox_fire(account=account, event_type_id=11, campaign_id=2001, channel_id=520)
    assert notification.status_code == 200
    wait_for(
        lambda: Message.objects.filter(run__campaign_id=2001, status="sent").exists(),
        10,
        "the trigger's message",
    )
    trigger = Message.objects.get(run__campaign_id=2001)
    assert (trigger.run.kind, trigger.run.channel.optimove_channel_id, trigger.customer_id) == (
        "realtime",
        520,
        "2001-0",
    )
