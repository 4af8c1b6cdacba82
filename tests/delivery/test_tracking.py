"""Self-tracking of email: the send path rewrites the HTML part's links and adds a pixel when the channel
asks for it; the signed links redirect and record a click, the pixel records an open; bad tokens
record nothing and never redirect anywhere we did not sign."""

from __future__ import annotations

import base64
import json
import re
import zlib
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import responses
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import Client as HttpClient

from apps.campaigns import services
from apps.campaigns.models import Message, MessageStatus
from apps.clients.models import Channel, ChannelKind, Client
from apps.delivery.models import DeliveryEvent
from apps.delivery.tracking import (
    click_token,
    click_token_read,
    click_url,
    html_track,
    open_token,
    open_token_read,
    open_url,
)
from apps.delivery.views import PIXEL_GIF
from apps.message_templates.models import MessageTemplate
from tests.delivery.callbacks_support import sent_message, snapshot, state

POSTMARK_API = "https://api.postmarkapp.com/email"
HTML = (
    "<html><body><p>Hi {{ FirstName }}</p>"
    '<a href="https://shop.example/sale?a=1&amp;b=2">Sale</a> '
    "<A class='x' HREF='http://shop.example/new'>New</A> "
    '<a href="mailto:help@shop.example">Mail us</a> <a href="#top">Top</a> <a href="/relative">R</a>'
    "</body></html>"
)


class Links(HTMLParser):
    """What a mail client would follow and load, read with a real HTML parser."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")
        if tag == "img" and values.get("src"):
            self.images.append(values["src"] or "")


def links_of(html_body: str) -> Links:
    parser = Links()
    parser.feed(html_body)
    return parser


def local(url: str) -> str:
    assert url.startswith(settings.PUBLIC_BASE_URL + "/t/"), url
    return url[len(settings.PUBLIC_BASE_URL) :]


def email_channel(client: Client, **options: Any) -> Channel:
    channel = Channel.objects.create(
        client=client,
        name="Email",
        kind=ChannelKind.EMAIL,
        optimove_channel_id=504,
        provider="anymail:postmark",
        provider_options={"from_email": "Shop <news@shop.example>", **options},
        provider_secrets={"server_token": "pm-server-token"},
        address_attribute="Email",
    )
    MessageTemplate.objects.create(
        client=client,
        channel=channel,
        template_id=14,
        name="Sale",
        subject="Sale",
        text_body="Sale at https://shop.example/sale",
        html_body=HTML,
    )
    return channel


# Every campaign email ends with the customer's unsubscribe link (tests/subscriptions follow it; it is
# never click-tracked); these tests look at what tracking does to the rest.
UNSUBSCRIBE_FOOTER = re.compile(
    r"\n\nUnsubscribe: \S+/t/u/\S+\n$"
    r'|<p style="[^"]*"><a href="[^"]+/t/u/[^"]+">Unsubscribe</a> from these emails\.</p>'
)


def without_unsubscribe_footer(part: str) -> str:
    stripped, found = UNSUBSCRIBE_FOOTER.subn("", part)
    assert found == 1, part
    return stripped


def send_one(channel: Channel) -> tuple[Message, dict[str, Any]]:
    """Sends one message through the real send path; returns it and the body Postmark received, without
    the unsubscribe footer every email gets."""
    message = sent_message(channel, customer="c1")
    now = datetime.now(UTC)
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.QUEUED,
        sent_at=None,
        provider_message_id="",
        send_at=now,
        due_at=now,
        attributes={"Email": "jane@mail.example", "FirstName": "Jane"},
    )
    responses.post(
        POSTMARK_API,
        json={
            "To": "jane@mail.example",
            "SubmittedAt": "2026-03-02T10:00:00Z",
            "MessageID": "pm-1",
            "ErrorCode": 0,
            "Message": "OK",
        },
    )
    assert services.message_batch_send(message_ids=[message.pk], sleep=lambda _: None).sent == 1
    sent = json.loads(responses.calls[-1].request.body)
    parts = {part: without_unsubscribe_footer(sent[part]) for part in ("TextBody", "HtmlBody")}
    return message, {**sent, **parts}


@responses.activate
def test_tracked_email_links_redirect_and_record_clicks_and_the_pixel_records_the_open(
    client: HttpClient, acme: Client, redis_client: Any
) -> None:
    channel = email_channel(acme, track_clicks=True, track_opens=True)
    message, sent = send_one(channel)

    links = links_of(sent["HtmlBody"])
    assert sent["TextBody"] == "Sale at https://shop.example/sale"  # the text part keeps its links
    # Only http(s) links are tracked; mailto, anchors and relative links are left as they were.
    assert links.hrefs[2:] == ["mailto:help@shop.example", "#top", "/relative"]
    sale, new = (local(href) for href in links.hrefs[:2])
    [pixel] = [local(src) for src in links.images]
    assert sent["HtmlBody"].index("<img") < sent["HtmlBody"].index("</body>")

    opened = client.get(pixel)
    assert (opened.status_code, opened["Content-Type"], opened.content) == (200, "image/gif", PIXEL_GIF)
    assert state(message)["delivery_state"] == "opened"

    first = client.get(sale)
    assert (first.status_code, first["Location"]) == (302, "https://shop.example/sale?a=1&b=2")
    after = state(message)
    assert after["delivery_state"] == "clicked"
    assert after["clicked_at"] is not None
    assert after["opened_at"] <= after["clicked_at"]
    # A second click on the same link (or a mail client loading the pixel again) adds nothing.
    assert client.get(sale)["Location"] == "https://shop.example/sale?a=1&b=2"
    assert client.get(pixel).status_code == 200
    assert client.get(new)["Location"] == "http://shop.example/new"

    events = list(DeliveryEvent.objects.order_by("pk").values_list("event", "url", "provider", "message"))
    assert events == [
        ("opened", "", "tracking", message.pk),
        ("clicked", "https://shop.example/sale?a=1&b=2", "tracking", message.pk),
        ("clicked", "http://shop.example/new", "tracking", message.pk),
    ]


@responses.activate
def test_without_the_options_the_html_goes_out_as_rendered(acme: Client, redis_client: Any) -> None:
    channel = email_channel(acme)
    _, sent = send_one(channel)
    assert sent["HtmlBody"] == HTML.replace("{{ FirstName }}", "Jane")


def test_bad_tokens_record_nothing_and_redirect_nowhere(client: HttpClient, acme: Client) -> None:
    channel = email_channel(acme)
    message = sent_message(channel, customer="c1", provider_id="pm-1")
    good = local(click_url(message_id=message.pk, url="https://shop.example/sale"))
    before = snapshot()

    tampered = client.get(good[:-3] + ("abc" if not good.endswith("abc") else "xyz"))
    assert (tampered.status_code, tampered.content) == (404, b"This link is not valid.")
    # A token in our exact format, for an evil URL, sealed with any key but ours.
    payload = zlib.compress(json.dumps(["c", message.pk, "https://evil.example/"]).encode())
    forged = Fernet(Fernet.generate_key()).encrypt(payload).decode()
    assert client.get(f"/t/c/{forged}").status_code == 404
    assert client.get("/t/c/not-a-token").status_code == 404
    # A token of the other kind (the open pixel's) is not a click token.
    assert client.get(f"/t/c/{open_token(message_id=message.pk)}").status_code == 404
    # Even a token we signed never redirects to anything but http(s).
    assert (
        client.get(f"/t/c/{click_token(message_id=message.pk, url='javascript:alert(1)')}").status_code == 404
    )
    # A link checker's HEAD follows the redirect without counting as a click.
    head = client.head(good)
    assert (head.status_code, head["Location"]) == (302, "https://shop.example/sale")
    # The pixel answers the image whatever the token, and records nothing for a bad one.
    bad_pixel = client.get("/t/o/not-a-token.gif")
    assert (bad_pixel.status_code, bad_pixel.content) == (200, PIXEL_GIF)
    assert (
        client.get(f"/t/o/{click_token(message_id=message.pk, url='https://a.example')}.gif").status_code
        == 200
    )

    assert snapshot() == before


def test_a_link_of_a_deleted_message_still_redirects(client: HttpClient, acme: Client) -> None:
    channel = email_channel(acme)
    message = sent_message(channel, customer="c1")
    link = local(click_url(message_id=message.pk, url="https://shop.example/sale"))
    pixel = local(open_url(message_id=message.pk))
    message.delete()

    assert client.get(link)["Location"] == "https://shop.example/sale"
    assert client.get(pixel).status_code == 200
    assert DeliveryEvent.objects.count() == 0


def test_html_track_edge_cases(settings: Any) -> None:
    settings.PUBLIC_BASE_URL = "https://t.partner.example"
    already = "https://t.partner.example/t/c/abc"
    body = f'<a href="{already}">x</a><a href=" https://a.example/?q=1&amp;r=2 ">y</a>'

    tracked = html_track(html_body=body, message_id=7, clicks=True, opens=True)

    links = links_of(tracked)
    assert links.hrefs[0] == already  # never tracked twice
    prefix, _, token = links.hrefs[1].rpartition("/")
    assert (prefix, click_token_read(token)) == (
        "https://t.partner.example/t/c",
        (7, "https://a.example/?q=1&r=2"),
    )
    # No </body>: the pixel goes at the end.
    [pixel] = links.images
    assert tracked.endswith(
        f'<img src="{pixel}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;" />'
    )
    prefix, _, name = pixel.rpartition("/")
    assert (prefix, name.endswith(".gif"), open_token_read(name.removesuffix(".gif"))) == (
        "https://t.partner.example/t/o",
        True,
        7,
    )
    assert html_track(html_body=body, message_id=7, clicks=False, opens=False) == body


def test_tokens_hide_the_url_and_survive_a_secret_key_change(settings: Any) -> None:
    # Request paths are logged; a personalised link must not be readable from its token.
    personal = "https://shop.example/prefs?email=jane@mail.example"
    token = click_token(message_id=41, url=personal)
    assert b"jane" not in base64.urlsafe_b64decode(token)  # the URL is encrypted, not just encoded
    assert click_token_read(token) == (41, personal)

    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-after-rotation-0123456789"
    assert click_token_read(token) == (41, personal)  # old mail keeps working
    settings.SECRET_KEY_FALLBACKS = []
    assert click_token_read(token) is None
