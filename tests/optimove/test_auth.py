"""Legacy login: one token for every process (shared through Redis), one login at a time, and a 403
healed by exactly one shared re-login.

The fake Optimove below behaves like the real one: a login while a token is still valid is a 429, an
unknown or expired token is a 403, bad credentials are a 401.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest
import responses

from apps.optimove.auth import SharedLoginToken
from apps.optimove.client import OptimoveClient
from apps.optimove.errors import OptimoveAuthError
from apps.optimove.types import AttributeValue, Credentials, CustomerAttributeUpdate
from tests.optimove.conftest import BASE, UNLIMITED, body, url

LOGIN = url("current/general/login")
LISTENERS = url("current/general/GetRegisteredEventListeners")
USERNAME = "partner-user"
PASSWORD = "pw-S3cret-9"


class FakeOptimove:
    def __init__(self, mocked: responses.RequestsMock, *, barrier: threading.Barrier | None = None) -> None:
        self.logins = 0
        self.valid: set[str] = set()
        self.tokens_seen: list[str] = []
        self.barrier = barrier
        self.lock = threading.Lock()
        mocked.add_callback(responses.POST, LOGIN, callback=self.login)
        mocked.add_callback(responses.GET, LISTENERS, callback=self.listeners)
        mocked.add_callback(responses.POST, url("customers/UpdateCustomerAttributes"), callback=self.write)

    def login(self, request: Any) -> tuple[int, dict[str, str], str]:
        credentials = json.loads(request.body)
        if credentials != {"UserName": USERNAME, "Password": PASSWORD}:
            return 401, {}, '"Invalid credentials"'
        with self.lock:
            if self.valid:
                return 429, {}, '{"status":429,"error":"Too Many Requests"}'
            self.logins += 1
            token = f"tok-{self.logins}"
            self.valid.add(token)
        return 200, {}, json.dumps(token)

    def expire_all(self) -> None:
        self.valid.clear()

    def _authorised(self, request: Any) -> bool:
        token = request.headers.get("Authorization-Token", "")
        with self.lock:
            self.tokens_seen.append(token)
            ok = token in self.valid
        if not ok and self.barrier is not None:
            # Hold each rejected request until every thread has sent its own with the same old token.
            self.barrier.wait(timeout=10)
        return ok

    def listeners(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return 403, {}, '"Authorization-Token expired"'
        return 200, {}, "[]"

    def write(self, request: Any) -> tuple[int, dict[str, str], str]:
        if not self._authorised(request):
            return 403, {}, '"Authorization-Token expired"'
        return 200, {}, ""


def legacy_client(redis_client: Any, password: str = PASSWORD) -> OptimoveClient:
    return OptimoveClient(
        Credentials(base_url=BASE, username=USERNAME, password=password),
        redis=redis_client,
        rate_limit=UNLIMITED,
        max_retries=2,
    )


def test_one_login_serves_many_calls_and_many_clients(
    redis_client: Any, mocked: responses.RequestsMock
) -> None:
    fake = FakeOptimove(mocked)
    clients = [legacy_client(redis_client) for _ in range(3)]  # as in three worker processes

    for api in clients:
        api.get_registered_event_listeners()
        api.get_registered_event_listeners()

    assert fake.logins == 1
    assert fake.tokens_seen == ["tok-1"] * 6
    login_call = mocked.calls[0]
    assert login_call.request.url == LOGIN
    assert body(login_call) == {"UserName": USERNAME, "Password": PASSWORD}
    assert login_call.request.headers["Content-Type"] == "application/json"
    for call in mocked.calls[1:]:
        assert call.request.headers["Authorization-Token"] == "tok-1"
        assert "X-API-KEY" not in call.request.headers
    # the token is stored under a hash, never under (or as) a secret
    keys = [key.decode() for key in redis_client.keys("optimove:token:*")]
    assert keys == [f"optimove:token:{clients[0].credentials.rate_limit_key}"]
    assert PASSWORD not in keys[0]
    assert USERNAME not in keys[0]


def test_an_expired_token_is_replaced_by_one_login_shared_by_concurrent_callers(
    redis_client: Any, mocked: responses.RequestsMock
) -> None:
    fake = FakeOptimove(mocked)
    first, second = legacy_client(redis_client), legacy_client(redis_client)
    first.get_registered_event_listeners()
    assert fake.logins == 1

    fake.expire_all()  # 20 idle minutes later, Optimove has dropped tok-1
    fake.barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def call(api: OptimoveClient) -> None:
        try:
            api.update_customer_attributes(
                updates=[CustomerAttributeUpdate("1", (AttributeValue("Tier", "gold"),))]
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(api,)) for api in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert errors == []
    assert fake.logins == 2  # one re-login for both; a second one would have been a 429
    assert fake.tokens_seen == ["tok-1", "tok-1", "tok-1", "tok-2", "tok-2"]
    write_calls = [call for call in mocked.calls if call.request.url.endswith("UpdateCustomerAttributes")]
    assert [call.response.status_code for call in write_calls] == [403, 403, 200, 200]


def test_a_403_again_after_the_fresh_login_is_an_auth_error(
    redis_client: Any, mocked: responses.RequestsMock
) -> None:
    fake = FakeOptimove(mocked)
    api = legacy_client(redis_client)

    def always_rejected(request: Any) -> tuple[int, dict[str, str], str]:
        fake.expire_all()  # Optimove drops every token this user gets (e.g. it lacks API rights)
        return 403, {}, '"Authorization-Token expired"'

    mocked.remove(responses.GET, LISTENERS)
    mocked.add_callback(responses.GET, LISTENERS, callback=always_rejected)

    with pytest.raises(OptimoveAuthError) as caught:
        api.get_registered_event_listeners()

    assert str(caught.value) == "Optimove GetRegisteredEventListeners rejected the credentials (403)"
    assert [call.request.url for call in mocked.calls] == [LOGIN, LISTENERS, LOGIN, LISTENERS]
    assert [call.response.status_code for call in mocked.calls] == [200, 403, 200, 403]
    assert [call.request.headers["Authorization-Token"] for call in mocked.calls[1::2]] == ["tok-1", "tok-2"]
    assert fake.logins == 2


def test_bad_credentials_401_at_login_is_an_auth_error_without_retry(
    redis_client: Any, mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    FakeOptimove(mocked)

    with caplog.at_level(logging.INFO), pytest.raises(OptimoveAuthError) as caught:
        legacy_client(redis_client, password="wrong-Pa55").get_registered_event_listeners()

    assert str(caught.value) == "Optimove login rejected the credentials (401)"
    assert caught.value.status == 401
    assert [call.request.url for call in mocked.calls] == [LOGIN]
    assert redis_client.keys("optimove:token:*") == []
    assert "wrong-Pa55" not in caplog.text
    assert PASSWORD not in caplog.text


def test_the_token_never_reaches_the_logs(
    redis_client: Any, mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    FakeOptimove(mocked)
    with caplog.at_level(logging.DEBUG):
        legacy_client(redis_client).get_registered_event_listeners()
    assert "optimove login 200" in caplog.text
    assert "tok-1" not in caplog.text
    assert PASSWORD not in caplog.text


# The token store on its own: the compare-and-delete that keeps a late 403 from wasting a fresh token.


def store(redis_client: Any, logins: list[str]) -> SharedLoginToken:
    def login() -> str:
        logins.append(f"tok-{len(logins) + 1}")
        return logins[-1]

    return SharedLoginToken(redis_client, key="k1", login=login, lock_timeout=5, wait_timeout=5)


def test_a_late_403_for_an_old_token_keeps_the_fresh_one(redis_client: Any) -> None:
    logins: list[str] = []
    tokens = store(redis_client, logins)
    assert tokens.get() == "tok-1"
    assert tokens.replace(rejected="tok-1") == "tok-2"

    # another process now reports the 403 it got with tok-1 before tok-2 existed
    assert tokens.replace(rejected="tok-1") == "tok-2"

    assert logins == ["tok-1", "tok-2"]
    assert tokens.current() == "tok-2"


def test_the_stored_token_slides_its_ttl_only_while_it_is_current(redis_client: Any) -> None:
    logins: list[str] = []
    tokens = store(redis_client, logins)
    tokens.get()
    redis_client.pexpire(tokens.token_key, 1000)

    tokens.touch("tok-0")  # not the stored token: no effect
    assert redis_client.pttl(tokens.token_key) <= 1000
    tokens.touch("tok-1")
    assert redis_client.pttl(tokens.token_key) > 24 * 60 * 1000
