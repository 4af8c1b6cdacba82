"""The web's WSGI application. Optimove's listener is the platform's busiest URL (hundreds of calls a
second from real-time campaigns), and what Django's middleware does for the admin's browsers (sessions,
login, messages, CSRF, frame options, static files) is of no use to it, yet cost about half a
millisecond of each call's six (docs/BENCHMARKS.md). Listener calls are therefore answered by a second
handler, built from the same settings but with LISTENER_MIDDLEWARE: request ids and their log line,
security headers and request metrics stay. Every other URL goes through the whole MIDDLEWARE."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from apps.core.gcfreeze import startup_objects_freeze

LISTENER_PATH_PREFIX = "/optimove/listener/"


class _ListenerHandler(WSGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler builds its chain from settings.MIDDLEWARE; this runs once, at start-up, before
        # any request is served.
        everything = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.LISTENER_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = everything


def application_get() -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    django.setup(set_prefix=False)
    pages = WSGIHandler()
    listener = _ListenerHandler()
    startup_objects_freeze()

    def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(LISTENER_PATH_PREFIX):
            return listener(environ, start_response)
        return pages(environ, start_response)

    return application
