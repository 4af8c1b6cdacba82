"""Shared pieces of the Optimove sync tests: the sandbox as Optimove, and reading what it lists, what
the outbox holds and what the queue holds."""

from __future__ import annotations

import base64
import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from apps.clients.models import Channel, ChannelKind, Client
from apps.message_templates.models import OptimoveOutbox
from apps.message_templates.sync import SYNC_QUEUE
from apps.sandbox.models import SandboxAccount, SandboxApp, SandboxCall, SandboxTemplate
from tests.campaigns.harness import make_client
from tests.conftest import BIN, ManagedProcess, _spawn, subprocess_env, wait_for
from tools.devservers import free_port

EMAIL_CONTENT: dict[str, Any] = {"subject": "Hi {{ FirstName }}", "text_body": "Hello {{ FirstName }}"}


@dataclass
class Optimove:
    """The sandbox served by a real gunicorn, a client whose API key is the sandbox account's, and
    an email channel (504) and a push channel (506) of that client."""

    base_url: str
    account: SandboxAccount
    client: Client
    email: Channel
    push: Channel

    def templates(self, channel_id: int = 504) -> dict[int, str]:
        return dict(
            SandboxTemplate.objects.filter(account=self.account, channel_id=channel_id).values_list(
                "template_id", "template_name"
            )
        )

    def apps(self, channel_id: int = 506) -> dict[str, str]:
        return dict(
            SandboxApp.objects.filter(account=self.account, channel_id=channel_id).values_list(
                "app_id", "app_name"
            )
        )

    def calls(self, function: str) -> list[int]:
        """The statuses the sandbox answered `function` with, oldest first."""
        return list(
            SandboxCall.objects.filter(account=self.account, function=function)
            .order_by("id")
            .values_list("status", flat=True)
        )

    def set_faults(self, rate: float, statuses: list[int] | None = None) -> None:
        self.account.fault_rate = rate
        if statuses is not None:
            self.account.fault_statuses = statuses
        self.account.save()


def channels_for(client: Client) -> tuple[Channel, Channel]:
    email = Channel.objects.create(
        client=client, name="Email", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="console"
    )
    push = Channel.objects.create(
        client=client, name="Push", kind=ChannelKind.PUSH, optimove_channel_id=506, provider="console"
    )
    return email, push


# The one sandbox server of the session. Each test module that imports `sandbox_server` gets its own
# definition of the fixture; they all share the server started first.
_SERVERS: list[tuple[str, ManagedProcess]] = []


@pytest.fixture(scope="session")
def sandbox_server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One gunicorn serving the sandbox for every sync test: starting one takes seconds, and the
    sandbox keeps nothing between requests that a test's fresh rows would not replace."""
    if _SERVERS:
        yield _SERVERS[0][0]
        return
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = _spawn(
        "sync-sandbox",
        [
            str(BIN / "gunicorn"),
            "config.wsgi:application",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--threads",
            "4",
        ],
        subprocess_env(PUBLIC_BASE_URL=base_url),
        tmp_path_factory.mktemp("sync-sandbox"),
    )

    def up() -> bool:
        try:
            return requests.get(f"{base_url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, 60, "the sandbox web server")
    except AssertionError:
        server.kill()
        raise AssertionError(f"the sandbox web server did not start:\n{server.log()[-3000:]}") from None
    _SERVERS.append((base_url, server))
    yield base_url
    server.kill(signal.SIGTERM)


@pytest.fixture(name="optimove")
def optimove_fixture(
    sandbox_server: str, transactional_db: None, redis_client: Any, settings: Any
) -> Optimove:
    # One retry inside the API client (with the test settings' millisecond backoff) keeps an outage quick.
    settings.OPTIMOVE_MAX_RETRIES = 1
    base_url = sandbox_server
    account = SandboxAccount.objects.create(name="sync", api_key="key-sync-tests")
    client = make_client(base_url=base_url, account=account)
    email, push = channels_for(client)
    return Optimove(base_url, account, client, email, push)


def outbox(**filters: Any) -> list[tuple[int, str, str, str, str, str]]:
    """(channel id, kind, action, key, name, state) of each outbox row, oldest first."""
    return list(
        OptimoveOutbox.objects.filter(**filters)
        .order_by("id")
        .values_list("optimove_channel_id", "kind", "action", "key", "name", "state")
    )


def queued_pushes(redis_client: Any) -> list[tuple[str, dict[str, Any]]]:
    """(task name, keyword arguments) of each task waiting in the sync queue (kombu's Redis layout)."""
    found = []
    for raw in redis_client.lrange(SYNC_QUEUE, 0, -1):
        message = json.loads(raw)
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append((message["headers"]["task"], kwargs))
    return found
