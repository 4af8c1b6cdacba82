"""TimeoutSession.post_unredirected against real local HTTP servers: the fast path webhooks take must
keep what Session.post gives (proxies from the environment, no redirects, the session's headers)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.core.http import TimeoutSession
from tests.receivers import Received, http_receiver


def test_posts_the_body_and_headers_with_the_session_defaults() -> None:
    with http_receiver() as receiver, TimeoutSession(timeout=5) as session:
        response = session.post_unredirected(receiver.url, data=b'{"a":1}', headers={"X-Test": "yes"})
        assert response.status_code == 200
        assert response.json() == {"ok": True}
    [request] = receiver.received
    assert request.body == b'{"a":1}'
    assert request.headers["x-test"] == "yes"
    assert request.headers["user-agent"].startswith("python-requests/")
    assert request.path == "/hook"


def test_a_redirect_is_returned_not_followed() -> None:
    def moved(_: Received) -> tuple[int, dict[str, Any]]:
        return 307, {}

    with http_receiver(respond=moved) as receiver, TimeoutSession(timeout=5) as session:
        response = session.post_unredirected(receiver.url, data=b"{}", headers={})
        assert response.status_code == 307
        assert response.content == b"{}"
    assert len(receiver.received) == 1


def test_a_proxy_named_by_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    with http_receiver() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/hook"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with TimeoutSession(timeout=5) as session:
            response = session.post_unredirected("http://hooks.example.test/deliver", data=b"{}", headers={})
            assert response.status_code == 200
            assert response.json() == {"ok": True}
    # A proxied request names the whole target URL in its request line.
    [request] = proxy.received
    assert request.path == "http://hooks.example.test/deliver"
