"""The opt-outs customers and providers reach us through: the unsubscribe link and the one-click
List-Unsubscribe URL in every campaign email, SMS keyword replies (STOP, START...), and providers'
unsubscribe and complaint events. Each ends in `subscriptions_set`, for one channel only.

Unsubscribe links carry a token sealed with Fernet (encrypted and authenticated) under a key derived
from SECRET_KEY, as the tracking links of apps.delivery.tracking do, with a salt of its own so neither
kind of token opens the other. It holds the client, channel, customer id and message id: it cannot be
forged, and it cannot be read, so the customer id stays out of request logs and of the mail itself.
It never holds the address. Tokens do not expire (people unsubscribe from mail months old); keys in
SECRET_KEY_FALLBACKS still open tokens made before a key change.

The links live under /t/u/, beside the tracking links: click tracking (`html_track`) leaves the
platform's own /t/ links alone, so an unsubscribe link is never turned into a click redirect.
"""

from __future__ import annotations

import functools
import html
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from apps.campaigns.models import Message, MessageStatus
from apps.clients.models import Channel, ChannelKind
from apps.core.sealing import seal, unseal, whole_number
from apps.delivery.models import DeliveryEventType
from apps.message_templates.types import RenderedMessage
from apps.subscriptions.models import ConsentSource, ConsentStatus
from apps.subscriptions.services import ConsentUpdate, subscription_opt_out, subscriptions_set

if TYPE_CHECKING:
    from apps.delivery.services import ProviderEvent

logger = logging.getLogger(__name__)

TOKEN_KEY_SALT = "apps.subscriptions.unsubscribe.token-key"  # noqa: S105 (a salt, not a secret)
_KIND = "u"
# The merge value templates use for the link: `<a href="{{ unsubscribe_url }}">`.
MERGE_NAME = "unsubscribe_url"
ONE_CLICK_BODY = ("List-Unsubscribe", "One-Click")  # RFC 8058: the body a one-click POST carries

_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


# Tokens
# ------------------------------------------------------------------------------


def unsubscribe_token(*, client_id: int, channel_id: int, customer_id: str, message_id: int) -> str:
    """A sealed token for one customer of one channel (`channel_id` is our Channel's pk); the message
    id is kept as evidence of which email was used."""
    value = [_KIND, client_id, channel_id, customer_id, message_id]
    return seal(salt=TOKEN_KEY_SALT, value=value)


@dataclass(frozen=True, slots=True)
class UnsubscribeTarget:
    """Whom a valid token unsubscribes, from what."""

    channel: Channel
    customer_id: str
    message_id: int


def unsubscribe_target_read(*, client_slug: str, channel_id: int, token: str) -> UnsubscribeTarget | None:
    """The customer and channel a token from one of our emails names, or None when the token is not
    ours, was altered, or was made for another client or channel than the URL names (`channel_id` is
    the Optimove channel id in the URL)."""
    value = unseal(salt=TOKEN_KEY_SALT, token=token)
    if not (isinstance(value, list) and len(value) == 5 and value[0] == _KIND):
        return None
    client_pk, channel_pk, customer_id, message_id = (
        whole_number(value[1]),
        whole_number(value[2]),
        value[3],
        value[4],
    )
    if client_pk is None or channel_pk is None or whole_number(message_id) is None:
        return None
    if not isinstance(customer_id, str) or not customer_id:
        return None
    channel = (
        Channel.objects.select_related("client")
        .filter(pk=channel_pk, client_id=client_pk, client__slug=client_slug, optimove_channel_id=channel_id)
        .first()
    )
    if channel is None:
        return None
    return UnsubscribeTarget(channel=channel, customer_id=customer_id, message_id=message_id)


def unsubscribe_target_opt_out(*, target: UnsubscribeTarget, source: str) -> bool:
    """Opts the token's customer out of the token's channel; False when they already were (a second use
    of the link records nothing). The evidence kept is the message the link came in."""
    changed = subscription_opt_out(
        channel=target.channel,
        customer_id=target.customer_id,
        source=source,
        detail=f"message {target.message_id}",
    )
    logger.info(
        "unsubscribe",
        extra={
            "client": target.channel.client.slug,
            "channel_id": target.channel.optimove_channel_id,
            "source": source,
            "message_id": target.message_id,
            "changed": changed,
        },
    )
    return changed


# The links in an email
# ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnsubscribeLinks:
    page_url: str  # the link in the body: a confirmation page, then a button
    one_click_url: str  # the List-Unsubscribe header's URL (RFC 8058 one-click POST)


_PLACEHOLDER = "PLACEHOLDER"


@functools.lru_cache(maxsize=1024)
def _link_shapes(base_url: str, client_slug: str, channel_id: int) -> tuple[tuple[str, str], tuple[str, str]]:
    """The page and one-click URLs of one channel, each split around the token's place: reversed once
    per channel, not twice per email (a campaign email's links cost a tenth of them then)."""
    kwargs = {"client_slug": client_slug, "channel_id": channel_id, "token": _PLACEHOLDER}
    shapes = []
    for name in ("subscriptions-unsubscribe", "subscriptions-one-click"):
        before, _, after = f"{base_url}{reverse(name, kwargs=kwargs)}".rpartition(_PLACEHOLDER)
        shapes.append((before, after))
    return shapes[0], shapes[1]


def unsubscribe_links_for(*, channel: Channel, customer_id: str, message_id: int) -> UnsubscribeLinks | None:
    """The unsubscribe links of one campaign email (every campaign email is marketing); None for the
    channels that are not email."""
    if channel.kind != ChannelKind.EMAIL:
        return None
    token = unsubscribe_token(
        client_id=channel.client_id, channel_id=channel.pk, customer_id=customer_id, message_id=message_id
    )
    # A sealed token is URL-safe base64: reverse() would put it in the path unchanged.
    page, one_click = _link_shapes(settings.PUBLIC_BASE_URL, channel.client.slug, channel.optimove_channel_id)
    return UnsubscribeLinks(
        page_url=f"{page[0]}{token}{page[1]}", one_click_url=f"{one_click[0]}{token}{one_click[1]}"
    )


def unsubscribe_footer_add(*, content: RenderedMessage, links: UnsubscribeLinks) -> RenderedMessage:
    """The rendered email with the unsubscribe link added to each part (text, HTML) whose template did
    not place `{{ unsubscribe_url }}` itself. Decided per part: a reader sees only one of them, so each
    must carry the link. An empty part stays empty (an HTML-only email gets no text part)."""
    url = links.page_url
    text, html_body = content.text, content.html
    if text and url not in text:
        text = f"{text.rstrip()}\n\nUnsubscribe: {url}\n"
    if html_body and url not in html_body:
        footer = (
            '<p style="font-size:12px;color:#666666;">'
            f'<a href="{html.escape(url, quote=True)}">Unsubscribe</a> from these emails.</p>'
        )
        ends = list(_BODY_END.finditer(html_body))
        if ends:
            at = ends[-1].start()
            html_body = html_body[:at] + footer + html_body[at:]
        else:
            html_body += footer
    if text is content.text and html_body is content.html:
        return content
    return RenderedMessage(
        subject=content.subject,
        html=html_body,
        text=text,
        data=content.data,
        deep_link=content.deep_link,
        payload=content.payload,
    )


# SMS keyword replies
# ------------------------------------------------------------------------------

# The industry's standard keywords (CTIA; Twilio honours the same), matched on the whole reply with
# case, spaces and punctuation ignored: "Stop", " stop all ", "STOP!" all count.
SMS_OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
SMS_OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
_NOT_A_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class SmsKeyword:
    status: str  # ConsentStatus.OPTED_OUT or OPTED_IN
    keyword: str  # what is kept as evidence: the keyword, never the sender or other text


def sms_keyword_parse(body: str) -> SmsKeyword | None:
    """The opt-out or opt-in keyword a reply consists of, or None for any other reply."""
    word = _NOT_A_LETTER_OR_DIGIT.sub("", body or "").upper()
    if word in SMS_OPT_OUT_KEYWORDS:
        return SmsKeyword(ConsentStatus.OPTED_OUT, word)
    if word in SMS_OPT_IN_KEYWORDS:
        return SmsKeyword(ConsentStatus.OPTED_IN, word)
    return None


@dataclass(frozen=True, slots=True)
class SmsKeywordOutcome:
    matched: bool  # the number belongs to a customer we sent to on this channel
    changed: bool


def sms_customer_for_number(*, channel: Channel, number: str) -> str | None:
    """The customer of the most recent message sent on the channel to this number. Only messages within
    the client's personal-data retention period are searched: older ones no longer hold the address.
    The number is matched as given and without its leading "+" (Twilio reports E.164 numbers; a
    client's attribute may leave the "+" out)."""
    attribute = channel.address_attribute
    number = number.strip()
    if not attribute or not number:
        return None
    forms = {number, number.lstrip("+")} - {""}
    matches = Q()
    for form in forms:
        matches |= Q(attributes__contains={attribute: form})
    since = timezone.now() - timedelta(days=channel.client.personal_data_retention_days)
    customer_id: str | None = (
        Message.objects.filter(run__channel=channel, status=MessageStatus.SENT, sent_at__gte=since)
        .filter(matches)
        .order_by("-sent_at", "-pk")
        .values_list("customer_id", flat=True)
        .first()
    )
    return customer_id


def sms_keyword_apply(*, channel: Channel, number: str, keyword: SmsKeyword) -> SmsKeywordOutcome:
    """A keyword replied from `number`: the customer we last messaged at that number on this channel
    is opted out of (or back into) this channel. An unknown number changes nothing."""
    customer_id = sms_customer_for_number(channel=channel, number=number)
    if customer_id is None:
        return SmsKeywordOutcome(matched=False, changed=False)
    changed = subscriptions_set(
        channel=channel,
        updates=[ConsentUpdate(customer_id=customer_id, status=keyword.status)],
        source=ConsentSource.SMS_KEYWORD,
        detail=keyword.keyword,
    )
    return SmsKeywordOutcome(matched=True, changed=changed == 1)


# Provider events
# ------------------------------------------------------------------------------

PROVIDER_EVENT_SOURCES: dict[str, ConsentSource] = {
    DeliveryEventType.UNSUBSCRIBED: ConsentSource.PROVIDER_UNSUBSCRIBE,
    DeliveryEventType.COMPLAINED: ConsentSource.PROVIDER_COMPLAINT,
}


def provider_event_opt_out(*, message: Message, event: ProviderEvent, delivery_event_id: int) -> bool:
    """A provider's unsubscribe or complaint event about one of our messages opts that message's
    customer out of that message's channel; other events change nothing. The evidence kept is the
    provider's event id (or our stored event's id when the provider gives none)."""
    source = PROVIDER_EVENT_SOURCES.get(event.event)
    if source is None or not message.customer_id:
        return False
    try:
        return subscription_opt_out(
            channel=message.run.channel,
            customer_id=message.customer_id,
            source=source,
            detail=event.provider_event_id or f"delivery event {delivery_event_id}",
        )
    except ValueError as exc:
        # A customer id the consent store refuses: the event is still stored for the admin, and the
        # provider's callback (with its other events) must not fail over and over because of it.
        logger.warning("%s event of message %s not applied to consent: %s", event.event, message.pk, exc)
        return False
