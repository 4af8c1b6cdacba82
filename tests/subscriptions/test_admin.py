"""Consent in the admin, through real admin requests: add, edit and the opt-in/opt-out actions go
through the service (history rows, sync versions), and a staff user limited to one client neither sees
nor changes another client's rows."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client as HttpClient

from apps.clients.models import Channel, ChannelKind, Client
from apps.subscriptions.models import ConsentSource, ConsentStatus, Subscription, SubscriptionChange
from apps.subscriptions.services import ConsentUpdate, subscriptions_set
from tests.subscriptions.conftest import NextSend, consent_snapshot

OUT = ConsentStatus.OPTED_OUT
IN = ConsentStatus.OPTED_IN
ADMIN = ConsentSource.ADMIN
URL = "/admin/subscriptions/subscription/"
SUBSCRIPTION_PERMISSIONS = [
    "view_subscription",
    "add_subscription",
    "change_subscription",
    "delete_subscription",
]


@pytest.fixture
def ops(client: HttpClient, db: None) -> HttpClient:
    client.force_login(User.objects.create_superuser("ops", password="pw"))
    return client


@pytest.fixture
def globex_email(db: None) -> Channel:
    globex = Client.objects.create(
        slug="globex", name="Globex", optimove_base_url="https://api5.optimove.net"
    )
    return Channel.objects.create(
        client=globex, name="Globex mail", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="console"
    )


def change_form(subscription: Subscription, **fields: Any) -> dict[str, Any]:
    """What the change page posts: its fields and the history inline's management form."""
    changes = subscription.changes.count()
    return {
        "changes-TOTAL_FORMS": str(changes),
        "changes-INITIAL_FORMS": str(changes),
        "changes-MIN_NUM_FORMS": "0",
        "changes-MAX_NUM_FORMS": "1000",
        **fields,
    }


def history(channel: Channel, customer_id: str) -> list[tuple[str, str, str]]:
    row = Subscription.objects.get(channel=channel, customer_id=customer_id)
    return list(row.changes.values_list("status", "source", "detail"))


def set_state(channel: Channel, **states: str) -> None:
    subscriptions_set(
        channel=channel,
        updates=[ConsentUpdate(customer_id, status) for customer_id, status in states.items()],
        source=ConsentSource.API,
        detail="seed",
    )


def test_adding_a_subscription_goes_through_the_service_and_skips_the_next_send(
    ops: HttpClient, email: Channel, sms: Channel, next_send: NextSend
) -> None:
    response = ops.post(f"{URL}add/", {"channel": email.pk, "customer_id": " c1 ", "status": OUT})

    row = Subscription.objects.get()
    assert response.status_code == 302
    assert response["Location"] == URL
    assert (row.client_id, row.channel_id, row.customer_id, row.status, row.source) == (
        email.client_id,
        email.pk,
        "c1",
        OUT,
        ADMIN,
    )
    assert (row.sync_version, row.synced_version) == (1, 0)
    assert history(email, "c1") == [(OUT, ADMIN, "ops")]
    assert next_send(email, "c1") == ("skipped", "opted out of this channel")
    assert next_send(sms, "c1") == ("sent", "")


def test_adding_a_customer_already_recorded_sets_their_state(ops: HttpClient, email: Channel) -> None:
    set_state(email, c1=IN)

    response = ops.post(f"{URL}add/", {"channel": email.pk, "customer_id": "c1", "status": OUT}, follow=True)

    assert response.status_code == 200
    assert Subscription.objects.count() == 1
    assert history(email, "c1") == [(OUT, ADMIN, "ops"), (IN, ConsentSource.API, "seed")]
    again = ops.post(f"{URL}add/", {"channel": email.pk, "customer_id": "c1", "status": OUT}, follow=True)
    assert "c1 was already opted out on acme/504 Email; nothing changed." in [
        str(m) for m in again.context["messages"]
    ]
    assert SubscriptionChange.objects.count() == 2


def test_editing_the_status_adds_a_history_row_and_nothing_else_can_change(
    ops: HttpClient, email: Channel, sms: Channel
) -> None:
    set_state(email, c1=IN)
    row = Subscription.objects.get()

    response = ops.post(
        f"{URL}{row.pk}/change/",
        change_form(row, status=OUT, customer_id="someone-else", channel=sms.pk, source="api"),
    )

    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.customer_id, row.channel_id, row.status, row.source, row.sync_version) == (
        "c1",
        email.pk,
        OUT,
        ADMIN,
        2,
    )
    assert history(email, "c1") == [(OUT, ADMIN, "ops"), (IN, ConsentSource.API, "seed")]
    page = ops.get(f"{URL}{row.pk}/change/").content.decode()
    assert "seed" in page  # the history inline, read-only:
    assert 'name="changes-0-detail"' not in page


def test_the_actions_set_the_selected_rows_through_the_service(
    ops: HttpClient, email: Channel, sms: Channel, next_send: NextSend
) -> None:
    set_state(email, c1=IN, c2=OUT, c3=IN)
    set_state(sms, c1=IN)
    chosen = Subscription.objects.filter(customer_id__in=["c1", "c2"])

    response = ops.post(
        URL,
        {"action": "opt_out", "_selected_action": [str(pk) for pk in chosen.values_list("pk", flat=True)]},
        follow=True,
    )

    assert [str(m) for m in response.context["messages"]] == [
        "2 of 3 selected customers opted out; the others already were."
    ]
    states = {(r.channel_id, r.customer_id): r.status for r in Subscription.objects.all()}
    assert states == {(email.pk, "c1"): OUT, (email.pk, "c2"): OUT, (email.pk, "c3"): IN, (sms.pk, "c1"): OUT}
    assert history(email, "c1")[0] == (OUT, ADMIN, "ops")
    assert history(sms, "c1")[0] == (OUT, ADMIN, "ops")
    assert history(email, "c2") == [(OUT, ConsentSource.API, "seed")]  # already out: untouched
    assert next_send(email, "c1") == ("skipped", "opted out of this channel")
    assert next_send(email, "c3") == ("sent", "")

    ops.post(URL, {"action": "opt_in", "_selected_action": [str(Subscription.objects.get(channel=sms).pk)]})

    assert Subscription.objects.get(channel=sms).status == IN
    assert history(sms, "c1")[0] == (IN, ADMIN, "ops")
    assert next_send(sms, "c1") == ("sent", "")
    assert next_send(email, "c1")[0] == "skipped"


def test_subscriptions_cannot_be_deleted_in_the_admin(ops: HttpClient, email: Channel) -> None:
    set_state(email, c1=OUT)
    row = Subscription.objects.get()
    before = consent_snapshot()

    page = ops.get(URL)
    delete = ops.post(f"{URL}{row.pk}/delete/", {"post": "yes"})
    bulk = ops.post(
        URL, {"action": "delete_selected", "_selected_action": [str(row.pk)], "post": "yes"}, follow=True
    )

    assert [name for name, _ in page.context["action_form"].fields["action"].choices if name] == [
        "opt_out",
        "opt_in",
    ]
    assert delete.status_code == 403
    assert [str(m) for m in bulk.context["messages"]] == ["No action selected."]  # there is none such
    assert consent_snapshot() == before


def test_the_not_yet_synced_filter_and_the_exact_search(
    ops: HttpClient, email: Channel, sms: Channel
) -> None:
    set_state(email, c1=OUT, c2=OUT, c22=IN)
    set_state(sms, c1=OUT)
    Subscription.objects.filter(customer_id="c2").update(synced_version=1)

    pending = ops.get(URL, {"sync": "pending"})
    searched = ops.get(URL, {"q": "c2"})
    filtered = ops.get(URL, {"channel__id__exact": sms.pk, "status__exact": OUT})

    assert sorted((r.channel_id, r.customer_id) for r in pending.context["cl"].result_list) == [
        (email.pk, "c1"),
        (email.pk, "c22"),
        (sms.pk, "c1"),
    ]
    assert [r.customer_id for r in searched.context["cl"].result_list] == ["c2"]
    assert [(r.channel_id, r.customer_id) for r in filtered.context["cl"].result_list] == [(sms.pk, "c1")]


# A staff user who administers acme only


@pytest.fixture
def acme_ops(client: HttpClient, acme: Client) -> HttpClient:
    staff = User.objects.create_user("acme-ops", password="pw", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(codename__in=[*SUBSCRIPTION_PERMISSIONS, "view_channel"])
    )
    acme.admins.add(staff)
    client.force_login(staff)
    return client


def test_a_client_admin_sees_only_their_clients_rows(
    acme_ops: HttpClient, email: Channel, globex_email: Channel
) -> None:
    set_state(email, c1=OUT)
    set_state(globex_email, g1=OUT)
    theirs = Subscription.objects.get(customer_id="g1")

    listing = acme_ops.get(URL)
    search = acme_ops.get(URL, {"q": "g1"})
    change = acme_ops.get(f"{URL}{theirs.pk}/change/")
    add_form = acme_ops.get(f"{URL}add/").context["adminform"].form

    assert [r.customer_id for r in listing.context["cl"].result_list] == ["c1"]
    assert "globex" not in listing.content.decode().lower()  # not even in the filter sidebar
    assert list(search.context["cl"].result_list) == []
    assert (change.status_code, change["Location"]) == (302, "/admin/")
    assert list(add_form.fields["channel"].queryset) == [email]


def test_a_client_admin_cannot_change_another_clients_rows(
    acme_ops: HttpClient, email: Channel, globex_email: Channel
) -> None:
    set_state(email, c1=IN)
    set_state(globex_email, g1=IN)
    theirs = Subscription.objects.get(customer_id="g1")
    before = consent_snapshot()

    edit = acme_ops.post(f"{URL}{theirs.pk}/change/", change_form(theirs, status=OUT))
    action = acme_ops.post(URL, {"action": "opt_out", "_selected_action": [str(theirs.pk)]})
    add = acme_ops.post(f"{URL}add/", {"channel": globex_email.pk, "customer_id": "g1", "status": OUT})

    assert (edit.status_code, edit["Location"]) == (302, "/admin/")
    assert action.status_code == 302  # "no items selected": the row is not in their changelist
    assert add.status_code == 200
    assert list(add.context["adminform"].form.errors) == ["channel"]
    assert consent_snapshot() == before

    # Their own client's rows they can change, through the service.
    acme_ops.post(
        URL, {"action": "opt_out", "_selected_action": [str(Subscription.objects.get(customer_id="c1").pk)]}
    )
    assert history(email, "c1")[0] == (OUT, ADMIN, "acme-ops")


def test_a_staff_user_without_change_permission_cannot_use_the_actions(
    client: HttpClient, acme: Client, email: Channel
) -> None:
    staff = User.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename="view_subscription"))
    acme.admins.add(staff)
    client.force_login(staff)
    set_state(email, c1=IN)
    before = consent_snapshot()

    response = client.post(
        URL, {"action": "opt_out", "_selected_action": [str(Subscription.objects.get().pk)]}
    )
    csv_page = client.get(f"{URL}import-csv/")

    assert response.status_code == 200  # the action is not offered, so nothing is run
    assert csv_page.status_code == 403
    assert consent_snapshot() == before
