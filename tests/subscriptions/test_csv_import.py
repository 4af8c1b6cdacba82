"""The admin's CSV import of consent, through real admin requests (uploads) and the real database: a
good file changes exactly the customers it lists, in one transaction; a bad one changes nothing and
says which lines are wrong."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as HttpClient

from apps.clients.models import Channel, ChannelKind, Client
from apps.subscriptions import csv_import
from apps.subscriptions.csv_import import CsvImportInvalid, subscriptions_csv_check, subscriptions_csv_import
from apps.subscriptions.models import ConsentSource, ConsentStatus, Subscription, SubscriptionChange
from apps.subscriptions.services import ConsentUpdate, subscriptions_set
from tests.subscriptions.conftest import NextSend, consent_snapshot

OUT = ConsentStatus.OPTED_OUT
IN = ConsentStatus.OPTED_IN
UNKNOWN = ConsentStatus.UNKNOWN
IMPORT_URL = "/admin/subscriptions/subscription/import-csv/"


@pytest.fixture
def ops(client: HttpClient, db: None) -> HttpClient:
    client.force_login(User.objects.create_superuser("ops", password="pw"))
    return client


def upload(
    http: HttpClient, channel: Channel, content: bytes, name: str = "consent.csv", **extra: Any
) -> Any:
    file = SimpleUploadedFile(name, content, content_type="text/csv")
    return http.post(IMPORT_URL, {"channel": channel.pk, "file": file}, **extra)


def states(channel: Channel) -> dict[str, str]:
    return dict(Subscription.objects.filter(channel=channel).values_list("customer_id", "status"))


def test_a_good_file_changes_exactly_the_customers_it_lists(
    ops: HttpClient, email: Channel, sms: Channel
) -> None:
    subscriptions_set(
        channel=email,
        updates=[ConsentUpdate("c1", IN), ConsentUpdate("c2", OUT), ConsentUpdate("keep", IN)],
        source=ConsentSource.API,
    )
    subscriptions_set(channel=sms, updates=[ConsentUpdate("c1", IN)], source=ConsentSource.API)
    # A BOM, Windows line ends, the header in the other order, aliases in any case, spaces, a blank line.
    content = (
        "\ufeffstatus,customer_id\r\n"
        "OUT,c1\r\n"
        "opted_out, c2 \r\n"
        "\r\n"
        "true,c3\r\n"
        "0,c4\r\n"
        "unknown,c5\r\n"
        "In,c6\r\n"
        '"false","c,7"\r\n'
    ).encode()

    response = upload(ops, email, content, name="march-optouts.csv", follow=True)

    assert response.redirect_chain == [
        (f"/admin/subscriptions/subscription/?channel__id__exact={email.pk}", 302)
    ]
    assert [str(m) for m in response.context["messages"]] == [
        "Imported march-optouts.csv into acme/504 Email: 6 of 7 rows changed a customer's state; the others "
        "were already in that state."
    ]
    assert states(email) == {
        "c1": OUT,
        "c2": OUT,
        "c3": IN,
        "c4": OUT,
        "c5": UNKNOWN,
        "c6": IN,
        "c,7": OUT,
        "keep": IN,
    }
    assert states(sms) == {"c1": IN}
    imported = SubscriptionChange.objects.filter(source=ConsentSource.CSV_IMPORT)
    assert sorted(imported.values_list("subscription__customer_id", "detail")) == [
        (customer, "march-optouts.csv") for customer in ["c,7", "c1", "c3", "c4", "c5", "c6"]
    ]
    # c2 was already out: no history row, no new sync version.
    assert Subscription.objects.get(channel=email, customer_id="c2").sync_version == 1


def test_a_file_with_one_bad_line_changes_nothing_and_names_the_line(ops: HttpClient, email: Channel) -> None:
    subscriptions_set(channel=email, updates=[ConsentUpdate("c1", IN)], source=ConsentSource.API)
    before = consent_snapshot()
    content = b"customer_id,status\nc1,opted_out\nc2,out\nc3,maybe\nc4,in\n"

    response = upload(ops, email, content)

    assert response.status_code == 200
    invalid = response.context["invalid"]
    assert invalid.problems == [
        "line 4: status 'maybe' is not one of opted_in, in, true, 1, opted_out, out, false, 0, unknown"
    ]
    assert "line 4: status &#x27;maybe&#x27; is not one of" in response.content.decode()
    assert "Nothing was imported." in response.content.decode()
    assert consent_snapshot() == before


def test_many_bad_lines_are_counted_and_the_first_ten_listed(ops: HttpClient, email: Channel) -> None:
    lines = ["customer_id,status"] + [f"c{i},{'nope' if i % 2 else 'out'}" for i in range(40)]
    lines[5] = "c4,out,extra"
    lines[7] = ",out"

    response = upload(ops, email, "\n".join(lines).encode())

    invalid = response.context["invalid"]
    assert invalid.bad_lines == 22
    assert invalid.problems[:4] == [
        "line 3: status 'nope' is not one of opted_in, in, true, 1, opted_out, out, false, 0, unknown",
        "line 5: status 'nope' is not one of opted_in, in, true, 1, opted_out, out, false, 0, unknown",
        "line 6: expected 2 values (customer_id,status), found 3",
        "line 7: status 'nope' is not one of opted_in, in, true, 1, opted_out, out, false, 0, unknown",
    ]
    assert invalid.problems[4] == "line 8: the customer id is empty"
    assert len(invalid.problems) == 10
    assert "22 lines are wrong; the first 10:" in response.content.decode()
    assert not Subscription.objects.exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\r\n\r\n", "the file is empty; the first line must be customer_id,status"),
        (b"id,state\nc1,out\n", "line 1: the header must be customer_id,status, not 'id,state'"),
        (b"customer_id,status\n", "the file has a header but no rows"),
        (b"customer_id,status\nc1,out\nc\xe9,out\n", "line 3: not UTF-8 text (save the file as CSV UTF-8)"),
        (
            b"customer_id,status\n" + b"x" * 129 + b",out\n",
            "line 2: the customer id is longer than 128 characters",
        ),
        (b"customer_id,status\nc\x01,out\n", "line 2: the customer id holds control characters"),
        (b'customer_id,status\n"c1,out\n', "line 2: expected 2 values (customer_id,status), found 1"),
    ],
)
def test_a_bad_file_is_refused_whole(ops: HttpClient, email: Channel, content: bytes, problem: str) -> None:
    response = upload(ops, email, content)

    assert response.status_code == 200
    assert response.context["invalid"].problems == [problem]
    assert not Subscription.objects.exists()


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(
    ops: HttpClient, email: Channel, settings: Any
) -> None:
    settings.SUBSCRIPTIONS_CSV_MAX_BYTES = 1024 * 1024
    content = b"customer_id,status\n" + b"".join(f"c{i:07d},out\n".encode() for i in range(90_000))

    response = upload(ops, email, content)

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "file": ["The file is 1.1 MB; at most 1 MB is accepted. Split it."]
    }
    assert not Subscription.objects.exists()


def test_the_page_says_what_the_file_may_hold(ops: HttpClient, email: Channel) -> None:
    page = ops.get(IMPORT_URL).content.decode()

    assert "<code>customer_id,status</code>" in page
    assert "<li>opted_in: <code>opted_in, in, true, 1</code></li>" in page
    assert "<li>opted_out: <code>opted_out, out, false, 0</code></li>" in page
    assert "<li>unknown: <code>unknown</code></li>" in page
    assert "at most 8 MB" in page
    assert "with or without a byte-order mark" in page
    changelist = ops.get("/admin/subscriptions/subscription/").content.decode()
    assert f'href="{IMPORT_URL}"' in changelist


def test_an_import_in_chunks_is_one_transaction(email: Channel, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure in a later chunk (here: the database going away) rolls back the chunks before it."""
    content = b"customer_id,status\n" + b"".join(f"c{i},out\n".encode() for i in range(25))
    calls: list[int] = []
    real_set = csv_import.subscriptions_set

    def set_then_fail_on_the_third_chunk(**kwargs: Any) -> int:
        calls.append(len(kwargs["updates"]))
        if len(calls) == 3:
            raise ConnectionError("server closed the connection")
        return real_set(**kwargs)

    monkeypatch.setattr(csv_import, "subscriptions_set", set_then_fail_on_the_third_chunk)
    with pytest.raises(ConnectionError):
        subscriptions_csv_import(channel=email, data=content, file_name="big.csv", chunk_size=10)

    assert calls == [10, 10, 5]
    assert not Subscription.objects.exists()
    assert not SubscriptionChange.objects.exists()

    monkeypatch.setattr(csv_import, "subscriptions_set", real_set)
    result = subscriptions_csv_import(channel=email, data=content, file_name="big.csv", chunk_size=10)
    assert (result.rows, result.changed) == (25, 25)
    assert Subscription.objects.filter(channel=email, status=OUT).count() == 25


def test_a_customer_listed_twice_ends_in_the_state_of_the_last_line(email: Channel) -> None:
    content = b"customer_id,status\nc1,out\nc2,in\nc1,in\n"

    result = subscriptions_csv_import(channel=email, data=content, file_name="twice.csv", chunk_size=2)

    assert result.rows == 3
    assert states(email) == {"c1": IN, "c2": IN}


def test_the_check_counts_rows_and_refuses_oversized_data(email: Channel, settings: Any) -> None:
    assert subscriptions_csv_check(data=b"customer_id,status\nc1,out\n\nc2,in\n") == 2
    settings.SUBSCRIPTIONS_CSV_MAX_BYTES = 10
    with pytest.raises(CsvImportInvalid) as refused:
        subscriptions_csv_check(data=b"customer_id,status\nc1,out\n")
    assert refused.value.problems == ["the file is larger than 10 bytes; split it"]


def test_an_opt_out_by_csv_skips_the_next_send_of_that_channel_only(
    ops: HttpClient, email: Channel, sms: Channel, next_send: NextSend
) -> None:
    upload(ops, sms, b"customer_id,status\nc1,out\nc2,in\n")

    assert next_send(sms, "c1") == ("skipped", "opted out of this channel")
    assert next_send(email, "c1") == ("sent", "")
    assert next_send(sms, "c2") == ("sent", "")


def test_a_client_admin_imports_only_into_their_clients_channels(
    client: HttpClient, acme: Client, email: Channel
) -> None:
    globex = Client.objects.create(
        slug="globex", name="Globex", optimove_base_url="https://api5.optimove.net"
    )
    theirs = Channel.objects.create(
        client=globex, name="Globex mail", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="console"
    )
    staff = User.objects.create_user("acme-ops", password="pw", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_subscription", "add_subscription", "change_subscription"]
        )
    )
    acme.admins.add(staff)
    client.force_login(staff)

    page = client.get(IMPORT_URL)
    forged = upload(client, theirs, b"customer_id,status\ng1,out\n")
    own = upload(client, email, b"customer_id,status\nc1,out\n")

    assert list(page.context["form"].fields["channel"].queryset) == [email]
    assert forged.status_code == 200
    assert list(forged.context["form"].errors) == ["channel"]
    assert own.status_code == 302
    assert list(Subscription.objects.values_list("channel_id", "customer_id", "status")) == [
        (email.pk, "c1", OUT)
    ]
    assert list(SubscriptionChange.objects.values_list("source", "detail")) == [("csv_import", "consent.csv")]
