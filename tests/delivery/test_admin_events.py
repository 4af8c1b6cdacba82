"""The DeliveryEvent admin through real admin requests: read-only, limited to the staff user's clients,
with unmatched events one filter away."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client as HttpClient

from apps.clients.models import Channel, ChannelKind
from apps.delivery.models import DeliveryEvent, DeliveryEventType
from apps.delivery.services import ProviderEvent, delivery_event_record
from tests.delivery.callbacks_support import make_client, sent_message

pytestmark = pytest.mark.django_db

LIST = "/admin/delivery/deliveryevent/"


def record(client: Any, pid: str, kind: DeliveryEventType = DeliveryEventType.DELIVERED) -> DeliveryEvent:
    stored = delivery_event_record(
        client=client,
        event=ProviderEvent(
            provider="anymail:postmark",
            provider_message_id=pid,
            event=kind,
            occurred_at=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
            raw={"MessageID": pid, "RecordType": "Delivery"},
        ),
    )
    assert stored is not None
    return stored


@pytest.fixture
def world() -> dict[str, Any]:
    x = make_client("x-corp")
    y = make_client("y-corp")
    x_mail = Channel.objects.create(
        client=x, name="X mail", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="anymail:postmark"
    )
    y_mail = Channel.objects.create(
        client=y, name="Y mail", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="anymail:postmark"
    )
    sent_message(x_mail, customer="c1", provider_id="x-known")
    sent_message(y_mail, customer="c1", provider_id="y-known")
    staff = User.objects.create_user("x-ops", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename="view_deliveryevent"))
    x.admins.add(staff)
    return {
        "x_matched": record(x, "x-known"),
        "x_unmatched": record(x, "x-unknown", DeliveryEventType.BOUNCED),
        "y_matched": record(y, "y-known"),
        "staff": staff,
    }


def test_a_staff_user_sees_only_their_clients_events_and_can_filter_the_unmatched(
    client: HttpClient, world: dict[str, Any]
) -> None:
    client.force_login(world["staff"])

    everything = client.get(LIST)
    unmatched = client.get(LIST, {"message__isnull": "True"})
    matched = client.get(LIST, {"message__isnull": "False"})
    bounced = client.get(LIST, {"event__exact": "bounced"})

    assert everything.status_code == 200
    assert set(everything.context["cl"].result_list) == {world["x_matched"], world["x_unmatched"]}
    assert list(unmatched.context["cl"].result_list) == [world["x_unmatched"]]
    assert list(matched.context["cl"].result_list) == [world["x_matched"]]
    assert list(bounced.context["cl"].result_list) == [world["x_unmatched"]]
    assert "y-corp" not in everything.content.decode()  # not even in the filter sidebar
    page = client.get(f"{LIST}{world['x_unmatched'].pk}/change/")
    assert page.status_code == 200
    assert "(none found)" in page.content.decode()
    # Another client's event answers like a missing one.
    assert client.get(f"{LIST}{world['y_matched'].pk}/change/").status_code == 302


def test_events_cannot_be_added_changed_or_deleted_even_by_a_superuser(
    client: HttpClient, world: dict[str, Any]
) -> None:
    root = User.objects.create_superuser("root", password="pw")
    client.force_login(root)
    event = world["y_matched"]
    before = list(DeliveryEvent.objects.order_by("pk").values_list())

    assert client.get(f"{LIST}add/").status_code == 403
    assert client.post(f"{LIST}{event.pk}/change/", {"event": "clicked"}).status_code == 403
    assert client.post(f"{LIST}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    listing = client.get(LIST)
    assert len(listing.context["cl"].result_list) == 3
    assert "Add delivery event" not in listing.content.decode()
    assert list(DeliveryEvent.objects.order_by("pk").values_list()) == before
