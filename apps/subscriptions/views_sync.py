"""Optimove's answer to an UpdateCustomerAttributes call (its CallbackURL)."""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.subscriptions.callbacks import attribute_callback_call_id, attribute_callback_record

logger = logging.getLogger(__name__)

# A callback lists at most a batch's customers (1,000 by default) with an error each.
MAX_BODY_BYTES = 1024 * 1024


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
def attributes_callback(request: HttpRequest) -> JsonResponse:
    """Public: Optimove sends no credentials of ours, so the URL carries a token we signed naming the
    call. A token we did not sign is refused before anything is read or recorded."""
    call_id = attribute_callback_call_id(token=request.GET.get("token", ""))
    if call_id is None:
        return _error(403, "invalid callback token")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _error(400, "Content-Length is not a number")
    if length > MAX_BODY_BYTES:
        return _error(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    outcome = attribute_callback_record(call_id=call_id, raw=request.body)
    if not outcome.found:
        return _error(404, "no such call (its records were pruned)")
    logger.info(
        "consent sync callback",
        extra={"consent_sync_call": call_id, "rejected": outcome.rejected, "repeated": outcome.repeated},
    )
    return JsonResponse({"status": "already recorded" if outcome.repeated else "recorded"})
