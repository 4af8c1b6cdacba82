"""The whole scheduled flow from the outside: the sandbox plays Optimove, real web, worker and beat
processes run the platform, and a local SMTP server and HTTP server play the providers."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from apps.campaigns.models import CampaignRun, Message
from apps.optimove.listeners import listeners_sync
from apps.sandbox.models import SandboxAccount
from apps.sandbox.services import sandbox_fire
from tests.campaigns.harness import (
    email_channel,
    expected_customers,
    make_client,
    sandbox_campaign,
    webhook_channel,
    worker_env,
)
from tests.conftest import wait_for
from tests.receivers import http_receiver, smtp_receiver

pytestmark = pytest.mark.worker

DISPATCH_INTERVAL = 1.0
CUSTOMERS = 1500  # per channel: 3,000 in all, a third due now, a third at +5 s, a third at +15 s
# No message before its send time, none later than the dispatch interval + 2 s after it. Lateness counts
# from the later of the send time and the moment the customer's row was stored: a customer due "now"
# cannot go out before Optimove has listed it. Each wave's figures are printed.
TARGET = DISPATCH_INTERVAL + 2


def _runs_completed(n: int) -> bool:
    return CampaignRun.objects.filter(state="completed").count() == n


def test_scheduled_campaign_reaches_every_customer_once_on_time(
    web_server: Any, celery_worker: Any, celery_beat: Any, settings: Any
) -> None:
    env = worker_env(DISPATCH_INTERVAL_SECONDS=DISPATCH_INTERVAL)
    base = web_server(**env)
    settings.PUBLIC_BASE_URL = base
    account = SandboxAccount.objects.create(name="e2e")
    with smtp_receiver() as smtp, http_receiver() as hook:
        client = make_client(base_url=base, account=account)
        email = email_channel(client, smtp_port=smtp.port)
        webhook = webhook_channel(client, url=hook.url)
        changes = listeners_sync(client=client)
        assert {c.action for c in changes} == {"register"}
        celery_worker(queues="realtime,audience", concurrency=2, **env)
        # One sends process per core: a batch already sends over several connections at once, and
        # more processes than cores only make them take turns on the CPU.
        celery_worker(queues="sends", concurrency=2, **env)
        celery_beat(**env)
        mail_campaign = sandbox_campaign(account, campaign_id=1111, channel_id=504, size=CUSTOMERS, seed=7)
        hook_campaign = sandbox_campaign(account, campaign_id=1111, channel_id=510, size=CUSTOMERS, seed=8)
        for channel in (email, webhook):
            [notification] = sandbox_fire(
                account=account, event_type_id=13, campaign_id=1111, channel_id=channel.optimove_channel_id
            )
            assert notification.status_code == 200
        wait_for(lambda: _runs_completed(2), 90, "both runs to complete", interval=0.5)
        # Accepted by the receivers before being marked sent; let the last ones reach the test's lists.
        wait_for(
            lambda: smtp.count() >= CUSTOMERS and hook.count() >= CUSTOMERS, 15, "the receivers to record all"
        )

    assert Message.objects.exclude(status="sent").count() == 0
    # Email: every customer once, through the right template, with the right values, on time.
    expected = expected_customers(mail_campaign)
    recipients = Counter(mail.rcpt_tos[0] for mail in smtp.mails)
    assert len(smtp.mails) == len(expected)
    assert set(recipients) == {e.attributes["Email"] for e in expected.values()}
    assert max(recipients.values()) == 1
    lateness: list[tuple[datetime, float]] = []
    known = _stored_at()
    for e in expected.values():
        [mail] = [m for m in smtp.mails if m.rcpt_tos[0] == e.attributes["Email"]]
        assert mail.message["Subject"] == f"T{e.template_id} for {e.attributes['FirstName']}"
        text = mail.message.get_body(preferencelist=("plain",)).get_content().strip()
        # Every campaign email ends with the customer's unsubscribe link (tests/subscriptions follow it).
        text, unsubscribe = text.replace("\r\n", "\n").split("\n\nUnsubscribe: ")
        assert text == f"Hello {e.attributes['FirstName']} from {e.attributes['Country']} ({e.template_id})"
        assert "/t/u/acme/504/" in unsubscribe
        assert mail.at >= e.send_at.timestamp()
        lateness.append((e.send_at, mail.at - max(e.send_at.timestamp(), known[(504, e.customer_id)])))
    _assert_on_time(lateness)

    # Webhook: every customer once, right template and merged values, on time.
    expected = expected_customers(hook_campaign)
    bodies = [(r, r.json()) for r in hook.received]
    assert Counter(b["customer_id"] for _, b in bodies) == Counter(dict.fromkeys(expected, 1))
    lateness = []
    for received, body in bodies:
        e = expected[body["customer_id"]]
        assert body["content"] == {
            "greeting": f"Hi {e.attributes['FirstName']}",
            "country": e.attributes["Country"],
            "template": str(e.template_id),
        }
        assert received.headers["idempotency-key"] == body["id"]
        assert received.at >= e.send_at.timestamp()
        lateness.append((e.send_at, received.at - max(e.send_at.timestamp(), known[(510, e.customer_id)])))
    _assert_on_time(lateness)


def _stored_at() -> dict[tuple[int, str], float]:
    rows = Message.objects.values_list("run__channel__optimove_channel_id", "customer_id", "history")
    return {
        (channel, customer): datetime.fromisoformat(history[0]["at"]).timestamp()
        for channel, customer, history in rows
    }


def _assert_on_time(waves: list[tuple[datetime, float]]) -> None:
    by_wave: dict[datetime, list[float]] = {}
    for send_at, late_by in waves:
        by_wave.setdefault(send_at, []).append(late_by)
    for send_at, values in sorted(by_wave.items()):
        values.sort()
        median, last = values[len(values) // 2], values[-1]
        print(f"wave {send_at:%H:%M:%S}: {len(values)}, lateness median {median:.2f} s, worst {last:.2f} s")
    lateness = [late_by for _, late_by in waves]
    worst = max(lateness)
    late = sum(1 for x in lateness if x > TARGET)
    print(f"lateness: {late} of {len(lateness)} past the {TARGET} s target, worst {worst:.2f} s")
    assert worst <= TARGET, (
        f"{late} messages later than {TARGET} s after their send time (worst {worst:.2f} s)"
    )
