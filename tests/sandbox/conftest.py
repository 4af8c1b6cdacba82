"""Fixtures for the sandbox: an account, a client speaking to it with a key, a listener that records."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client as HttpClient

from apps.sandbox.models import SandboxAccount


@pytest.fixture
def account(db: None, redis_client: Any) -> SandboxAccount:
    """A fresh account; the flushed Redis means no token or rate-limit window from another test."""
    return SandboxAccount.objects.create(name="acme", api_key="key-acme", username="acme", password="pw-acme")


@dataclass
class Api:
    """The Django test client, calling the sandbox as the platform's Optimove client would."""

    client: HttpClient
    headers: dict[str, str]

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params, headers=self.headers)

    def post(self, path: str, body: Any, **params: Any) -> Any:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        url = f"{path}?{query}" if query else path
        return self.client.post(url, json.dumps(body), content_type="application/json", headers=self.headers)


@pytest.fixture
def api(client: HttpClient, account: SandboxAccount) -> Api:
    return Api(client, {"X-API-KEY": account.api_key})


@pytest.fixture
def admin_client(client: HttpClient) -> HttpClient:
    user = get_user_model().objects.create_superuser("root", "root@example.test", "pw")
    client.force_login(user)
    return client


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Recorder:
    """A tiny HTTP server on loopback that records every POST and answers `status`."""

    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200
    arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    holder: dict[str, Recorder] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            rec = holder["recorder"]
            rec.received.append(Received(self.path, dict(self.headers.items()), json.loads(raw or b"null")))
            self.send_response(rec.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            rec.arrived.set()

        def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["recorder"] = Recorder(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield holder["recorder"]
    server.shutdown()
    server.server_close()
