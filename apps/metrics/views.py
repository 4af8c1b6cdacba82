"""`/metrics`: Prometheus's text format, for every process of this host and the database's truth."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from apps.metrics.collectors import DatabaseCollector, DefaultRegistryCollector
from apps.metrics.multiproc import multiprocess_dir


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Open when METRICS_TOKEN is empty (a private network); otherwise it takes
    `Authorization: Bearer <METRICS_TOKEN>`. It shows counts and names, never personal data or secrets."""
    token: str = settings.METRICS_TOKEN
    if token and not _bearer_matches(request, token):
        response = HttpResponse("metrics need a bearer token\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    path = multiprocess_dir()
    if path is not None:
        MultiProcessCollector(registry, path=path)  # registers itself
    else:
        registry.register(DefaultRegistryCollector())
    registry.register(DatabaseCollector())
    # The format the scraper asks for (OpenMetrics or a text version); the classic text one by default.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry), content_type=content_type)


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
