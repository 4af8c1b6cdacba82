"""The client API, through real HTTP requests to the Django app with per-client tokens, against the
real database: reads, writes, bulk writes, bad input, other clients' and revoked tokens."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client as HttpClient

from apps.clients.api_tokens import client_api_token_create, client_api_token_revoke
from apps.clients.models import Channel, ChannelKind, Client, ClientApiToken
from apps.subscriptions.models import ConsentSource, ConsentStatus, Subscription, SubscriptionChange
from apps.subscriptions.services import ConsentUpdate, subscriptions_set
from tests.subscriptions.conftest import NextSend, consent_snapshot

OUT = ConsentStatus.OPTED_OUT
IN = ConsentStatus.OPTED_IN
BASE = "/api/v1/clients/acme/channels/504/subscriptions"


@pytest.fixture
def acme_token(acme: Client) -> str:
    return client_api_token_create(client=acme, name="CRM").plaintext


@pytest.fixture
def globex(db: None) -> Client:
    globex = Client.objects.create(
        slug="globex", name="Globex", optimove_base_url="https://api5.optimove.net"
    )
    Channel.objects.create(
        client=globex, name="Email", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="console"
    )
    return globex


@pytest.fixture
def api(client: HttpClient, email: Channel, sms: Channel, acme_token: str) -> HttpClient:
    """An HTTP client sending acme's token; c1 is opted in on the email channel beforehand, so "nothing
    changed" is checked against a table that holds something."""
    subscriptions_set(channel=email, updates=[ConsentUpdate("c1", IN)], source=ConsentSource.ADMIN)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {acme_token}"
    return client


def put(api: HttpClient, url: str, body: Any) -> Any:
    return api.put(url, json.dumps(body), content_type="application/json")


def post(api: HttpClient, url: str, body: Any) -> Any:
    return api.post(url, json.dumps(body), content_type="application/json")


def test_reading_a_customer_never_recorded_answers_unknown_and_nulls(api: HttpClient) -> None:
    response = api.get(f"{BASE}/c404")

    assert response.status_code == 200
    assert response.json() == {
        "customer_id": "c404",
        "channel_id": 504,
        "status": "unknown",
        "changed_at": None,
        "source": None,
    }


def test_put_sets_the_state_with_the_tokens_prefix_as_evidence_and_get_reads_it(
    api: HttpClient, email: Channel, acme_token: str
) -> None:
    response = put(api, f"{BASE}/c1", {"status": "opted_out"})

    assert response.status_code == 200
    row = Subscription.objects.get(channel=email, customer_id="c1")
    expected = {
        "customer_id": "c1",
        "channel_id": 504,
        "status": "opted_out",
        "changed_at": row.changed_at.isoformat().replace("+00:00", "Z"),
        "source": "api",
    }
    assert response.json() == {**expected, "changed": True}
    assert api.get(f"{BASE}/c1").json() == expected
    assert (row.status, row.source, row.sync_version) == (OUT, ConsentSource.API, 2)
    prefix = acme_token[:12]
    assert list(row.changes.values_list("status", "source", "detail")) == [
        (OUT, ConsentSource.API, prefix),
        (IN, ConsentSource.ADMIN, ""),
    ]
    # The same state again changes nothing and adds no history.
    again = put(api, f"{BASE}/c1", {"status": "opted_out"})
    assert again.json()["changed"] is False
    assert row.changes.count() == 2


def test_bulk_sets_every_customer_in_one_call(api: HttpClient, email: Channel, sms: Channel) -> None:
    updates = [
        {"customer_id": "c1", "status": "opted_out"},
        {"customer_id": "c2", "status": "opted_out"},
        {"customer_id": "c3", "status": "opted_in"},
        {"customer_id": "c4", "status": "unknown"},
    ]
    response = post(api, f"{BASE}/bulk", {"updates": updates})

    assert response.status_code == 200
    assert response.json() == {"changed": 4}
    assert dict(Subscription.objects.filter(channel=email).values_list("customer_id", "status")) == {
        "c1": OUT,
        "c2": OUT,
        "c3": IN,
        "c4": ConsentStatus.UNKNOWN,
    }
    assert set(
        SubscriptionChange.objects.filter(source=ConsentSource.API).values_list("source", flat=True)
    ) == {"api"}
    assert SubscriptionChange.objects.filter(source=ConsentSource.API).count() == 4
    assert not Subscription.objects.filter(channel=sms).exists()


def test_bulk_takes_ten_thousand_updates(api: HttpClient, email: Channel) -> None:
    updates = [{"customer_id": f"k{i}", "status": "opted_out"} for i in range(10_000)]

    response = post(api, f"{BASE}/bulk", {"updates": updates})

    assert response.status_code == 200
    assert response.json() == {"changed": 10_000}
    assert Subscription.objects.filter(channel=email, status=OUT).count() == 10_000


def test_an_opt_out_by_api_skips_the_next_send_of_that_channel_only(
    api: HttpClient, email: Channel, sms: Channel, next_send: NextSend
) -> None:
    assert next_send(email, "c7") == ("sent", "")

    assert put(api, f"{BASE}/c7", {"status": "opted_out"}).status_code == 200

    assert next_send(email, "c7") == ("skipped", "opted out of this channel")
    assert next_send(sms, "c7") == ("sent", "")
    assert next_send(email, "c8") == ("sent", "")


def _items(n: int) -> list[dict[str, str]]:
    return [{"customer_id": "c1", "status": "opted_out"}] + [
        {"customer_id": f"n{i}", "status": "opted_out"} for i in range(1, n)
    ]


def _with(items: list[dict[str, Any]], index: int, item: Any) -> list[Any]:
    changed: list[Any] = list(items)
    changed[index] = item
    return changed


BAD_BULK_BODIES = [
    pytest.param(
        {"updates": _items(10_001)},
        "updates: holds at most 10000 updates per request; split the list",
        id="10001-items",
    ),
    pytest.param(
        {"updates": _with(_items(20), 17, {"customer_id": "n17", "status": "unsubscribed"})},
        "updates[17].status: must be one of opted_in, opted_out, unknown, not 'unsubscribed'",
        id="bad-status-at-17",
    ),
    pytest.param(
        {"updates": _with(_items(5), 3, {"status": "opted_out"})},
        "updates[3].customer_id: is required",
        id="missing-customer-id",
    ),
    pytest.param(
        {"updates": _with(_items(5), 2, {"customer_id": 12, "status": "opted_out"})},
        "updates[2].customer_id: must be a string",
        id="numeric-customer-id",
    ),
    pytest.param(
        {"updates": _with(_items(5), 4, {"customer_id": " n4", "status": "opted_out"})},
        "updates[4].customer_id: must not start or end with spaces",
        id="spaces-around-customer-id",
    ),
    pytest.param(
        {"updates": _with(_items(5), 1, {"customer_id": "x" * 129, "status": "opted_out"})},
        "updates[1].customer_id: must be at most 128 characters",
        id="long-customer-id",
    ),
    pytest.param(
        {"updates": _with(_items(3), 1, {"customer_id": "n1", "Status": "opted_out"})},
        "updates[1].Status: is not a known field (expected customer_id, status)",
        id="unknown-field",
    ),
    pytest.param(
        {"updates": _with(_items(3), 2, "n2")},
        "updates[2]: must be a JSON object, not str",
        id="not-an-object",
    ),
    pytest.param({"updates": []}, "updates: must hold at least one update", id="empty"),
    pytest.param(
        {"updates": "c1"},
        "updates: must be a list of {customer_id, status} objects, not str",
        id="not-a-list",
    ),
    pytest.param({}, "updates: is required", id="no-updates"),
    pytest.param([{"customer_id": "c1"}], "must be a JSON object, not list", id="body-a-list"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BULK_BODIES)
def test_bad_bulk_input_is_refused_with_the_item_named_and_changes_nothing(
    api: HttpClient, body: Any, message: str
) -> None:
    before = consent_snapshot()

    response = post(api, f"{BASE}/bulk", body)

    assert response.status_code == 400
    assert response.json()["error"] == message
    assert response.json()["errors"] == [message]
    assert consent_snapshot() == before


def test_every_bad_item_is_listed(api: HttpClient) -> None:
    items = _with(_with(_items(5), 1, {"customer_id": "", "status": "opted_out"}), 3, {"customer_id": "n3"})

    response = post(api, f"{BASE}/bulk", {"updates": items})

    assert response.status_code == 400
    assert response.json() == {
        "error": "updates[1].customer_id: must not be empty (and 1 more)",
        "errors": ["updates[1].customer_id: must not be empty", "updates[3].status: is required"],
    }


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        pytest.param(
            '{"updates": [',
            "application/json",
            "JSON parse error - Expecting value: line 1 column 14 (char 13)",
            id="non-json",
        ),
        pytest.param(
            json.dumps({"updates": [{"customer_id": "c1", "status": "opted_out"}]}),
            "text/plain",
            "the body must be JSON sent with Content-Type: application/json, not text/plain",
            id="wrong-content-type",
        ),
        pytest.param(
            "updates=c1",
            "application/x-www-form-urlencoded",
            "the body must be JSON sent with Content-Type: application/json, "
            "not application/x-www-form-urlencoded",
            id="form-body",
        ),
    ],
)
def test_a_body_that_is_not_json_is_refused_and_changes_nothing(
    api: HttpClient, body: str, content_type: str, message: str
) -> None:
    before = consent_snapshot()

    response = api.post(f"{BASE}/bulk", body, content_type=content_type)

    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert consent_snapshot() == before


def test_a_body_over_the_size_limit_is_refused(api: HttpClient, settings: Any) -> None:
    settings.SUBSCRIPTIONS_API_MAX_BODY_BYTES = 1000
    before = consent_snapshot()

    response = post(api, f"{BASE}/bulk", {"updates": _items(30)})

    assert response.status_code == 400
    assert response.json() == {"error": "the body is larger than 1000 bytes"}
    assert consent_snapshot() == before


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"status": "out"}, "status: must be one of opted_in, opted_out, unknown, not 'out'"),
        ({"status": None}, "status: must be one of opted_in, opted_out, unknown, not null"),
        ({}, "status: is required"),
        ({"status": "opted_out", "customer_id": "c2"}, "customer_id: is not a known field (expected status)"),
    ],
)
def test_a_bad_put_is_refused_and_changes_nothing(api: HttpClient, body: Any, message: str) -> None:
    before = consent_snapshot()

    response = put(api, f"{BASE}/c1", body)

    assert response.status_code == 400
    assert response.json()["error"] == message
    assert consent_snapshot() == before


def test_a_customer_id_too_long_in_the_path_is_refused(api: HttpClient) -> None:
    response = put(api, f"{BASE}/{'x' * 129}", {"status": "opted_out"})

    assert response.status_code == 400
    assert response.json()["error"] == "customer_id: must be at most 128 characters"
    assert not Subscription.objects.filter(customer_id__startswith="xxx").exists()


def test_an_unknown_channel_of_the_tokens_client_is_404(api: HttpClient) -> None:
    before = consent_snapshot()

    responses = [
        api.get("/api/v1/clients/acme/channels/999/subscriptions/c1"),
        put(api, "/api/v1/clients/acme/channels/999/subscriptions/c1", {"status": "opted_out"}),
        post(api, "/api/v1/clients/acme/channels/999/subscriptions/bulk", {"updates": _items(2)}),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    assert responses[0].json() == {"error": "client acme has no channel 999"}
    assert consent_snapshot() == before


def test_another_clients_token_is_refused_with_403_and_changes_nothing(
    client: HttpClient, email: Channel, globex: Client
) -> None:
    subscriptions_set(channel=email, updates=[ConsentUpdate("c1", IN)], source=ConsentSource.ADMIN)
    globex_token = client_api_token_create(client=globex, name="Globex CRM").plaintext
    before = consent_snapshot()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {globex_token}"}

    responses = [
        client.get(f"{BASE}/c1", **auth),
        client.put(
            f"{BASE}/c1", json.dumps({"status": "opted_out"}), content_type="application/json", **auth
        ),
        client.post(
            f"{BASE}/bulk", json.dumps({"updates": _items(3)}), content_type="application/json", **auth
        ),
        # An unknown client answers the same: a token holder learns nothing about other clients.
        client.get("/api/v1/clients/nobody/channels/504/subscriptions/c1", **auth),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403, 403]
    assert {r.json()["error"] for r in responses} == {"this token belongs to another client"}
    assert consent_snapshot() == before


def test_the_token_of_an_inactive_client_is_refused(api: HttpClient, acme: Client) -> None:
    Client.objects.filter(pk=acme.pk).update(is_active=False)
    before = consent_snapshot()

    response = put(api, f"{BASE}/c1", {"status": "opted_out"})

    assert (response.status_code, response.json()) == (403, {"error": "client acme is not active"})
    assert consent_snapshot() == before


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "no API token: send the client's API token as “Authorization: Bearer <token>”"),
        (
            "Basic dXNlcjpwdw==",
            "no API token: send the client's API token as “Authorization: Bearer <token>”",
        ),
        (
            "Bearer",
            "malformed Authorization header: send the client's API token as “Authorization: Bearer <token>”",
        ),
        ("Bearer not-a-token", "malformed token"),
        ("Bearer cpt_00000000_" + "A" * 43, "unknown token"),
    ],
)
def test_a_missing_or_invalid_token_is_refused_with_401(
    client: HttpClient, email: Channel, header: str | None, message: str
) -> None:
    before = consent_snapshot()
    auth = {"HTTP_AUTHORIZATION": header} if header else {}

    read = client.get(f"{BASE}/c1", **auth)
    write = client.post(
        f"{BASE}/bulk", json.dumps({"updates": _items(2)}), content_type="application/json", **auth
    )

    assert (read.status_code, write.status_code) == (401, 401)
    assert read.json() == {"error": message}
    assert read["WWW-Authenticate"] == 'Bearer realm="client-api"'
    assert consent_snapshot() == before


def test_a_wrong_secret_behind_a_real_prefix_is_refused(
    client: HttpClient, email: Channel, acme_token: str
) -> None:
    forged = acme_token[:13] + ("A" if acme_token[13] != "A" else "B") + acme_token[14:]

    response = client.get(f"{BASE}/c1", HTTP_AUTHORIZATION=f"Bearer {forged}")

    assert response.status_code == 401
    assert response.json() == {"error": "unknown token"}


def test_a_revoked_token_is_refused_and_changes_nothing(
    api: HttpClient, acme: Client, acme_token: str
) -> None:
    assert put(api, f"{BASE}/c2", {"status": "opted_out"}).status_code == 200
    token = ClientApiToken.objects.get(prefix=acme_token[:12])
    assert client_api_token_revoke(token=token)
    before = consent_snapshot()

    responses = [
        api.get(f"{BASE}/c2"),
        put(api, f"{BASE}/c2", {"status": "opted_in"}),
        post(api, f"{BASE}/bulk", {"updates": _items(3)}),
    ]

    assert [r.status_code for r in responses] == [401, 401, 401]
    assert {r.json()["error"] for r in responses} == {"this token was revoked"}
    assert consent_snapshot() == before
    # Another live token of the same client still works.
    fresh = client_api_token_create(client=acme, name="CRM 2").plaintext
    assert api.get(f"{BASE}/c2", HTTP_AUTHORIZATION=f"Bearer {fresh}").json()["status"] == "opted_out"


def test_only_the_tokens_hash_and_prefix_are_stored_and_its_use_is_recorded(
    api: HttpClient, acme_token: str
) -> None:
    row = ClientApiToken.objects.get()
    assert row.prefix == acme_token[:12]
    assert row.token_hash == hashlib.sha256(acme_token.encode()).hexdigest()
    stored = json.dumps(list(ClientApiToken.objects.values()), default=str)
    assert acme_token[12:] not in stored
    assert row.last_used_at is None

    api.get(f"{BASE}/c1")

    row.refresh_from_db()
    assert row.last_used_at is not None


def test_the_token_never_reaches_the_logs(
    api: HttpClient, acme_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    put(api, f"{BASE}/c1", {"status": "opted_out"})
    put(api, f"{BASE}/c1", {"status": "nope"})
    token = ClientApiToken.objects.get()
    client_api_token_revoke(token=token)
    api.get(f"{BASE}/c1")

    assert caplog.records  # the requests were logged...
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert acme_token[12:] not in logged  # ...without the token's secret part


# The token admin: the plaintext is shown once


@pytest.fixture
def superuser_client(client: HttpClient, db: None) -> HttpClient:
    client.force_login(User.objects.create_superuser("ops", password="pw"))
    return client


def test_the_admin_creates_a_token_and_shows_it_once(superuser_client: HttpClient, acme: Client) -> None:
    response = superuser_client.post(
        "/admin/clients/clientapitoken/add/", {"client": acme.pk, "name": "CRM nightly"}
    )

    assert response.status_code == 200
    token = ClientApiToken.objects.get()
    plaintext = response.context["plaintext"]
    assert plaintext.startswith(token.prefix)
    assert hashlib.sha256(plaintext.encode()).hexdigest() == token.token_hash
    assert plaintext in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert (token.client, token.name) == (acme, "CRM nightly")
    # Never again: not on the list, the token's page or its history.
    for url in (
        "/admin/clients/clientapitoken/",
        f"/admin/clients/clientapitoken/{token.pk}/change/",
        f"/admin/clients/clientapitoken/{token.pk}/history/",
    ):
        page = superuser_client.get(url)
        assert page.status_code == 200
        assert token.prefix in page.content.decode()
        assert plaintext not in page.content.decode()
    # It works on the API until the revoke action.
    auth = {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}
    Channel.objects.create(
        client=acme, name="Email", kind="email", optimove_channel_id=504, provider="console"
    )
    assert superuser_client.get(f"{BASE}/c1", **auth).status_code == 200
    superuser_client.post(
        "/admin/clients/clientapitoken/", {"action": "revoke", "_selected_action": [str(token.pk)]}
    )
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert superuser_client.get(f"{BASE}/c1", **auth).status_code == 401


def test_a_token_form_with_errors_creates_nothing(superuser_client: HttpClient, acme: Client) -> None:
    response = superuser_client.post("/admin/clients/clientapitoken/add/", {"client": acme.pk, "name": ""})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"name": ["This field is required."]}
    assert not ClientApiToken.objects.exists()


def test_a_client_admin_manages_only_their_clients_tokens(
    client: HttpClient, acme: Client, globex: Client
) -> None:
    staff = User.objects.create_user("acme-ops", password="pw", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_clientapitoken", "add_clientapitoken", "change_clientapitoken"]
        )
    )
    acme.admins.add(staff)
    theirs = client_api_token_create(client=globex, name="Globex CRM").token
    client.force_login(staff)

    listing = client.get("/admin/clients/clientapitoken/")
    forged = client.post("/admin/clients/clientapitoken/add/", {"client": globex.pk, "name": "mine now"})
    revoke = client.post(
        "/admin/clients/clientapitoken/", {"action": "revoke", "_selected_action": [str(theirs.pk)]}
    )

    assert list(listing.context["cl"].result_list) == []
    assert forged.status_code == 200
    assert "client" in forged.context["adminform"].form.errors
    assert ClientApiToken.objects.count() == 1
    assert revoke.status_code == 302
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
