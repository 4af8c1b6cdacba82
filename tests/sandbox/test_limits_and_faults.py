"""The rate limit Optimove applies (shared by every web worker) and the faults the sandbox injects."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from django.test import Client as HttpClient

from apps.sandbox.models import SandboxAccount, SandboxCall, SandboxListener, SandboxMetric, SandboxTemplate
from tests.sandbox.conftest import Api

LISTENERS = "/current/general/GetRegisteredEventListeners"
RATE_LIMITED = {
    "status": 429,
    "error": "Too Many Requests",
    "message": "You have exceeded the rate limit for this API group. Please retry later.",
}


@pytest.mark.django_db
def test_the_51st_call_within_10_seconds_gets_429_at_the_real_defaults(api: Api, settings: Any) -> None:
    assert (settings.SANDBOX_RATE_LIMIT_REQUESTS, settings.SANDBOX_RATE_LIMIT_WINDOW_SECONDS) == (50, 10.0)

    statuses = [api.get(LISTENERS).status_code for _ in range(50)]
    over = api.get(LISTENERS)

    assert statuses == [200] * 50
    assert over.status_code == 429
    assert over.json() == RATE_LIMITED


@pytest.mark.django_db
def test_a_call_over_the_limit_is_not_counted_and_the_window_slides(api: Api, settings: Any) -> None:
    # Real time: the window has to pass. One second keeps the test short and the margins wide.
    settings.SANDBOX_RATE_LIMIT_REQUESTS = 5
    settings.SANDBOX_RATE_LIMIT_WINDOW_SECONDS = 1.0
    started = time.monotonic()
    accepted = [api.get(LISTENERS).status_code for _ in range(5)]
    time.sleep(max(0.0, started + 0.5 - time.monotonic()))
    refused = [api.get(LISTENERS).status_code for _ in range(5)]
    time.sleep(max(0.0, started + 1.15 - time.monotonic()))

    after_window = api.get(LISTENERS)

    assert accepted == [200] * 5
    assert refused == [429] * 5
    # The refused calls are still inside the window: had they counted, this would be refused too.
    assert after_window.status_code == 200


@pytest.mark.django_db
def test_rate_limit_is_per_account(api: Api, client: HttpClient, settings: Any) -> None:
    settings.SANDBOX_RATE_LIMIT_REQUESTS = 2
    SandboxAccount.objects.create(name="other", api_key="key-other")

    mine = [api.get(LISTENERS).status_code for _ in range(3)]
    theirs = client.get(LISTENERS, headers={"X-API-KEY": "key-other"})

    assert mine == [200, 200, 429]
    assert theirs.status_code == 200


@pytest.mark.django_db
def test_a_refused_write_stores_nothing(api: Api, account: SandboxAccount, settings: Any) -> None:
    settings.SANDBOX_RATE_LIMIT_REQUESTS = 1
    api.get(LISTENERS)

    response = api.post(
        "/current/integrations/AddChannelTemplates", [{"TemplateID": 1, "TemplateName": "A"}], ChannelID=1
    )

    assert response.status_code == 429
    assert not SandboxTemplate.objects.exists()


@pytest.mark.django_db
def test_no_429_when_the_account_does_not_enforce_the_limit(
    api: Api, account: SandboxAccount, settings: Any
) -> None:
    settings.SANDBOX_RATE_LIMIT_REQUESTS = 5
    account.enforce_rate_limit = False
    account.save()

    statuses = {api.get(LISTENERS).status_code for _ in range(20)}

    assert statuses == {200}


def test_the_limit_is_shared_by_every_process(web_server: Any, redis_client: Any, client: HttpClient) -> None:
    """25 calls answered in this process, 35 by two gunicorn workers: together exactly 50 get through."""
    SandboxAccount.objects.create(name="acme", api_key="key-acme")
    base = web_server(workers=2)

    here = [client.get(LISTENERS, headers={"X-API-KEY": "key-acme"}).status_code for _ in range(25)]
    there = []
    for _ in range(35):
        with requests.Session() as session:  # a new connection each time spreads calls over the workers
            there.append(
                session.get(f"{base}{LISTENERS}", headers={"X-API-KEY": "key-acme"}, timeout=10).status_code
            )

    assert here == [200] * 25
    assert there == [200] * 25 + [429] * 10
    assert SandboxCall.objects.filter(status=429).count() == 10


@pytest.mark.django_db
def test_fault_rate_1_answers_only_fault_statuses_and_stores_nothing(
    api: Api, account: SandboxAccount
) -> None:
    account.fault_rate = 1.0
    account.fault_statuses = [500, 503]
    account.save()

    statuses = set()
    for i in range(20):
        statuses.add(
            api.post(
                "/current/integrations/UpdateCampaignMetrics",
                [{"ChannelID": 1, "CampaignID": 1, "TemplateID": 1, "MetricID": 0, "MetricValue": i}],
            ).status_code
        )
        statuses.add(
            api.post(
                "/current/general/RegisterEventListener",
                {"EventTypeID": 13, "ListenerURL": "http://x.test/", "ChannelID": i + 1},
            ).status_code
        )

    assert statuses == {500, 503}
    assert not SandboxMetric.objects.exists()
    assert not SandboxListener.objects.exists()


@pytest.mark.django_db
def test_an_injected_429_has_optimoves_body(api: Api, account: SandboxAccount) -> None:
    account.fault_rate = 1.0
    account.fault_statuses = [429]
    account.save()

    response = api.get(LISTENERS)

    assert (response.status_code, response.json()) == (429, RATE_LIMITED)


@pytest.mark.django_db
def test_fault_rate_0_injects_nothing(api: Api, account: SandboxAccount) -> None:
    account.enforce_rate_limit = False
    account.fault_rate = 0.0
    account.save()

    statuses = {api.get(LISTENERS).status_code for _ in range(30)}

    assert statuses == {200}


@pytest.mark.django_db
def test_fault_statuses_outside_4xx_and_5xx_are_refused_by_validation(account: SandboxAccount) -> None:
    from django.core.exceptions import ValidationError

    account.fault_statuses = [200]
    with pytest.raises(ValidationError, match="between 400 and 599"):
        account.full_clean()
