"""Real-time triggers with real processes: gunicorn serving the listener, one worker on the `realtime`
queue and one on `sends` that a big scheduled campaign keeps busy, and local webhook receivers."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
import requests

from apps.campaigns import services
from apps.campaigns.models import CampaignRun, Message, MessageStatus, RunState
from apps.clients.models import Channel, ChannelKind, Client
from apps.message_templates.models import MessageTemplate
from apps.optimove.listeners import listener_url
from tests.campaigns.harness import worker_env
from tests.conftest import wait_for
from tests.messages import messages_add
from tests.receivers import Received, http_receiver

pytestmark = pytest.mark.worker

SCHEDULED = 2000


def _slow(received: Received) -> tuple[int, dict[str, Any]]:
    time.sleep(0.05)  # a provider that takes 50 ms per message: the scheduled backlog lasts minutes
    return 200, {"ok": True}


def _hook_channel(client: Client, *, channel_id: int, url: str, realtime: bool) -> Channel:
    channel = Channel.objects.create(
        client=client,
        name=f"Hook {channel_id}",
        kind=ChannelKind.WEBHOOK,
        optimove_channel_id=channel_id,
        provider="webhook",
        provider_options={"url": url, "concurrency": 1},
        provider_secrets={"signing_secret": "s3cret"},
        is_realtime=realtime,
    )
    MessageTemplate.objects.create(
        client=client, channel=channel, template_id=7, name="T7", payload={"hi": "{{ FirstName }}"}
    )
    return channel


def test_a_trigger_is_sent_within_a_second_while_a_big_scheduled_campaign_is_queued(
    web_server: Any, celery_worker: Any, settings: Any
) -> None:
    settings.SEND_BATCH_SIZE = 100
    env = worker_env()
    base = web_server(**env)
    with http_receiver() as realtime_hook, http_receiver(respond=_slow) as scheduled_hook:
        client = Client.objects.create(slug="acme", name="Acme", optimove_base_url=base, optimove_api_key="k")
        scheduled = _hook_channel(client, channel_id=504, url=scheduled_hook.url, realtime=False)
        realtime = _hook_channel(client, channel_id=505, url=realtime_hook.url, realtime=True)
        run = CampaignRun.objects.create(
            client=client, channel=scheduled, campaign_id=1111, state=RunState.SENDING, paging_done=True
        )
        messages_add(run, SCHEDULED, template_id=7, prefix="s", attributes=lambda i: {"FirstName": f"S{i}"})
        celery_worker(queues="sends", concurrency=1, **env)
        celery_worker(queues="realtime", concurrency=2, **env)
        assert services.messages_dispatch(budget=SCHEDULED // 100) == SCHEDULED // 100  # all queued
        wait_for(lambda: scheduled_hook.count() > 0, 30, "the scheduled campaign to be sending")

        url = listener_url(client=client, channel_id=realtime.optimove_channel_id, public_base_url=base)
        body = {
            "eventTypeID": 11,
            "timeStamp": "2026-03-02 10:15:42",
            "campaignID": 2001,
            "channelID": 505,
            "templateID": 7,
            "customerID": "A8272",
            "personalization": {"FirstName": "Ada"},
        }
        posted_at = time.time()
        with requests.Session() as http:
            for _ in range(5):  # Optimove repeating itself
                assert http.post(url, json=body, timeout=5).status_code == 200
            wait_for(
                lambda: realtime_hook.count() >= 1, 10, "the trigger to reach the provider", interval=0.01
            )
            first_arrival = realtime_hook.received[0].at
            time.sleep(1)  # the same customer triggers again a second later
            assert (
                http.post(url, json={**body, "timeStamp": "2026-03-02 10:15:43"}, timeout=5).status_code
                == 200
            )
            wait_for(lambda: realtime_hook.count() >= 2, 10, "the second trigger", interval=0.01)
        time.sleep(1.5)  # room for any duplicate to show up

        latency = first_arrival - posted_at
        print(
            f"trigger to provider: {latency * 1000:.0f} ms while {SCHEDULED} scheduled messages were queued"
        )
        assert latency < 1.0
        bodies = [r.json() for r in realtime_hook.received]
        assert [b["customer_id"] for b in bodies] == ["A8272", "A8272"]
        assert [b["content"] for b in bodies] == [{"hi": "Ada"}, {"hi": "Ada"}]
        assert len({b["id"] for b in bodies}) == 2
        # The scheduled campaign was (and still is) far from done: the trigger did not wait for it.
        assert Message.objects.filter(run=run, status=MessageStatus.SENT).count() < SCHEDULED // 2
        assert Counter(Message.objects.filter(run__channel=realtime).values_list("status", flat=True)) == {
            "sent": 2
        }
