"""Shared pieces of the consent sync tests: the sandbox served by a real gunicorn as Optimove, a client
with a preference channel, an attribute channel and a push channel, and reading what the sandbox
received."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.db.models import F

from apps.clients.models import Channel, ChannelKind, Client, ConsentSync
from apps.optimove.client import OptimoveClient
from apps.sandbox.models import (
    CallbackStatus,
    SandboxAccount,
    SandboxAttributeUpdate,
    SandboxCall,
    SandboxPreference,
)
from apps.subscriptions.models import ConsentSource, Subscription
from apps.subscriptions.services import ConsentUpdate, subscriptions_set
from tests.campaigns.harness import make_client
from tests.conftest import wait_for
from tests.message_templates.sync_support import sandbox_server

__all__ = ["Consent", "consent", "sandbox_server", "set_states"]

IN, OUT, UNKNOWN = "opted_in", "opted_out", "unknown"
# What the default settings send as CommunicationMode.
MODES = {IN: 1, OUT: 2, UNKNOWN: 0}
ATTRIBUTE = "SmsConsent"


@dataclass
class Consent:
    """The sandbox as Optimove and one client: email 504 (preference), SMS 505 (attribute
    `SmsConsent`), push 506 (preference)."""

    base_url: str
    account: SandboxAccount
    client: Client
    email: Channel
    sms: Channel
    push: Channel

    def statuses(self, function: str) -> list[int]:
        """The statuses the sandbox answered `function` with, oldest first."""
        return list(
            SandboxCall.objects.filter(account=self.account, function=function)
            .order_by("id")
            .values_list("status", flat=True)
        )

    def preference_calls(self, channel_id: int = 504) -> list[tuple[int, str, list[str]]]:
        """(CommunicationMode, AppID, CustomerIDs) of each SetCustomerChannelPreference, oldest first."""
        return [
            (p.communication_mode, p.app_id, p.customer_ids)
            for p in SandboxPreference.objects.filter(account=self.account, channel_id=channel_id).order_by(
                "id"
            )
        ]

    def attribute_calls(self) -> list[list[tuple[str, list[tuple[str, str]]]]]:
        """Each UpdateCustomerAttributes call's customers: (CustomerID, [(RealFieldName, Value)])."""
        return [
            [
                (c["CustomerID"], [(a["RealFieldName"], a["Value"]) for a in c["Attributes"]])
                for c in update.customers
            ]
            for update in SandboxAttributeUpdate.objects.filter(account=self.account).order_by("id")
        ]

    def set_faults(self, rate: float, statuses: list[int] | None = None) -> None:
        fields: dict[str, Any] = {"fault_rate": rate}
        if statuses is not None:
            fields["fault_statuses"] = statuses
        SandboxAccount.objects.filter(pk=self.account.pk).update(**fields)


@pytest.fixture
def consent(
    sandbox_server: str, transactional_db: None, redis_client: Any, settings: Any
) -> Iterator[Consent]:
    # One retry inside the API client (with the test settings' millisecond backoff) keeps an outage
    # quick; callbacks come back to the same server, which serves the platform too.
    settings.OPTIMOVE_MAX_RETRIES = 1
    settings.PUBLIC_BASE_URL = sandbox_server
    account = SandboxAccount.objects.create(name="consent", api_key="key-consent-tests")
    client = make_client(base_url=sandbox_server, account=account)
    email = Channel.objects.create(
        client=client, name="Email", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="console"
    )
    sms = Channel.objects.create(
        client=client,
        name="SMS",
        kind=ChannelKind.SMS,
        optimove_channel_id=505,
        provider="console",
        consent_sync=ConsentSync.ATTRIBUTE,
        consent_attribute=ATTRIBUTE,
    )
    push = Channel.objects.create(
        client=client, name="Push", kind=ChannelKind.PUSH, optimove_channel_id=506, provider="console"
    )
    yield Consent(sandbox_server, account, client, email, sms, push)
    _sandbox_callbacks_finished(account)


def _sandbox_callbacks_finished(account: SandboxAccount) -> None:
    """The sandbox answers UpdateCustomerAttributes on the callback URL from a thread of the server,
    which then records the delivery: a test may end before that, and the database's flush between tests
    then deadlocked with the thread's transaction. Waits until every callback was delivered or failed
    and no other session is in a transaction."""
    wait_for(
        lambda: (
            not SandboxAttributeUpdate.objects.filter(
                account=account, callback_status=CallbackStatus.PENDING
            ).exists()
        ),
        20,
        "the sandbox's callbacks to finish",
    )

    def others_idle() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
                "AND state IN ('active', 'idle in transaction')"
            )
            row = cursor.fetchone()
        return row is not None and row[0] == 0

    wait_for(others_idle, 10, "the other sessions to leave their transactions")


def set_states(channel: Channel, states: dict[str, str], *, per_call: int = 40_000) -> None:
    """Sets the states through the service every consent write goes through, `per_call` at a time."""
    updates = [ConsentUpdate(customer_id=c, status=s) for c, s in states.items()]
    for start in range(0, len(updates), per_call):
        subscriptions_set(
            channel=channel, updates=updates[start : start + per_call], source=ConsentSource.ADMIN
        )


def accepted(channel: Channel) -> set[str]:
    """Customers whose current state Optimove accepted."""
    return set(
        Subscription.objects.filter(channel=channel, synced_version=F("sync_version")).values_list(
            "customer_id", flat=True
        )
    )


def pending(channel: Channel) -> dict[str, str]:
    """Customers whose current state waits for Optimove, with their sync error."""
    return dict(
        Subscription.objects.filter(channel=channel, sync_version__gt=F("synced_version")).values_list(
            "customer_id", "sync_error"
        )
    )


@pytest.fixture
def after_each_call(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[str, Callable[[int], None]], None]:
    """`after_each_call("set_customer_channel_preference", hook)`: the real API client method runs, then
    `hook(n)` with the number of calls made so far, e.g. to take the sandbox down after the first."""

    def install(method: str, hook: Callable[[int], None]) -> None:
        original = getattr(OptimoveClient, method)
        made = [0]

        def wrapped(self: OptimoveClient, **kwargs: Any) -> Any:
            try:
                return original(self, **kwargs)
            finally:
                made[0] += 1
                hook(made[0])

        monkeypatch.setattr(OptimoveClient, method, wrapped)

    return install
