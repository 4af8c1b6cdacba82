from __future__ import annotations

import hmac
import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.clients.selectors import listener_client_get
from apps.core.jsonsafe import JsonBodyInvalid, json_body_load
from apps.optimove.notifications import NotificationInvalid, notification_receive

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
def listener(request: HttpRequest, client_slug: str, channel: str) -> JsonResponse:
    """Optimove's listener. Optimove sends no headers of ours, so the client's secret token is in the
    URL; it is compared in constant time and redacted from our logs."""
    client = listener_client_get(slug=client_slug)
    if client is None:
        return _error(404, "unknown client")
    token = request.GET.get("token", "")
    if not token or not hmac.compare_digest(token.encode(), client.listener_token.encode()):
        return _error(403, "wrong listener token")
    if len(request.body) > MAX_BODY_BYTES:
        return _error(400, "the body is too large for a notification")
    try:
        body: Any = json_body_load(request.body)
    except JsonBodyInvalid as exc:
        return _error(400, str(exc))
    try:
        notification = notification_receive(client=client, url_channel=channel, body=body)
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
