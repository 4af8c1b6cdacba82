"""The unsubscribe link in every campaign email, followed as a customer would: the link is read from the
email a loopback SMTP server received, the page is fetched, the button pressed. A GET never
unsubscribes, the POST does once, and forged, altered or misdirected tokens change nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import Client as HttpClient

from apps.clients.models import Channel, ChannelKind, Client
from apps.delivery.tracking import click_token
from apps.subscriptions.models import ConsentSource, ConsentStatus, Subscription, SubscriptionChange
from apps.subscriptions.services import ConsentUpdate, subscriptions_set
from apps.subscriptions.unsubscribe import unsubscribe_links_for, unsubscribe_token
from tests.conftest import wait_for
from tests.receivers import Mail, SmtpReceiver, smtp_receiver
from tests.subscriptions.opt_out_support import (
    CUSTOMER,
    EMAIL_ADDRESS,
    assert_next_send_stopped_on_that_channel_only,
    current,
    email_template,
    history,
    queued_message,
    send,
    sms_template,
)


@pytest.fixture
def http() -> HttpClient:
    """A browser without a CSRF cookie: the page must work from a mail client's link."""
    return HttpClient(enforce_csrf_checks=True)


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with smtp_receiver() as receiver:
        yield receiver


@pytest.fixture
def mail(acme: Client, smtp: SmtpReceiver, redis_client: Any) -> Channel:
    return Channel.objects.create(
        client=acme,
        name="Newsletter",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=504,
        provider="smtp",
        provider_options={"host": smtp.host, "port": smtp.port, "from_email": "news@acme.example"},
        address_attribute="Email",
    )


class Links(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.forms: list[tuple[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self.hrefs.append(values.get("href") or "")
        if tag == "form":
            self.forms.append(((values.get("method") or "").lower(), values.get("action") or ""))


def received(smtp: SmtpReceiver, count: int) -> Mail:
    wait_for(lambda: smtp.count() >= count, timeout=10, what=f"email {count} at the SMTP server")
    return smtp.mails[count - 1]


def parts(mail: Mail) -> tuple[str, str]:
    text = mail.message.get_body(preferencelist=("plain",))
    html = mail.message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    # Lines travel as CRLF over SMTP.
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def path_of(url: str) -> str:
    assert url.startswith(f"{settings.PUBLIC_BASE_URL}/t/u/acme/504/"), url
    return urlsplit(url).path


def test_the_link_in_the_email_asks_first_then_unsubscribes_once_and_stops_only_email(
    http: HttpClient, mail: Channel, sms: Channel, smtp: SmtpReceiver
) -> None:
    email_template(mail)
    sms_template(sms)
    first = send(queued_message(mail, campaign_id=1))
    assert first.status == "sent"

    text, html = parts(received(smtp, 1))
    # The template did not place the link, so each part got it added, the same link in both.
    [text_url] = re.findall(r"^Unsubscribe: (\S+)$", text, re.MULTILINE)
    assert text.startswith("Hi Jane, the sale starts today.\n\nUnsubscribe: ")
    links = Links(html).hrefs
    assert links == [text_url]
    assert html.index(text_url) < html.index("</body>")
    # The token hides everything: neither the address nor the customer id can be read from it.
    assert EMAIL_ADDRESS not in text_url
    assert CUSTOMER not in text_url
    path = path_of(text_url)

    # Mail scanners fetch every link: the page only asks.
    page = http.get(path)
    assert page.status_code == 200
    assert page["Content-Type"] == "text/html; charset=utf-8"
    assert "Unsubscribe from Acme?" in page.content.decode()
    assert Links(page.content.decode()).forms == [("post", path)]
    assert http.head(path).status_code == 200
    assert (current(mail), history(mail)) == (None, [])

    done = http.post(path)
    assert done.status_code == 200
    assert "You are unsubscribed" in done.content.decode()
    assert current(mail) == (ConsentStatus.OPTED_OUT, ConsentSource.UNSUBSCRIBE_LINK)
    assert history(mail) == [(ConsentStatus.OPTED_OUT, ConsentSource.UNSUBSCRIBE_LINK, f"message {first.pk}")]

    # A second press, or a later visit, records nothing more.
    again = http.post(path)
    assert again.status_code == 200
    assert "You are already unsubscribed" in again.content.decode()
    later = http.get(path)
    assert "You are already unsubscribed" in later.content.decode()
    assert Links(later.content.decode()).forms == []
    assert len(history(mail)) == 1

    assert_next_send_stopped_on_that_channel_only(opted_out=mail, other=sms, campaign_id=2)
    assert smtp.count() == 1  # the skipped email never reached the server
    assert current(sms) is None


def test_a_template_placing_the_link_itself_gets_no_second_one_and_click_tracking_leaves_it_alone(
    http: HttpClient, mail: Channel, smtp: SmtpReceiver
) -> None:
    mail.provider_options = {**mail.provider_options, "track_clicks": True}
    mail.save()
    email_template(
        mail,
        text_body="Hi {{ FirstName }}",
        html_body=(
            '<html><body><a href="https://shop.example/sale">Sale</a>'
            '<a href="{{ unsubscribe_url }}">Leave this list</a></body></html>'
        ),
    )
    send(queued_message(mail, campaign_id=1))

    text, html = parts(received(smtp, 1))
    sale, unsubscribe = Links(html).hrefs
    # The shop's link goes through the click tracker; the unsubscribe link stays direct, and once.
    assert sale.startswith(f"{settings.PUBLIC_BASE_URL}/t/c/")
    path = path_of(unsubscribe)
    assert "Leave this list" in html
    assert ">Unsubscribe<" not in html
    # The text part did not use it, so it got it: the same link.
    assert text.rstrip("\n") == f"Hi Jane\n\nUnsubscribe: {unsubscribe}"

    assert http.post(path).status_code == 200
    assert current(mail) == (ConsentStatus.OPTED_OUT, ConsentSource.UNSUBSCRIBE_LINK)


def test_the_link_acts_on_the_current_state_after_the_customer_opted_back_in(
    http: HttpClient, acme: Client, email: Channel
) -> None:
    message = queued_message(email, campaign_id=1)
    links = unsubscribe_links_for(channel=email, customer_id=CUSTOMER, message_id=message.pk)
    assert links is not None
    path = urlsplit(links.page_url).path

    assert "You are unsubscribed" in http.post(path).content.decode()
    subscriptions_set(
        channel=email, updates=[ConsentUpdate(CUSTOMER, ConsentStatus.OPTED_IN)], source=ConsentSource.API
    )
    # The customer's latest wish counts: an old email's link opts them out again.
    assert "You are unsubscribed" in http.post(path).content.decode()
    assert [status for status, _, _ in history(email)] == ["opted_out", "opted_in", "opted_out"]


def test_forged_altered_or_misdirected_tokens_are_refused_and_change_nothing(
    http: HttpClient, acme: Client, email: Channel, sms: Channel, settings: Any
) -> None:
    beta = Client.objects.create(slug="beta", name="Beta", optimove_base_url="https://api5.optimove.net")
    beta_email = Channel.objects.create(
        client=beta, name="Email", kind=ChannelKind.EMAIL, optimove_channel_id=504, provider="console"
    )
    good = unsubscribe_token(client_id=acme.pk, channel_id=email.pk, customer_id=CUSTOMER, message_id=7)
    beta_token = unsubscribe_token(
        client_id=beta.pk, channel_id=beta_email.pk, customer_id=CUSTOMER, message_id=8
    )
    # A token naming acme's email channel but sealed for beta: the ids in a token must agree.
    mixed = unsubscribe_token(client_id=beta.pk, channel_id=email.pk, customer_id=CUSTOMER, message_id=7)
    real_key = settings.SECRET_KEY
    settings.SECRET_KEY = "an attacker's guess at the key"
    forged = unsubscribe_token(client_id=acme.pk, channel_id=email.pk, customer_id=CUSTOMER, message_id=7)
    settings.SECRET_KEY = real_key
    altered = good[:40] + ("A" if good[40] != "A" else "B") + good[41:]

    refused = {
        "forged": f"/t/u/acme/504/{forged}",
        "altered": f"/t/u/acme/504/{altered}",
        "cut short": f"/t/u/acme/504/{good[:-6]}",
        "garbage": "/t/u/acme/504/not-a-token",
        "a click-tracking token": f"/t/u/acme/504/{click_token(message_id=7, url='https://shop.example')}",
        "another channel's URL": f"/t/u/acme/505/{good}",
        "another client's URL": f"/t/u/beta/504/{good}",
        "another client's token": f"/t/u/acme/504/{beta_token}",
        "ids that disagree": f"/t/u/acme/504/{mixed}",
        "an unknown client": f"/t/u/nobody/504/{good}",
    }
    for what, path in refused.items():
        for response in (
            http.get(path),
            http.post(path),
            http.post(f"{path}/one-click", data={"List-Unsubscribe": "One-Click"}),
        ):
            assert response.status_code == 404, what
            assert "This unsubscribe link is not valid" in response.content.decode(), what

    assert Subscription.objects.count() == 0
    assert SubscriptionChange.objects.count() == 0
    # The genuine token still works, and only for acme's email channel.
    assert http.post(f"/t/u/acme/504/{good}").status_code == 200
    assert current(email) == (ConsentStatus.OPTED_OUT, ConsentSource.UNSUBSCRIBE_LINK)
    assert (current(sms), current(beta_email)) == (None, None)


def test_other_methods_are_refused(http: HttpClient, email: Channel) -> None:
    links = unsubscribe_links_for(channel=email, customer_id=CUSTOMER, message_id=1)
    assert links is not None
    path = urlsplit(links.page_url).path
    assert http.put(path).status_code == 405
    assert http.delete(path).status_code == 405
    assert current(email) is None


def test_only_email_gets_unsubscribe_links(email: Channel, sms: Channel) -> None:
    assert unsubscribe_links_for(channel=sms, customer_id=CUSTOMER, message_id=1) is None
    links = unsubscribe_links_for(channel=email, customer_id=CUSTOMER, message_id=1)
    assert links is not None
    assert links.one_click_url == f"{links.page_url}/one-click"


def test_links_are_the_routes_reversed_for_each_token_and_follow_the_public_address(
    email: Channel, settings: Any
) -> None:
    # The URL shapes are reversed once per channel and reused: each email still gets its own token in
    # exactly the path reverse() would give, and a changed PUBLIC_BASE_URL is used at once.
    from django.urls import reverse

    first = unsubscribe_links_for(channel=email, customer_id=CUSTOMER, message_id=1)
    second = unsubscribe_links_for(channel=email, customer_id="other", message_id=2)
    assert first is not None
    assert second is not None
    assert first.page_url != second.page_url
    for links in (first, second):
        token = links.page_url.rsplit("/", 1)[1]
        kwargs = {"client_slug": email.client.slug, "channel_id": email.optimove_channel_id, "token": token}
        assert links.page_url == settings.PUBLIC_BASE_URL + reverse(
            "subscriptions-unsubscribe", kwargs=kwargs
        )
        assert links.one_click_url == settings.PUBLIC_BASE_URL + reverse(
            "subscriptions-one-click", kwargs=kwargs
        )
    settings.PUBLIC_BASE_URL = "https://links.example.test"
    moved = unsubscribe_links_for(channel=email, customer_id=CUSTOMER, message_id=3)
    assert moved is not None
    assert moved.page_url.startswith("https://links.example.test/t/u/")
