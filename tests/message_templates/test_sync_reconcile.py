"""`manage.py optimove_sync_templates SLUG [--dry-run]` against the sandbox: it fixes a drifted list,
settles the outbox rows it made moot, changes nothing in a dry run, and names what it could not do."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.clients.models import Channel, ChannelKind
from apps.message_templates.models import OptimoveOutbox, OutboxState
from apps.message_templates.services import template_upsert
from apps.sandbox.models import SandboxTemplate
from tests.message_templates.sync_support import (
    EMAIL_CONTENT,
    Optimove,
    optimove_fixture,
    outbox,
    sandbox_server,
)

__all__ = ["optimove_fixture", "sandbox_server"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)


def reconcile(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("optimove_sync_templates", *args, stdout=out)
    return out.getvalue().splitlines()


@pytest.fixture
def drifted(optimove: Optimove) -> Optimove:
    """Ours: 14 "Welcome", 15 "Reminder", 16 "Retired" (inactive) on 504; 20 "Promo" on SMS channel 505,
    none on push channel 506, and 30 "Hidden" on an inactive channel 507. Optimove's lists drifted: 14
    under an old name, 15 missing, 16 and a stranger 99 still listed; 505 and 506 in line; 507 holding
    a stranger."""
    for template_id, name, active in ((14, "Welcome", True), (15, "Reminder", True), (16, "Retired", False)):
        template_upsert(
            channel=optimove.email, template_id=template_id, name=name, is_active=active, **EMAIL_CONTENT
        )
    sms_channel = Channel.objects.create(
        client=optimove.client, name="SMS", kind=ChannelKind.SMS, optimove_channel_id=505, provider="console"
    )
    template_upsert(channel=sms_channel, template_id=20, name="Promo", text_body="20% off")
    off = Channel.objects.create(
        client=optimove.client,
        name="Old",
        kind=ChannelKind.SMS,
        optimove_channel_id=507,
        provider="console",
        is_active=False,
    )
    template_upsert(channel=off, template_id=30, name="Hidden", text_body="t")
    # The 504 list failed before (a refusal), 505 and 507 were pushed fine.
    OptimoveOutbox.objects.filter(optimove_channel_id=504).update(
        state=OutboxState.FAILED, last_error="Optimove AddChannelTemplates answered 400"
    )
    OptimoveOutbox.objects.exclude(optimove_channel_id=504).update(state=OutboxState.DONE)
    for channel_id, template_id, name in (
        (504, 14, "Welcome (old)"),
        (504, 16, "Retired"),
        (504, 99, "Stranger"),
    ):
        SandboxTemplate.objects.create(
            account=optimove.account, channel_id=channel_id, template_id=template_id, template_name=name
        )
    SandboxTemplate.objects.create(
        account=optimove.account, channel_id=505, template_id=20, template_name="Promo"
    )
    SandboxTemplate.objects.create(
        account=optimove.account, channel_id=507, template_id=77, template_name="Other"
    )
    return optimove


def test_a_dry_run_prints_the_changes_and_changes_nothing(drifted: Optimove) -> None:
    rows_before = list(OptimoveOutbox.objects.order_by("id").values())

    lines = reconcile("acme", "--dry-run")

    assert lines == [
        "channel 504: would rename 14 'Welcome (old)' -> 'Welcome'",
        "channel 504: would add 15 'Reminder'",
        "channel 504: would delete 16 'Retired'",
        "channel 504: would delete 99 'Stranger'",
        "acme: 1 added, 1 renamed, 2 deleted on 3 active channel(s) (dry run: nothing was changed)",
    ]
    assert drifted.templates() == {14: "Welcome (old)", 16: "Retired", 99: "Stranger"}
    assert drifted.calls("AddChannelTemplates") == []
    assert drifted.calls("DeleteChannelTemplates") == []
    assert list(OptimoveOutbox.objects.order_by("id").values()) == rows_before


def test_reconcile_fixes_the_drift_and_settles_the_lists_open_rows(drifted: Optimove) -> None:
    lines = reconcile("acme")

    assert lines == [
        "channel 504: renamed 14 'Welcome (old)' -> 'Welcome'",
        "channel 504: added 15 'Reminder'",
        "channel 504: deleted 16 'Retired'",
        "channel 504: deleted 99 'Stranger'",
        "acme: 1 added, 1 renamed, 2 deleted on 3 active channel(s)",
    ]
    assert drifted.templates(504) == {14: "Welcome", 15: "Reminder"}
    assert drifted.templates(505) == {20: "Promo"}
    assert drifted.templates(507) == {77: "Other"}  # an inactive channel is left alone
    assert drifted.calls("AddChannelTemplates") == [200]
    assert drifted.calls("DeleteChannelTemplates") == [200]
    assert list(
        OptimoveOutbox.objects.filter(optimove_channel_id=504)
        .order_by("id")
        .values_list("state", "last_error")
    ) == [
        ("done", "settled by optimove_sync_templates; was: Optimove AddChannelTemplates answered 400"),
        ("done", "settled by optimove_sync_templates; was: Optimove AddChannelTemplates answered 400"),
    ]

    assert reconcile("acme") == ["acme: 0 added, 0 renamed, 0 deleted on 3 active channel(s)"]
    assert drifted.calls("AddChannelTemplates") == [200]


def test_rows_written_after_the_reconcile_read_its_list_are_left_to_the_push(drifted: Optimove) -> None:
    reconcile("acme")
    template_upsert(channel=drifted.email, template_id=17, name="New", **EMAIL_CONTENT)

    assert outbox(state="pending") == [(504, "template", "add", "17", "New", "pending")]


def test_an_unknown_slug_is_a_clear_error() -> None:
    with pytest.raises(CommandError) as raised:
        reconcile("nobody")

    assert str(raised.value) == "No client with slug 'nobody'. Known slugs: none."


def test_an_optimove_outage_is_reported_per_channel_and_nothing_is_settled(drifted: Optimove) -> None:
    drifted.set_faults(1.0, [503])
    out = io.StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("optimove_sync_templates", "acme", stdout=out)

    assert out.getvalue().splitlines() == [
        "channel 504: failed: Optimove GetChannelTemplates answered 503 after 2 attempts",
        "channel 505: failed: Optimove GetChannelTemplates answered 503 after 2 attempts",
        "channel 506: failed: Optimove GetChannelTemplates answered 503 after 2 attempts",
        "acme: 0 added, 0 renamed, 0 deleted on 3 active channel(s)",
    ]
    assert str(raised.value) == "acme: channel(s) 504, 505, 506 could not be reconciled; run again"
    assert set(OptimoveOutbox.objects.filter(optimove_channel_id=504).values_list("state", flat=True)) == {
        "failed"
    }
    drifted.set_faults(0.0)
    assert drifted.templates() == {14: "Welcome (old)", 16: "Retired", 99: "Stranger"}


def test_a_client_without_credentials_is_a_clear_error(optimove: Optimove) -> None:
    optimove.client.optimove_api_key = ""
    optimove.client.save()

    with pytest.raises(CommandError) as raised:
        reconcile("acme")

    assert str(raised.value) == (
        "acme: cannot talk to Optimove: "
        "Optimove credentials have neither an API key nor a user name and password"
    )
