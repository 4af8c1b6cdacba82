"""Retrying what can heal (connection errors, timeouts, 429, 5xx) and nothing else."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
import requests
import responses

from apps.optimove.client import OptimoveClient
from apps.optimove.errors import (
    OptimoveAuthError,
    OptimoveRateLimited,
    OptimoveRetryableError,
    OptimoveTerminalError,
)
from apps.optimove.types import Credentials, EventListener
from tests.optimove.conftest import API_KEY, BASE, UNLIMITED, fixture, url

LISTENERS = url("current/general/GetRegisteredEventListeners")
METRICS = url("current/integrations/UpdateCampaignMetrics")
ONE_LISTENER = [{"EventTypeID": 13, "ListenerURL": "https://p.test/l", "ChannelID": 504}]


def client(redis_client: Any, max_retries: int = 3) -> OptimoveClient:
    return OptimoveClient(
        Credentials(base_url=BASE, api_key=API_KEY),
        redis=redis_client,
        max_retries=max_retries,
        rate_limit=UNLIMITED,
    )


def test_429_then_200_succeeds_in_two_calls(redis_client: Any, mocked: responses.RequestsMock) -> None:
    mocked.get(LISTENERS, status=429, json=fixture("error_429_rate_limit.json"))
    mocked.get(LISTENERS, json=ONE_LISTENER)

    assert client(redis_client).get_registered_event_listeners() == [
        EventListener(13, "https://p.test/l", 504)
    ]
    assert len(mocked.calls) == 2


def test_503_500_then_200_succeeds_in_three_calls(redis_client: Any, mocked: responses.RequestsMock) -> None:
    mocked.get(LISTENERS, status=503, body="Service Unavailable")
    mocked.get(LISTENERS, status=500, body="")
    mocked.get(LISTENERS, json=ONE_LISTENER)

    assert len(client(redis_client).get_registered_event_listeners()) == 1
    assert len(mocked.calls) == 3


def test_a_post_is_retried_with_the_same_body(redis_client: Any, mocked: responses.RequestsMock) -> None:
    from apps.optimove.types import CampaignMetric

    mocked.post(METRICS, status=502)
    mocked.post(METRICS, body="")

    client(redis_client).update_campaign_metrics(metrics=[CampaignMetric(504, 1, 14, 0, 5)])

    assert len(mocked.calls) == 2
    assert mocked.calls[0].request.body == mocked.calls[1].request.body


@pytest.mark.parametrize("status", [400, 404, 405])
def test_client_errors_are_terminal_after_one_call(
    redis_client: Any, mocked: responses.RequestsMock, status: int
) -> None:
    mocked.get(LISTENERS, status=status, body="ChannelID is missing")

    with pytest.raises(OptimoveTerminalError) as caught:
        client(redis_client).get_registered_event_listeners()

    assert type(caught.value) is OptimoveTerminalError
    assert str(caught.value) == f"Optimove GetRegisteredEventListeners answered {status}"
    assert caught.value.status == status
    assert caught.value.function == "GetRegisteredEventListeners"
    assert len(mocked.calls) == 1


def test_persistent_502_raises_retryable_after_max_retries_plus_one_calls(
    redis_client: Any, mocked: responses.RequestsMock
) -> None:
    mocked.get(LISTENERS, status=502)

    with pytest.raises(OptimoveRetryableError) as caught:
        client(redis_client, max_retries=3).get_registered_event_listeners()

    assert type(caught.value) is OptimoveRetryableError
    assert str(caught.value) == "Optimove GetRegisteredEventListeners answered 502 after 4 attempts"
    assert caught.value.status == 502
    assert len(mocked.calls) == 4


def test_persistent_429_raises_rate_limited(redis_client: Any, mocked: responses.RequestsMock) -> None:
    mocked.get(LISTENERS, status=429, json=fixture("error_429_rate_limit.json"))

    with pytest.raises(OptimoveRateLimited, match="answered 429 after 3 attempts"):
        client(redis_client, max_retries=2).get_registered_event_listeners()
    assert len(mocked.calls) == 3


def test_max_retries_defaults_to_the_setting(
    redis_client: Any, mocked: responses.RequestsMock, settings: Any
) -> None:
    settings.OPTIMOVE_MAX_RETRIES = 1
    mocked.get(LISTENERS, status=500)
    api = OptimoveClient(
        Credentials(base_url=BASE, api_key=API_KEY), redis=redis_client, rate_limit=UNLIMITED
    )

    with pytest.raises(OptimoveRetryableError):
        api.get_registered_event_listeners()
    assert len(mocked.calls) == 2


def test_connection_error_then_200_succeeds(redis_client: Any, mocked: responses.RequestsMock) -> None:
    mocked.get(LISTENERS, body=requests.exceptions.ConnectionError("connection refused"))
    mocked.get(LISTENERS, json=ONE_LISTENER)

    assert len(client(redis_client).get_registered_event_listeners()) == 1
    assert len(mocked.calls) == 2


def test_timeouts_to_the_end_raise_retryable_with_the_cause(
    redis_client: Any, mocked: responses.RequestsMock
) -> None:
    mocked.get(LISTENERS, body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(OptimoveRetryableError) as caught:
        client(redis_client, max_retries=1).get_registered_event_listeners()

    assert str(caught.value) == (
        "Optimove GetRegisteredEventListeners: could not reach Optimove (timeout) after 2 attempts"
    )
    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, requests.exceptions.Timeout)
    assert len(mocked.calls) == 2


def test_401_and_a_403_with_an_api_key_are_auth_errors_without_retry(
    redis_client: Any, mocked: responses.RequestsMock
) -> None:
    mocked.get(LISTENERS, status=401)
    mocked.get(LISTENERS, status=403)
    api = client(redis_client)

    with pytest.raises(
        OptimoveAuthError, match=r"GetRegisteredEventListeners rejected the credentials \(401\)"
    ):
        api.get_registered_event_listeners()
    with pytest.raises(OptimoveAuthError, match=r"rejected the credentials \(403\)"):
        api.get_registered_event_listeners()
    assert len(mocked.calls) == 2


def test_backoff_is_exponential_with_full_jitter(
    redis_client: Any, mocked: responses.RequestsMock, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sleep n is uniform(0, min(max, base * 2**n)): with base 1 and max 3 the caps are 1, 2, 3, 3."""
    settings.OPTIMOVE_BACKOFF_BASE_SECONDS = 1.0
    settings.OPTIMOVE_BACKOFF_MAX_SECONDS = 3.0
    slept: list[float] = []
    monkeypatch.setattr("apps.optimove.client.time.sleep", slept.append)
    mocked.get(LISTENERS, status=503)

    random.seed(1234)
    expected = [random.uniform(0, cap) for cap in (1, 2, 3, 3)]
    random.seed(1234)
    with pytest.raises(OptimoveRetryableError):
        client(redis_client, max_retries=4).get_registered_event_listeners()

    assert slept == expected
    assert len(mocked.calls) == 5


def test_one_log_line_per_attempt_with_function_status_duration_and_attempt(
    redis_client: Any, mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.get(LISTENERS, status=503)
    mocked.get(LISTENERS, json=ONE_LISTENER)

    with caplog.at_level(logging.INFO, logger="apps.optimove.client"):
        client(redis_client).get_registered_event_listeners()

    records = [record for record in caplog.records if record.name == "apps.optimove.client"]
    assert [record.getMessage().split(" in ")[0] for record in records] == [
        "optimove GetRegisteredEventListeners 503",
        "optimove GetRegisteredEventListeners 200",
    ]
    assert [(r.optimove_function, r.http_status, r.attempt) for r in records] == [  # type: ignore[attr-defined]
        ("GetRegisteredEventListeners", 503, 1),
        ("GetRegisteredEventListeners", 200, 2),
    ]
    assert all(isinstance(r.duration_ms, int) and r.duration_ms >= 0 for r in records)  # type: ignore[attr-defined]
    assert API_KEY not in caplog.text


def test_without_redis_nothing_is_sent_and_the_error_is_retryable(mocked: responses.RequestsMock) -> None:
    """The shared limiter cannot vouch for the rate without Redis, so the call waits for a retry."""
    import redis

    from tools.devservers import free_port

    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    api = OptimoveClient(Credentials(base_url=BASE, api_key=API_KEY), redis=dead, rate_limit=UNLIMITED)
    mocked.get(LISTENERS, json=[])

    with pytest.raises(OptimoveRetryableError) as caught:
        api.get_registered_event_listeners()

    assert str(caught.value) == (
        "Optimove GetRegisteredEventListeners: Redis is unavailable for the shared rate limit"
    )
    assert len(mocked.calls) == 0
