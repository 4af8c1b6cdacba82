"""List-Unsubscribe and List-Unsubscribe-Post (RFC 8058) on every campaign email, over SMTP (as a
loopback server receives it) and over an anymail ESP (as its API receives it); and the one-click URL,
which unsubscribes on the mailbox provider's POST and on nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses
from django.conf import settings
from django.test import Client as HttpClient

from apps.channels.registry import channel_config_errors
from apps.clients.models import Channel, ChannelKind, Client
from apps.subscriptions.models import ConsentSource, ConsentStatus
from apps.subscriptions.unsubscribe import unsubscribe_links_for
from tests.conftest import wait_for
from tests.receivers import SmtpReceiver, smtp_receiver
from tests.subscriptions.opt_out_support import (
    assert_next_send_stopped_on_that_channel_only,
    current,
    email_template,
    history,
    queued_message,
    send,
    sms_template,
)

POSTMARK_API = "https://api.postmarkapp.com/email"
ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture
def http() -> HttpClient:
    """Mailbox providers post without cookies or CSRF tokens."""
    return HttpClient(enforce_csrf_checks=True)


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with smtp_receiver() as receiver:
        yield receiver


def smtp_channel(client: Client, smtp: SmtpReceiver) -> Channel:
    return Channel.objects.create(
        client=client,
        name="Newsletter",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=504,
        provider="smtp",
        provider_options={"host": smtp.host, "port": smtp.port, "from_email": "news@acme.example"},
        address_attribute="Email",
    )


def postmark_channel(client: Client) -> Channel:
    return Channel.objects.create(
        client=client,
        name="Newsletter",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=504,
        provider="anymail:postmark",
        provider_options={"from_email": "Shop <news@shop.example>", "headers": {"X-Campaign": "sale"}},
        provider_secrets={"server_token": "pm-server-token"},
        address_attribute="Email",
    )


def one_click_path(header: str) -> str:
    """The URL inside the header's angle brackets, as a path of ours."""
    assert header.startswith("<")
    assert header.endswith(">")
    url = header[1:-1]
    assert url.startswith(f"{settings.PUBLIC_BASE_URL}/t/u/acme/504/"), url
    assert url.endswith("/one-click")
    return urlsplit(url).path


def test_smtp_email_carries_the_headers_and_the_one_click_post_unsubscribes_at_once(
    http: HttpClient, acme: Client, sms: Channel, smtp: SmtpReceiver, redis_client: Any
) -> None:
    mail = smtp_channel(acme, smtp)
    email_template(mail)
    sms_template(sms)
    first = send(queued_message(mail, campaign_id=1))
    assert first.status == "sent"
    wait_for(lambda: smtp.count() == 1, timeout=10, what="the email at the SMTP server")

    received = smtp.mails[0].message
    assert received["List-Unsubscribe-Post"] == ONE_CLICK
    # The long header arrives folded onto a continuation line (RFC 5322), hence the leading space.
    path = one_click_path(str(received["List-Unsubscribe"]).strip())
    # The header's URL and the body's link carry the same token.
    text = received.get_body(preferencelist=("plain",))
    assert text is not None
    assert f"{settings.PUBLIC_BASE_URL}{path.removesuffix('/one-click')}" in text.get_content()

    # The POST a mailbox provider sends (Gmail: form-encoded, no cookies, no confirmation page).
    response = http.post(path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")
    assert (response.status_code, response.content) == (200, b"You are unsubscribed.\n")
    assert current(mail) == (ConsentStatus.OPTED_OUT, ConsentSource.ONE_CLICK)
    assert history(mail) == [(ConsentStatus.OPTED_OUT, ConsentSource.ONE_CLICK, f"message {first.pk}")]
    # Providers may post again: nothing more is recorded.
    again = http.post(path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")
    assert (again.status_code, again.content) == (200, b"You are already unsubscribed.\n")
    assert len(history(mail)) == 1

    assert_next_send_stopped_on_that_channel_only(opted_out=mail, other=sms, campaign_id=2)
    assert smtp.count() == 1


def test_the_one_click_url_needs_its_body_and_a_get_only_shows_the_page(
    http: HttpClient, acme: Client, email: Channel
) -> None:
    message = queued_message(email, campaign_id=1)
    links = unsubscribe_links_for(channel=email, customer_id=message.customer_id, message_id=message.pk)
    assert links is not None
    path = urlsplit(links.one_click_url).path

    # A mail client without RFC 8058 support opens the header's URL in a browser: the page asks.
    page = http.get(path)
    assert page.status_code == 200
    assert "Unsubscribe from Acme?" in page.content.decode()
    assert f'action="{urlsplit(links.page_url).path}"' in page.content.decode()
    assert http.head(path).status_code == 200
    for body, content_type in [
        ("", "application/x-www-form-urlencoded"),
        ("List-Unsubscribe=Yes", "application/x-www-form-urlencoded"),
        ("one-click", "text/plain"),
    ]:
        refused = http.post(path, data=body, content_type=content_type)
        assert (refused.status_code, refused.content.decode()) == (
            400,
            "A one-click unsubscribe is a POST with the body List-Unsubscribe=One-Click.\n",
        )
    assert (current(email), history(email)) == (None, [])

    # RFC 8058 allows multipart/form-data too (the test client's default encoding).
    done = http.post(path, data={"List-Unsubscribe": "One-Click"})
    assert (done.status_code, done.content) == (200, b"You are unsubscribed.\n")
    assert current(email) == (ConsentStatus.OPTED_OUT, ConsentSource.ONE_CLICK)


@responses.activate
def test_anymail_email_carries_the_headers_and_the_links(
    http: HttpClient, acme: Client, sms: Channel, redis_client: Any
) -> None:
    mail = postmark_channel(acme)
    email_template(mail)
    sms_template(sms)
    responses.post(
        POSTMARK_API,
        json={"To": "jane@mail.example", "MessageID": "pm-1", "ErrorCode": 0, "Message": "OK"},
    )
    first = send(queued_message(mail, campaign_id=1))
    assert first.status == "sent"

    [call] = responses.calls
    payload = json.loads(call.request.body)
    headers = {h["Name"]: h["Value"] for h in payload["Headers"]}
    assert set(headers) == {"X-Campaign", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"}
    assert headers["List-Unsubscribe-Post"] == ONE_CLICK
    path = one_click_path(headers["List-Unsubscribe"])
    page_url = f"{settings.PUBLIC_BASE_URL}{path.removesuffix('/one-click')}"
    assert payload["TextBody"] == f"Hi Jane, the sale starts today.\n\nUnsubscribe: {page_url}\n"
    assert payload["HtmlBody"] == (
        '<html><body><p>Hi Jane</p><p style="font-size:12px;color:#666666;">'
        f'<a href="{page_url}">Unsubscribe</a> from these emails.</p></body></html>'
    )
    # The ESP learns no unsubscribe token through the metadata it stores and echoes back.
    assert payload["Metadata"] == {
        "campaign_id": "1",
        "channel_id": "504",
        "template_id": "14",
        "message_id": str(first.pk),
    }

    response = http.post(path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert_next_send_stopped_on_that_channel_only(opted_out=mail, other=sms, campaign_id=2)
    assert len(responses.calls) == 1


def test_a_channel_cannot_set_the_headers_itself() -> None:
    errors = channel_config_errors(
        provider="smtp",
        kind="email",
        options={
            "host": "mail.example",
            "from_email": "news@acme.example",
            "headers": {"List-Unsubscribe": "<mailto:u@acme.example>", "list-unsubscribe-post": "x"},
        },
        secrets={},
    )
    assert errors == ["option headers may not set List-Unsubscribe, list-unsubscribe-post"]
