"""Counters and histograms recorded where the work happens (Celery workers, web processes).

Each is fed by a one-line hook in the code that does the work:
- apps/optimove/client.py `OptimoveClient._send`: every HTTP attempt to Optimove (`optimove_request_observe`);
- apps/campaigns/services.py `_send_over_provider`: every provider call of a send batch
  (`provider_batch_send`).

In multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`) the values land in files the web's `/metrics` merges.
Label values are ids and names the platform chose (client slug, Optimove channel id, provider name,
Optimove function, HTTP status): never a customer, an address or a secret.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from apps.metrics.multiproc import multiprocess_configure

if TYPE_CHECKING:
    from apps.channels.base import ChannelBackend, OutboundMessage, SendResult
    from apps.clients.models import Channel

logger = logging.getLogger(__name__)

# Before the first metric value exists in this process (the app's ready() does it too).
multiprocess_configure()

OPTIMOVE_REQUESTS = Counter(
    "partner_optimove_requests",
    "HTTP requests to Optimove's API by function and outcome (HTTP status, 'timeout' or "
    "'connection_error'); every retry counts.",
    ["function", "status"],
)
OPTIMOVE_REQUEST_SECONDS = Histogram(
    "partner_optimove_request_duration_seconds",
    "Duration of one HTTP request to Optimove's API, by function.",
    ["function"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
PROVIDER_MESSAGES = Counter(
    "partner_provider_messages",
    "Messages handed to a provider, by client, Optimove channel id, channel kind, provider and the "
    "provider's answer (sent, retry, failed).",
    ["client", "channel", "kind", "provider", "result"],
)
PROVIDER_CALL_SECONDS = Histogram(
    "partner_provider_call_duration_seconds",
    "Duration of one provider call of a send batch (up to SEND_CHUNK_SIZE messages, less when the "
    "channel's rate limit is lower), by channel kind and provider. Waiting for the rate limit or the "
    "send time is not included.",
    ["kind", "provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


def optimove_request_observe(*, function: str, outcome: str, duration_ms: int) -> None:
    """One HTTP attempt to Optimove ended: `outcome` is its status code, 'timeout' or 'connection error'."""
    try:
        OPTIMOVE_REQUESTS.labels(function=function, status=outcome.replace(" ", "_")).inc()
        OPTIMOVE_REQUEST_SECONDS.labels(function=function).observe(duration_ms / 1000)
    except Exception:  # a metric must never fail the call it describes
        logger.warning("metrics: could not record an Optimove request", exc_info=True)


def provider_batch_send(
    backend: ChannelBackend, messages: Sequence[OutboundMessage], *, channel: Channel
) -> list[SendResult]:
    """`backend.send_batch(messages)`, timed, with each message's result counted."""
    started = time.perf_counter()
    results = backend.send_batch(messages)
    elapsed = time.perf_counter() - started
    try:
        _provider_batch_record(channel, results, elapsed)
    except Exception:  # the messages are sent: a metric must never turn that into a failure
        logger.warning("metrics: could not record a provider call", exc_info=True)
    return results


def _provider_batch_record(channel: Channel, results: Sequence[SendResult], elapsed: float) -> None:
    PROVIDER_CALL_SECONDS.labels(kind=channel.kind, provider=channel.provider).observe(elapsed)
    # One primary-key query per send batch at most: Django caches the client on this channel instance.
    client = channel.client.slug
    for status, count in collections.Counter(str(r.status) for r in results).items():
        PROVIDER_MESSAGES.labels(
            client=client,
            channel=str(channel.optimove_channel_id),
            kind=channel.kind,
            provider=channel.provider,
            result=status,
        ).inc(count)
