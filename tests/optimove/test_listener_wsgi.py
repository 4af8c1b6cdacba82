"""The web's WSGI application (apps.core.wsgi), called as gunicorn calls it: Optimove's listener through
its lean middleware stack, every other URL through the whole one."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings

from apps.campaigns.models import CampaignRun
from apps.clients.models import Client
from apps.core.wsgi import application_get
from apps.optimove.models import Notification

pytestmark = pytest.mark.django_db(transaction=True)  # the handlers close and reopen connections


def call(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, list[str]], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path.split("?")[0],
        "QUERY_STRING": path.partition("?")[2],
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "HTTP_HOST": "testserver",
    }
    setup_testing_defaults(environ)
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"] = int(status.split()[0])
        answer["headers"] = {}
        for name, value in headers:
            answer["headers"].setdefault(name.lower(), []).append(value)

    chunks: Iterable[bytes] = app(environ, start_response)
    try:
        content = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return answer["status"], answer["headers"], content


def test_a_listener_call_is_answered_without_the_browser_middleware(acme: Client) -> None:
    from config.wsgi import application as app  # what gunicorn serves

    body = json.dumps({"EventTypeID": 13, "CampaignID": 1111, "ChannelID": 504}).encode()

    path = f"/optimove/listener/acme/504/?token={acme.listener_token}"
    status, headers, content = call(app, "POST", path, body)

    assert status == 200, content
    assert json.loads(content)["acted"] is True
    assert CampaignRun.objects.get().campaign_id == 1111
    assert Notification.objects.count() == 1
    assert "x-request-id" in headers  # its log line and id, as for every request
    assert headers.get("x-content-type-options") == ["nosniff"]  # security headers stay
    # No frame-options header, session, CSRF cookie or Vary: Cookie: the browser middleware did not run.
    assert "x-frame-options" not in headers
    assert "set-cookie" not in headers
    assert "vary" not in headers


def test_the_listener_still_refuses_a_wrong_token_and_a_bad_body(acme: Client) -> None:
    app = application_get()
    assert call(app, "POST", "/optimove/listener/acme/504/?token=wrong", b"{}")[0] == 403
    assert call(app, "POST", f"/optimove/listener/acme/504/?token={acme.listener_token}", b"[")[0] == 400
    assert call(app, "GET", f"/optimove/listener/acme/504/?token={acme.listener_token}")[0] == 405
    assert Notification.objects.count() == 0


def test_every_other_url_keeps_the_whole_middleware_stack() -> None:
    app = application_get()
    status, headers, _ = call(app, "GET", "/admin/login/")
    assert status == 200
    assert headers.get("x-frame-options") == ["DENY"]
    assert headers.get("vary") == ["Cookie"]
    assert any(cookie.strip().startswith("csrftoken=") for cookie in headers.get("set-cookie", []))


def test_building_the_listener_handler_leaves_the_settings_as_they_were() -> None:
    before = list(settings.MIDDLEWARE)
    application_get()
    assert before == settings.MIDDLEWARE
    assert set(settings.LISTENER_MIDDLEWARE) < set(settings.MIDDLEWARE)
    for kept in (
        "apps.core.middleware.RequestIdMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ):
        assert kept in settings.LISTENER_MIDDLEWARE
