from __future__ import annotations

import hmac
import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.clients.selectors import listener_target_get_kept
from apps.core.jsonsafe import JsonBodyInvalid, json_body_load
from apps.optimove.notifications import (
    NotificationInvalid,
    ParsedNotification,
    notification_parse,
    notification_receive,
    url_channel_id,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
def listener(request: HttpRequest, client_slug: str, channel: str) -> JsonResponse:
    """Optimove's listener. Optimove sends no headers of ours, so the client's secret token is in the
    URL; it is compared in constant time and redacted from our logs. The body is parsed before the
    client is read, so that one query reads the client and the channel the body names; its problems
    are still answered only after the client and token are known (404, 403, then 400)."""
    problem, parsed = _parse(request.body)
    channel_id = parsed.channel_id if parsed is not None else None
    if channel_id is None:
        channel_id = url_channel_id(channel)  # a notification without ChannelID: the URL's channel
    client, target = listener_target_get_kept(slug=client_slug, optimove_channel_id=channel_id)
    if client is None:
        return _error(404, "unknown client")
    token = request.GET.get("token", "")
    if not token or not hmac.compare_digest(token.encode(), client.listener_token.encode()):
        return _error(403, "wrong listener token")
    if parsed is None:
        return _error(400, problem)
    try:
        notification = notification_receive(client=client, channel=target, url_channel=channel, parsed=parsed)
    except NotificationInvalid as exc:
        return _error(400, str(exc))
    logger.info(
        "notification",
        extra={
            "client": client.slug,
            "event_type_id": notification.event_type_id,
            "campaign_id": notification.campaign_id,
            "acted": notification.acted,
        },
    )
    return JsonResponse({"status": "accepted", "acted": notification.acted, "outcome": notification.outcome})


def _parse(raw: bytes) -> tuple[str, ParsedNotification | None]:
    """("", the notification), or (why the body cannot be one, None)."""
    if len(raw) > MAX_BODY_BYTES:
        return "the body is too large for a notification", None
    try:
        return "", notification_parse(json_body_load(raw))
    except (JsonBodyInvalid, NotificationInvalid) as exc:
        return str(exc), None
