"""UpdateCustomerAttributes callbacks: rejected customers are recorded, put back to pending with the
reason and shown in the admin, whichever of the callback and the call's answer comes first; a forged
token records nothing; shapes nobody documented are kept, not refused."""

from __future__ import annotations

import json
from typing import Any

from django.core import signing
from django.test import Client as HttpClient
from django.urls import reverse

import apps.subscriptions.admin_sync  # noqa: F401  (registers the consent sync's admin pages)
from apps.sandbox.models import SandboxAttribute
from apps.subscriptions.callbacks import attribute_callback_token
from apps.subscriptions.models import ConsentSyncCall, ConsentSyncRejection, Subscription
from apps.subscriptions.sync import channels_due, subscriptions_sync
from tests.conftest import wait_for
from tests.subscriptions.sync_support import (
    ATTRIBUTE,
    IN,
    OUT,
    Consent,
    accepted,
    after_each_call,
    consent,
    pending,
    sandbox_server,
    set_states,
)

__all__ = ["after_each_call", "consent", "sandbox_server"]

CALLBACK_PATH = "/optimove/attributes-callback/"


def rejected_reason(customer_id: str) -> str:
    """What the sandbox reports for a customer whose attribute Optimove does not know."""
    return f"CustomerID {customer_id}: unknown attribute '{ATTRIBUTE}'"


def sync_error(customer_id: str) -> str:
    return f"Optimove rejected this state (UpdateCustomerAttributes callback): {rejected_reason(customer_id)}"


def synced_then_attribute_lost(consent: Consent) -> None:
    """s1 and s2 pushed and accepted; then the attribute disappears from Optimove, so Optimove's
    callbacks reject whatever is sent next."""
    set_states(consent.sms, {"s1": OUT, "s2": OUT})
    subscriptions_sync(channel=consent.sms)
    wait_for(
        lambda: ConsentSyncCall.objects.filter(callback_success=True).count() == 1, 10, "the first callback"
    )
    SandboxAttribute.objects.filter(account=consent.account).delete()


def test_rejected_customers_are_recorded_reopened_and_shown_in_the_admin(
    consent: Consent, admin_client: HttpClient
) -> None:
    synced_then_attribute_lost(consent)
    set_states(consent.sms, {"s1": IN, "s3": OUT})

    run = subscriptions_sync(channel=consent.sms)

    assert (run.pushed, run.calls) == (2, 1)  # Optimove accepted the call itself...
    wait_for(lambda: ConsentSyncRejection.objects.count() == 2, 10, "the callback with the rejections")
    # ...and rejected both customers in its callback: recorded, and back to pending with the reason.
    rejections = ConsentSyncRejection.objects.order_by("customer_id")
    assert [(r.customer_id, r.reason, getattr(r.subscription, "customer_id", None)) for r in rejections] == [
        ("s1", rejected_reason("s1"), "s1"),
        ("s3", rejected_reason("s3"), "s3"),
    ]
    wait_for(lambda: len(pending(consent.sms)) == 2, 10, "the rejections to reach the rows")
    assert pending(consent.sms) == {"s1": sync_error("s1"), "s3": sync_error("s3")}
    assert accepted(consent.sms) == {"s2"}
    call = ConsentSyncCall.objects.latest("id")
    assert (call.state, call.callback_success, call.rejected) == ("accepted", False, 2)
    assert channels_due() == []  # not sent again every minute

    page = admin_client.get(reverse("admin:subscriptions_consentsyncrejection_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    for customer_id in ("s1", "s3"):
        assert f'<td class="field-customer_id">{customer_id}</td>' in html
        assert rejected_reason(customer_id).replace("'", "&#x27;") in html
    calls_page = admin_client.get(reverse("admin:subscriptions_consentsynccall_changelist"))
    assert calls_page.status_code == 200
    assert "errors" in calls_page.content.decode()

    # A person pushes them again from the admin once the attribute is back.
    SandboxAttribute.objects.create(account=consent.account, name=ATTRIBUTE, type="VARCHAR(10)")
    response = admin_client.post(
        reverse("admin:subscriptions_consentsyncrejection_changelist"),
        {"action": "push_again", "_selected_action": [r.pk for r in rejections]},
    )
    assert response.status_code == 302
    assert pending(consent.sms) == {"s1": "", "s3": ""}
    assert channels_due() == [consent.sms.pk]

    again = subscriptions_sync(channel=consent.sms)

    assert consent.attribute_calls()[-1] == [("s1", [(ATTRIBUTE, IN)]), ("s3", [(ATTRIBUTE, OUT)])]
    assert (again.pushed, again.calls) == (2, 1)
    assert accepted(consent.sms) == {"s1", "s2", "s3"}


def test_a_callback_that_overtakes_the_calls_answer_is_not_lost(
    consent: Consent, after_each_call: Any
) -> None:
    synced_then_attribute_lost(consent)
    set_states(consent.sms, {"s1": IN})

    # Optimove's callback is recorded before the sync records that the call was accepted.
    after_each_call(
        "update_customer_attributes",
        lambda made: wait_for(
            lambda: ConsentSyncRejection.objects.filter(customer_id="s1").exists(), 10, "the callback"
        ),
    )
    subscriptions_sync(channel=consent.sms)

    call = ConsentSyncCall.objects.latest("id")
    assert (call.state, call.rejected) == ("accepted", 1)
    assert pending(consent.sms) == {"s1": sync_error("s1")}
    assert accepted(consent.sms) == {"s2"}


def test_a_rejection_of_a_state_changed_since_records_it_and_leaves_the_new_state_alone(
    consent: Consent,
) -> None:
    set_states(consent.sms, {"s1": OUT})
    subscriptions_sync(channel=consent.sms)
    wait_for(lambda: ConsentSyncCall.objects.get().callback_received_at is not None, 10, "the callback")
    call = ConsentSyncCall.objects.get()
    ConsentSyncCall.objects.filter(pk=call.pk).update(callback_received_at=None)  # as if not arrived yet
    set_states(consent.sms, {"s1": IN})  # changed after the call: pending, without error

    response = post_callback(
        call.pk, {"isSuccess": False, "requestId": "r", "errors": ["CustomerID s1: nope"]}
    )

    assert response.status_code == 200
    assert list(ConsentSyncRejection.objects.values_list("customer_id", "reason")) == [
        ("s1", "CustomerID s1: nope")
    ]
    assert pending(consent.sms) == {"s1": ""}  # the new state goes out with the next run


def post_callback(call_id: int, body: Any, *, token: str | None = None, raw: bytes | None = None) -> Any:
    token = attribute_callback_token(call_id=call_id) if token is None else token
    data = raw if raw is not None else json.dumps(body).encode()
    return HttpClient().post(f"{CALLBACK_PATH}?token={token}", data=data, content_type="application/json")


def accepted_call(consent: Consent) -> ConsentSyncCall:
    """An accepted call for s1 and s2 whose callback has not arrived (the sandbox sends none)."""
    set_states(consent.sms, {"s1": OUT, "s2": OUT})
    rows = list(Subscription.objects.filter(channel=consent.sms).order_by("customer_id"))
    Subscription.objects.filter(channel=consent.sms).update(synced_version=1)
    return ConsentSyncCall.objects.create(
        client=consent.client,
        channel=consent.sms,
        method="attribute",
        customers=2,
        versions={row.customer_id: row.sync_version for row in rows},
        state="accepted",
        sent_at=rows[0].changed_at,
    )


def test_a_forged_token_is_refused_and_records_nothing(consent: Consent) -> None:
    call = accepted_call(consent)
    body = {"isSuccess": False, "requestId": "x", "errors": ["CustomerID s1: forged"]}
    genuine = attribute_callback_token(call_id=call.pk)
    other_salt = signing.dumps({"call": call.pk})  # signed by us, but not as a callback token

    for token in (
        genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),
        "",
        other_salt,
        str(call.pk),
    ):
        response = post_callback(call.pk, body, token=token)
        assert (response.status_code, response.json()) == (403, {"error": "invalid callback token"})

    call.refresh_from_db()
    assert (call.callback_received_at, call.rejected) == (None, 0)
    assert not ConsentSyncRejection.objects.exists()
    assert pending(consent.sms) == {}


def test_shapes_nobody_documented_are_kept(consent: Consent) -> None:
    call = accepted_call(consent)
    body = {
        "IsSuccess": "false",
        "RequestID": 7,
        "Errors": [{"customerId": "s1", "message": "bad value"}, {"code": 12}, 42, "something odd"],
    }

    response = post_callback(call.pk, body)

    assert (response.status_code, response.json()) == (200, {"status": "recorded"})
    call.refresh_from_db()
    assert (call.callback_success, call.callback_request_id, call.callback_note, call.rejected) == (
        False,
        "7",
        "",
        4,
    )
    assert call.callback_body == body
    assert list(ConsentSyncRejection.objects.order_by("id").values_list("customer_id", "reason")) == [
        ("s1", "bad value"),
        ("", '{"code": 12}'),
        ("", "42"),
        ("", "something odd"),
    ]
    reason = "Optimove rejected this state (UpdateCustomerAttributes callback): bad value"
    assert pending(consent.sms) == {"s1": reason}
    assert accepted(consent.sms) == {"s2"}

    # Optimove repeating its callback records nothing more.
    repeat = post_callback(call.pk, {"isSuccess": False, "errors": ["CustomerID s2: late"]})
    assert (repeat.status_code, repeat.json()) == (200, {"status": "already recorded"})
    assert ConsentSyncRejection.objects.count() == 4
    assert accepted(consent.sms) == {"s2"}


def test_a_body_that_is_not_json_or_not_an_object_is_recorded_with_a_note(consent: Consent) -> None:
    first = accepted_call(consent)
    second = ConsentSyncCall.objects.create(
        client=consent.client, channel=consent.sms, method="attribute", customers=0, sent_at=first.sent_at
    )
    third = ConsentSyncCall.objects.create(
        client=consent.client, channel=consent.sms, method="attribute", customers=0, sent_at=first.sent_at
    )

    assert post_callback(first.pk, None, raw=b"<html>oops</html>").status_code == 200
    assert post_callback(second.pk, ["CustomerID s1: in a list"]).status_code == 200
    assert post_callback(third.pk, {"isSuccess": False, "errors": "all wrong"}).status_code == 200

    first.refresh_from_db()
    second.refresh_from_db()
    third.refresh_from_db()
    assert (first.callback_note, first.callback_body, first.callback_success) == (
        "the body is not JSON",
        {"unreadable": "<html>oops</html>"},
        None,
    )
    assert (second.callback_note, second.callback_body) == (
        "the body is a JSON list, not an object",
        ["CustomerID s1: in a list"],
    )
    assert (third.callback_note, third.callback_success) == ("errors is a str, not a list", False)
    assert list(ConsentSyncRejection.objects.values_list("call_id", "customer_id", "reason")) == [
        (third.pk, "", "all wrong")
    ]
    assert pending(consent.sms) == {}  # nothing named a customer of those calls


def test_a_callback_for_a_pruned_call_is_answered_404(consent: Consent) -> None:
    call = accepted_call(consent)
    token = attribute_callback_token(call_id=call.pk)
    call.delete()

    response = post_callback(0, {"isSuccess": True, "errors": []}, token=token)

    assert (response.status_code, response.json()) == (
        404,
        {"error": "no such call (its records were pruned)"},
    )
    assert not ConsentSyncRejection.objects.exists()


def test_the_callback_answers_only_post(consent: Consent) -> None:
    call = accepted_call(consent)
    response = HttpClient().get(f"{CALLBACK_PATH}?token={attribute_callback_token(call_id=call.pk)}")
    assert response.status_code == 405
