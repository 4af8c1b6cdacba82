"""What an operator sees of reporting in the admin: on a run's page its totals by metric and template,
the timeline of reports sent to Optimove with their outcome, and provider events that matched no
message; and the read-only list of report calls, limited to the user's clients."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client as HttpClient

from apps.clients.models import Client
from apps.delivery.models import DeliveryEventType, OptimoveReport
from apps.delivery.reporting import campaign_report
from apps.delivery.services import ProviderEvent, delivery_event_record
from tests.delivery.test_reporting import NOW, OPENED, known_messages, make_run, minutes
from tests.delivery.test_reporting_failures import BASE, FakeOptimove, acme, optimove  # noqa: F401


def unmatched(client: Client, provider_message_id: str) -> None:
    event = ProviderEvent(
        provider="anymail:postmark",
        provider_message_id=provider_message_id,
        event=DeliveryEventType.DELIVERED,
        occurred_at=minutes(1),
    )
    assert delivery_event_record(client=client, event=event) is not None


@pytest.fixture
def reported(acme: Client, optimove: FakeOptimove) -> Any:  # noqa: F811
    run = make_run(acme)
    known_messages(run)
    optimove.status = lambda f, b: (
        400 if f == "UpdateCampaignInteractions" and b["EventID"] == OPENED else 200
    )
    campaign_report(run=run, now=NOW)
    unmatched(acme, "esp-nobody-knows")
    other = Client.objects.create(slug="other", name="Other", optimove_base_url=BASE)
    unmatched(other, "esp-of-another-client")
    return run


def test_the_run_page_shows_totals_timeline_and_unmatched_events(
    reported: Any, admin_client: HttpClient
) -> None:
    page = admin_client.get(f"/admin/campaigns/campaignrun/{reported.pk}/change/").content.decode()

    header = "".join(
        f"<th>{label}</th>"
        for label in ("0 Sent", "1 Delivered", "2 Opened", "3 Clicked", "4 Unsubscribed", "9 Bounced")
    )
    assert f"<thead><tr><th>template</th>{header}</tr></thead>" in page
    assert "<tr><td>14</td><td>3</td><td>2</td><td>2</td><td>1</td><td>0</td><td>1</td></tr>" in page
    assert "<tr><td>15</td><td>1</td><td>1</td><td>0</td><td>0</td><td>1</td><td>0</td></tr>" in page
    assert "<tr><td><b>all</b></td>" + "".join(f"<td><b>{n}</b></td>" for n in (4, 3, 2, 1, 1, 1)) in page
    # The two Opened interactions were refused (400), so they wait.
    assert "2 interaction(s) not yet accepted by Optimove." in page

    assert page.count(">accepted</td>") == 8  # the metrics call and 7 interactions calls
    assert page.count(">failed</td>") == 2
    assert "event 2 Opened, template 14, 2026-03-02" in page
    assert "Optimove UpdateCampaignInteractions answered 400" in page
    assert f'href="/admin/delivery/optimovereport/?run__id__exact={reported.pk}"' in page

    assert "1 event(s); the latest:" in page
    assert "esp-nobody-knows" in page
    assert "esp-of-another-client" not in page


def test_the_report_list_is_read_only_and_limited_to_the_users_clients(
    reported: Any, client: HttpClient
) -> None:
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename="view_optimovereport"))
    client.force_login(staff)
    listing = client.get("/admin/delivery/optimovereport/")
    assert listing.status_code == 200
    assert "0 optimove reports" in listing.content.decode()
    some_report = OptimoveReport.objects.filter(run=reported).first()
    assert some_report is not None
    assert client.get(f"/admin/delivery/optimovereport/{some_report.pk}/change/").status_code == 302

    reported.client.admins.add(staff)
    mine = client.get("/admin/delivery/optimovereport/", {"run__id__exact": reported.pk}).content.decode()
    assert "10 optimove reports" in mine
    detail = client.get(f"/admin/delivery/optimovereport/{some_report.pk}/change/")
    assert detail.status_code == 200
    assert "Save" not in detail.content.decode()
    assert client.get("/admin/delivery/optimovereport/add/").status_code == 403
