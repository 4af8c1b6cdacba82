from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.core import context

logger = logging.getLogger("apps.requests")


class RequestIdMiddleware:
    """Gives every request an id for its log lines and logs one redacted line when it ends."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        token = context.request_id.set(rid)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = rid
            # The path only: query strings carry listener tokens. The filter redacts path tokens too.
            logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={"duration_ms": round((time.monotonic() - started) * 1000, 1)},
            )
            return response
        finally:
            context.request_id.reset(token)
