"""Provider callbacks and the self-tracking endpoints.

Callbacks live under `/delivery/<client_slug>/<optimove_channel_id>/...`, one route per provider
family, and are authenticated with the channel's own secrets, so one client's credentials can never
write another client's events: an unknown client or channel is a 404, a missing credential a 401 and a
wrong one a 403, each with a JSON error, and none of them stores anything. An authenticated callback
is stored at once (one insert and one conditional update per event: fast enough to answer within a
provider's timeout without a queue in between) and answered 200, repeats included.

Callbacks are accepted for inactive clients and channels too: they report on messages already sent.
"""

from __future__ import annotations

import base64
import logging

from anymail.exceptions import AnymailConfigurationError, AnymailWebhookValidationFailure
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotFound, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST, require_safe

from apps.channels.signatures import webhook_verify
from apps.clients.models import Channel
from apps.delivery.models import DeliveryEventType
from apps.delivery.providers import (
    EMPTY_TWIML,
    CallbackNotConfigured,
    ProviderPayloadInvalid,
    anymail_events_collected,
    anymail_tracking_view,
    anymail_tracking_view_class,
    twilio_inbound_parse,
    twilio_signature_valid,
    twilio_status_event,
    webhook_receipts_parse,
)
from apps.delivery.services import (
    RecordOutcome,
    delivery_events_record,
    tracked_event_record,
    webhook_receipts_record,
)
from apps.delivery.tracking import click_token_read, open_token_read
from apps.subscriptions.unsubscribe import sms_keyword_apply

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
# The smallest transparent GIF (1x1).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _error(status: int, message: str, *, headers: dict[str, str] | None = None) -> JsonResponse:
    return JsonResponse({"error": message}, status=status, headers=headers)


def _accepted(outcome: RecordOutcome, *, ignored: int = 0) -> JsonResponse:
    return JsonResponse(
        {"status": "accepted", "stored": outcome.stored, "duplicates": outcome.duplicates, "ignored": ignored}
    )


def _channel_for(client_slug: str, channel_id: int, *, provider: str) -> Channel | JsonResponse:
    channel = (
        Channel.objects.select_related("client")
        .filter(client__slug=client_slug, optimove_channel_id=channel_id)
        .first()
    )
    if channel is None:
        return _error(404, f"no channel {channel_id} for client {client_slug!r}")
    if channel.provider != provider:
        return _error(404, f"channel {channel_id} of {client_slug!r} does not send through {provider}")
    return channel


def _log(channel: Channel, provider: str, outcome: RecordOutcome, ignored: int) -> None:
    logger.info(
        "delivery callback",
        extra={
            "client": channel.client.slug,
            "channel_id": channel.optimove_channel_id,
            "provider": provider,
            "stored": outcome.stored,
            "duplicates": outcome.duplicates,
            "ignored": ignored,
        },
    )


# django-anymail's tracking webhooks
# ------------------------------------------------------------------------------


@csrf_exempt
def anymail_tracking(request: HttpRequest, client_slug: str, channel_id: int, esp: str) -> HttpResponseBase:
    """Delegates to anymail's own tracking webhook view for the ESP, configured with this channel's
    secrets: anymail checks the ESP's signature or basic auth and parses the ESP's events, and its
    `tracking` signal hands them to `anymail_tracking_received`."""
    found = _channel_for(client_slug, channel_id, provider=f"anymail:{esp}")
    if isinstance(found, JsonResponse):
        return found
    channel = found
    view_class = anymail_tracking_view_class(esp)
    if view_class is None:
        return _error(404, f"anymail has no tracking webhook for {esp!r}")
    try:
        view = anymail_tracking_view(view_class=view_class, channel=channel)
    except CallbackNotConfigured as exc:
        # Not the caller's fault; 503 so the ESP retries once the channel has its secret.
        logger.warning("tracking webhook of channel %s refused: %s", channel.pk, exc)
        return _error(503, str(exc))
    if request.method == "POST" and len(request.body) > MAX_BODY_BYTES:
        return _error(413, "the body is too large for a tracking webhook")
    view.setup(request)
    with anymail_events_collected(esp=esp) as collected:
        try:
            response = view.dispatch(request)
        except AnymailWebhookValidationFailure as exc:
            reason = str(exc.args[0]) if exc.args else "the webhook could not be authenticated"
            if getattr(view, "basic_auth", None) and "HTTP_AUTHORIZATION" not in request.META:
                return _error(401, reason, headers={"WWW-Authenticate": 'Basic realm="delivery webhooks"'})
            return _error(403, reason)
        except AnymailConfigurationError as exc:  # e.g. an inbound webhook pointed at the tracking URL
            return _error(400, str(exc).splitlines()[0] if str(exc) else "not a tracking event")
        except ProviderPayloadInvalid as exc:  # from our signal receiver: an event we could not store
            return _error(400, f"the anymail:{esp} event cannot be stored: {exc}")
        except RecursionError:
            # anymail's json.loads on 5,000 "[": Mailgun parses before it checks the signature, so
            # this may be unauthenticated; nothing is stored either way.
            return _error(400, "the body must be JSON nested less deeply")
        except (OverflowError, OSError):
            # datetime.fromtimestamp() of an event time past the calendar (2**63, "Infinity": Overflow;
            # 1e17: OSError EOVERFLOW). Nothing in anymail's view does I/O, so no other OSError is hidden.
            return _error(400, f"the anymail:{esp} event's time is outside the calendar")
        except (ValueError, KeyError, TypeError, AttributeError):
            return _error(400, f"the body is not an anymail:{esp} tracking event")
    if request.method != "POST" or response.status_code != 200:
        return response  # HEAD (an ESP checking the URL), OPTIONS, 405
    outcome = delivery_events_record(client=channel.client, channel=channel, events=collected.events)
    _log(channel, f"anymail:{esp}", outcome, collected.ignored)
    return _accepted(outcome, ignored=collected.ignored)


# Twilio status callbacks
# ------------------------------------------------------------------------------


def _twilio_channel(
    request: HttpRequest, client_slug: str, channel_id: int, *, what: str
) -> Channel | JsonResponse:
    """The Twilio channel the URL names, once the request is proven to come from its Twilio account;
    otherwise the error to answer. Status callbacks and incoming messages are checked alike."""
    found = _channel_for(client_slug, channel_id, provider="twilio")
    if isinstance(found, JsonResponse):
        return found
    channel = found
    secrets = channel.provider_secrets or {}
    if not secrets.get("auth_token"):
        return _error(503, "the channel has no secret auth_token to check Twilio's signature with")
    if len(request.body) > MAX_BODY_BYTES:
        return _error(413, f"the body is too large for {what}")
    if not request.headers.get("X-Twilio-Signature"):
        return _error(401, "X-Twilio-Signature is missing")
    if not twilio_signature_valid(request=request, secrets=secrets):
        return _error(403, "X-Twilio-Signature does not match this channel's auth token")
    account = request.POST.get("AccountSid", "")
    if account and account != secrets.get("account_sid"):
        return _error(403, "the callback is for another Twilio account than this channel's")
    return channel


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest, client_slug: str, channel_id: int) -> HttpResponseBase:
    found = _twilio_channel(request, client_slug, channel_id, what="a status callback")
    if isinstance(found, JsonResponse):
        return found
    channel = found
    try:
        event = twilio_status_event(request.POST)
    except ProviderPayloadInvalid as exc:
        return _error(400, str(exc))
    events = [(event, None)] if event is not None else []
    outcome = delivery_events_record(client=channel.client, channel=channel, events=events)
    ignored = 0 if event is not None else 1
    _log(channel, "twilio", outcome, ignored)
    return _accepted(outcome, ignored=ignored)


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest, client_slug: str, channel_id: int) -> HttpResponseBase:
    """Twilio's "a message comes in" webhook, set on the channel's number or messaging service: an
    opt-out keyword (STOP...) opts the sender out of this channel, START opts them back in. The sender
    is found through the messages we sent to that number; an unknown sender changes nothing. Every
    authenticated message is answered with empty TwiML, so Twilio sends no reply of ours."""
    found = _twilio_channel(request, client_slug, channel_id, what="an incoming message")
    if isinstance(found, JsonResponse):
        return found
    channel = found
    try:
        inbound = twilio_inbound_parse(request.POST)
    except ProviderPayloadInvalid as exc:
        return _error(400, str(exc))
    outcome = None
    if inbound.keyword is not None:
        outcome = sms_keyword_apply(channel=channel, number=inbound.sender, keyword=inbound.keyword)
    # Never the number nor the text: only what was asked and whether it found someone.
    logger.info(
        "sms reply",
        extra={
            "client": channel.client.slug,
            "channel_id": channel.optimove_channel_id,
            "keyword": inbound.keyword.keyword if inbound.keyword else "",
            "matched": outcome.matched if outcome else False,
            "changed": outcome.changed if outcome else False,
        },
    )
    return HttpResponse(EMPTY_TWIML, content_type="text/xml; charset=utf-8")


# Delivery receipts of the signed webhook channel
# ------------------------------------------------------------------------------


@csrf_exempt
@require_POST
def webhook_receipt(request: HttpRequest, client_slug: str, channel_id: int) -> HttpResponseBase:
    """Receipts signed exactly like the requests we send the receiver (see
    apps.channels.backends.webhook for the format)."""
    found = _channel_for(client_slug, channel_id, provider="webhook")
    if isinstance(found, JsonResponse):
        return found
    channel = found
    secret = (channel.provider_secrets or {}).get("signing_secret")
    if not isinstance(secret, str) or not secret:
        return _error(503, "the channel has no secret signing_secret to check receipts with")
    timestamp = request.headers.get("X-Partner-Timestamp", "")
    signature = request.headers.get("X-Partner-Signature", "")
    if not timestamp or not signature:
        return _error(401, "X-Partner-Timestamp and X-Partner-Signature are required")
    if len(request.body) > MAX_BODY_BYTES:
        return _error(413, "the body is too large for receipts")
    if not webhook_verify(secret, timestamp, request.body, signature):
        return _error(
            403, "X-Partner-Signature does not match, or X-Partner-Timestamp is not within 5 minutes"
        )
    try:
        receipts = webhook_receipts_parse(request.body)
    except ProviderPayloadInvalid as exc:
        return _error(400, str(exc))
    outcome = webhook_receipts_record(channel=channel, receipts=receipts)
    _log(channel, "webhook", outcome, 0)
    return _accepted(outcome)


# Self-tracking: link redirects and the open pixel
# ------------------------------------------------------------------------------


@require_safe  # GET and HEAD: link scanners check links with HEAD; only a GET records a click
@never_cache
def tracked_click(request: HttpRequest, token: str) -> HttpResponseBase:
    read = click_token_read(token)
    if read is None:
        return HttpResponseNotFound("This link is not valid.", content_type="text/plain; charset=utf-8")
    message_id, url = read
    if request.method == "GET":
        tracked_event_record(message_id=message_id, event=DeliveryEventType.CLICKED, url=url)
    return redirect(url)


@require_safe
@never_cache
def tracked_open(request: HttpRequest, token: str) -> HttpResponse:
    """Always the pixel: a mail client shows nothing broken whatever the token."""
    message_id = open_token_read(token)
    if message_id is not None and request.method == "GET":
        tracked_event_record(message_id=message_id, event=DeliveryEventType.OPENED)
    return HttpResponse(PIXEL_GIF, content_type="image/gif")
