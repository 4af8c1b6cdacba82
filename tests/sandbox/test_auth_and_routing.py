"""Who may call, and how paths, verbs and unknown functions are answered, as Optimove does."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.sandbox.models import SandboxAccount, SandboxCall, SandboxListener

pytestmark = pytest.mark.django_db

LISTENERS = "/current/general/GetRegisteredEventListeners"


def _login(client: HttpClient, username: str = "acme", password: str = "pw-acme") -> Any:
    return client.post(
        "/current/general/login",
        {"UserName": username, "Password": password},
        content_type="application/json",
    )


def test_no_key_is_a_401(client: HttpClient, account: SandboxAccount) -> None:
    response = client.get(LISTENERS)

    assert (response.status_code, response.json()) == (401, "Missing X-API-KEY header")


def test_a_wrong_key_is_a_401(client: HttpClient, account: SandboxAccount) -> None:
    response = client.get(LISTENERS, headers={"X-API-KEY": "key-wrong"})

    assert (response.status_code, response.json()) == (401, "Invalid X-API-KEY")


def test_the_right_key_is_a_200(client: HttpClient, account: SandboxAccount) -> None:
    response = client.get(LISTENERS, headers={"X-API-KEY": "key-acme"})

    assert (response.status_code, response.json()) == (200, [])


def test_a_write_without_a_key_stores_nothing(client: HttpClient, account: SandboxAccount) -> None:
    response = client.post(
        "/current/general/RegisterEventListener",
        {"EventTypeID": 13, "ListenerURL": "http://x.test/", "ChannelID": 504},
        content_type="application/json",
    )

    assert response.status_code == 401
    assert not SandboxListener.objects.exists()


def test_legacy_login_returns_a_token_that_authorizes_calls(
    client: HttpClient, account: SandboxAccount
) -> None:
    login = _login(client)

    assert login.status_code == 200
    token = login.json()
    assert isinstance(token, str)
    assert len(token) >= 32
    response = client.get(LISTENERS, headers={"Authorization-Token": token})
    assert (response.status_code, response.json()) == (200, [])


def test_login_with_a_bad_password_is_a_401(client: HttpClient, account: SandboxAccount) -> None:
    response = _login(client, password="nope")

    assert (response.status_code, response.json()) == (401, "Invalid UserName or Password")


def test_login_with_an_unknown_user_is_a_401(client: HttpClient, account: SandboxAccount) -> None:
    assert _login(client, username="nobody").status_code == 401


def test_login_without_password_is_a_400_naming_it(client: HttpClient, account: SandboxAccount) -> None:
    response = client.post("/current/general/login", {"UserName": "acme"}, content_type="application/json")

    assert (response.status_code, response.json()) == (400, "Password is required")


def test_second_login_while_token_valid_gets_429(client: HttpClient, account: SandboxAccount) -> None:
    first = _login(client)
    second = _login(client)

    assert first.status_code == 200
    assert second.status_code == 429
    # The first token keeps working.
    assert client.get(LISTENERS, headers={"Authorization-Token": first.json()}).status_code == 200


def test_login_after_the_token_expired_gives_a_new_token(
    client: HttpClient, account: SandboxAccount, redis_client: Any
) -> None:
    first = _login(client).json()
    for key in redis_client.scan_iter("sandbox:*session*"):
        redis_client.delete(key)

    second = _login(client)

    assert second.status_code == 200
    assert second.json() != first


def test_expired_token_gets_403(
    client: HttpClient, account: SandboxAccount, settings: Any, redis_client: Any
) -> None:
    settings.SANDBOX_TOKEN_TTL_SECONDS = 1
    token = _login(client).json()
    assert redis_client.ttl(next(redis_client.scan_iter("sandbox:session:*"))) == 1
    for key in redis_client.scan_iter("sandbox:session:*"):
        redis_client.delete(key)  # what the 1-second TTL does, without waiting for it

    response = client.get(LISTENERS, headers={"Authorization-Token": token})

    assert (response.status_code, response.json()) == (403, "Authorization-Token expired")


def test_an_unknown_token_gets_403(client: HttpClient, account: SandboxAccount) -> None:
    response = client.get(LISTENERS, headers={"Authorization-Token": "made-up"})

    assert (response.status_code, response.json()) == (403, "Authorization-Token expired")


def test_each_call_slides_the_token_ttl(
    client: HttpClient, account: SandboxAccount, settings: Any, redis_client: Any
) -> None:
    token = _login(client).json()
    key = next(redis_client.scan_iter("sandbox:session:*"))
    redis_client.expire(key, 5)

    client.get(LISTENERS, headers={"Authorization-Token": token})

    assert redis_client.ttl(key) == settings.SANDBOX_TOKEN_TTL_SECONDS


def test_redis_never_holds_the_token_itself(
    client: HttpClient, account: SandboxAccount, redis_client: Any
) -> None:
    token = _login(client).json()

    stored = [key.decode() for key in redis_client.scan_iter("*")]
    values = [redis_client.get(key) for key in stored if redis_client.type(key) == b"string"]
    assert all(token not in key for key in stored)
    assert all(token.encode() not in (value or b"") for value in values)


@pytest.mark.parametrize(
    "path",
    [
        "/current/general/getregisteredeventlisteners",
        "/CURRENT/General/GetRegisteredEventListeners",
        "/general/GetRegisteredEventListeners",
        "/General/getRegisteredEventListeners/",
    ],
)
def test_paths_are_matched_case_insensitively_with_or_without_current(
    client: HttpClient, account: SandboxAccount, path: str
) -> None:
    response = client.get(path, headers={"X-API-KEY": "key-acme"})

    assert (response.status_code, response.json()) == (200, [])


def test_get_on_a_post_function_is_a_405(client: HttpClient, account: SandboxAccount) -> None:
    response = client.get(
        "/current/integrations/AddChannelTemplates?ChannelID=504", headers={"X-API-KEY": "key-acme"}
    )

    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_post_on_a_get_function_is_a_405(client: HttpClient, account: SandboxAccount) -> None:
    response = client.post(
        LISTENERS, "{}", content_type="application/json", headers={"X-API-KEY": "key-acme"}
    )

    assert response.status_code == 405
    assert response["Allow"] == "GET"


def test_an_unknown_function_is_a_404(client: HttpClient, account: SandboxAccount) -> None:
    response = client.get("/current/general/NoSuchFunction", headers={"X-API-KEY": "key-acme"})

    assert (response.status_code, response.json()) == (404, "Unknown function general/NoSuchFunction")


def test_a_function_under_the_wrong_category_is_a_404(client: HttpClient, account: SandboxAccount) -> None:
    response = client.get(
        "/current/customers/GetChannelTemplates?ChannelID=1", headers={"X-API-KEY": "key-acme"}
    )

    assert response.status_code == 404


def test_every_call_is_logged_with_its_account_function_and_status(
    client: HttpClient, account: SandboxAccount
) -> None:
    client.get(LISTENERS, headers={"X-API-KEY": "key-acme"})
    client.get(LISTENERS, headers={"X-API-KEY": "key-wrong"})
    client.post(LISTENERS, "{}", content_type="application/json", headers={"X-API-KEY": "key-acme"})

    assert list(
        SandboxCall.objects.order_by("id").values_list("account__name", "function", "method", "status")
    ) == [
        ("acme", "GetRegisteredEventListeners", "GET", 200),
        (None, "GetRegisteredEventListeners", "GET", 401),
        (None, "GetRegisteredEventListeners", "POST", 405),
    ]
