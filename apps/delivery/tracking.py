"""What delivery tracking adds to a message before it goes out, and the sealed tokens it relies on.

Email channels whose provider tracks nothing (plain SMTP, or an ESP with its tracking off) can track
by themselves, per channel option:

- `track_clicks: true`: every http(s) link of the HTML part points at `/t/c/<token>` instead, which
  records the click and redirects to the original URL.
- `track_opens: true`: a 1x1 image `/t/o/<token>.gif` is added to the HTML part.

Only the HTML part changes; the text part keeps the original links. A token carries the message id
(and, for a click, the URL) sealed with Fernet, that is encrypted and authenticated (HMAC-SHA256),
under a key derived from SECRET_KEY: it cannot be forged, so the redirect goes only where the email
itself pointed and can never be turned into an open redirect; and it cannot be read, because links
are often personalised (`?email=...`) and every request's path is logged. Plain `django.core.signing`
would be as unforgeable but readable by anyone who sees a log. Tokens do not expire (people open mail
months later); after a SECRET_KEY change, keys in SECRET_KEY_FALLBACKS still open old tokens.

Twilio channels get the platform's status-callback URL (see `apps.channels.backends.sms`).
"""

from __future__ import annotations

import dataclasses
import html
import re
from typing import Any

from django.conf import settings
from django.urls import reverse

from apps.channels.base import OutboundMessage
from apps.clients.models import Channel, ChannelKind
from apps.core.sealing import seal, unseal, whole_number

TOKEN_KEY_SALT = "apps.delivery.tracking.token-key"  # noqa: S105 (a salt, not a secret)
CLICK, OPEN = "c", "o"
# The metadata key through which the send path hands the Twilio backend its status-callback URL.
STATUS_CALLBACK_METADATA_KEY = "status_callback"

# An <a ...> tag's quoted href. Unquoted values are left alone: templates rarely have them, and
# rewriting them safely would need a real HTML parser for little gain.
_ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\shref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


# Tokens
# ------------------------------------------------------------------------------


def _seal(value: list[Any]) -> str:
    return seal(salt=TOKEN_KEY_SALT, value=value, compress=True)


def _open(token: str) -> Any:
    return unseal(salt=TOKEN_KEY_SALT, token=token, compressed=True)


def click_token(*, message_id: int, url: str) -> str:
    return _seal([CLICK, message_id, url])


def open_token(*, message_id: int) -> str:
    return _seal([OPEN, message_id])


def click_token_read(token: str) -> tuple[int, str] | None:
    """(message id, URL) from a click token we made; None for anything else."""
    value = _open(token)
    if not (isinstance(value, list) and len(value) == 3 and value[0] == CLICK):
        return None
    message_id, url = whole_number(value[1]), value[2]
    if message_id is None or not isinstance(url, str) or not _is_trackable(url):
        return None
    return message_id, url


def open_token_read(token: str) -> int | None:
    value = _open(token)
    if not (isinstance(value, list) and len(value) == 2 and value[0] == OPEN):
        return None
    return whole_number(value[1])


# URLs
# ------------------------------------------------------------------------------


def public_url(path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{path}"


def click_url(*, message_id: int, url: str) -> str:
    return public_url(
        reverse("tracking-click", kwargs={"token": click_token(message_id=message_id, url=url)})
    )


def open_url(*, message_id: int) -> str:
    return public_url(reverse("tracking-open", kwargs={"token": open_token(message_id=message_id)}))


def twilio_status_callback_url(*, channel: Channel) -> str:
    return public_url(
        reverse(
            "delivery-twilio",
            kwargs={"client_slug": channel.client.slug, "channel_id": channel.optimove_channel_id},
        )
    )


def webhook_receipt_url(*, channel: Channel) -> str:
    """Where a webhook channel's receiver posts its delivery receipts."""
    return public_url(
        reverse(
            "delivery-webhook",
            kwargs={"client_slug": channel.client.slug, "channel_id": channel.optimove_channel_id},
        )
    )


def anymail_tracking_url(*, channel: Channel) -> str:
    """The URL to give the ESP for its tracking webhooks (add basic auth credentials if the channel has
    secret webhook_secret: https://user:pass@host/...)."""
    esp = channel.provider.partition(":")[2]
    return public_url(
        reverse(
            "delivery-anymail",
            kwargs={
                "client_slug": channel.client.slug,
                "channel_id": channel.optimove_channel_id,
                "esp": esp,
            },
        )
    )


# Rewriting
# ------------------------------------------------------------------------------


def _is_trackable(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def html_track(*, html_body: str, message_id: int, clicks: bool, opens: bool) -> str:
    """The HTML part with its links pointing at the click tracker and/or the open pixel added."""
    own_prefix = public_url("/t/")
    if clicks:

        def rewrite(match: re.Match[str]) -> str:
            quote = '"' if match.group(2) is not None else "'"
            raw = match.group(2) if match.group(2) is not None else match.group(3)
            url = html.unescape(raw).strip()
            if not _is_trackable(url) or url.startswith(own_prefix):
                return match.group(0)
            tracked = html.escape(click_url(message_id=message_id, url=url), quote=True)
            return f"{match.group(1)}{quote}{tracked}{quote}"

        html_body = _ANCHOR_HREF.sub(rewrite, html_body)
    if opens:
        pixel = (
            f'<img src="{html.escape(open_url(message_id=message_id), quote=True)}" width="1" height="1" '
            'alt="" style="display:block;width:1px;height:1px;border:0;" />'
        )
        ends = list(_BODY_END.finditer(html_body))
        if ends:
            at = ends[-1].start()
            html_body = html_body[:at] + pixel + html_body[at:]
        else:
            html_body += pixel
    return html_body


def _option_on(channel: Channel, name: str) -> bool:
    return (channel.provider_options or {}).get(name) is True


def delivery_tracking_apply(*, channel: Channel, message: OutboundMessage) -> OutboundMessage:
    """What delivery tracking adds to one rendered message of `channel` before it is handed to the
    provider. The send path calls this once per message; it returns the message unchanged when the
    channel tracks nothing itself."""
    if channel.kind == ChannelKind.EMAIL and message.content.html:
        clicks, opens = _option_on(channel, "track_clicks"), _option_on(channel, "track_opens")
        if clicks or opens:
            tracked = html_track(
                html_body=message.content.html, message_id=message.message_id, clicks=clicks, opens=opens
            )
            return dataclasses.replace(message, content=dataclasses.replace(message.content, html=tracked))
        return message
    # Option status_callback: absent or true = ours, false = none, a URL = the backend uses that URL.
    callback_option = (channel.provider_options or {}).get("status_callback")
    if channel.provider == "twilio" and callback_option in (None, True):
        callback = twilio_status_callback_url(channel=channel)
        return dataclasses.replace(
            message, metadata={**message.metadata, STATUS_CALLBACK_METADATA_KEY: callback}
        )
    return message
