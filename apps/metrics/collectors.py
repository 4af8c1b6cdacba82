"""The gauges `/metrics` computes at scrape time from the database and the broker."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import REGISTRY

from apps.metrics import selectors

logger = logging.getLogger(__name__)


class DatabaseCollector:
    """Messages by client, channel and status; runs by client and state; queue lengths and lag.

    A source that does not answer leaves its families out and sets `partner_metrics_source_up` to 0,
    so the scrape itself still succeeds and the outage shows."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "partner_metrics_source_up",
            "Whether the source of the scrape-time gauges answered (1) or not (0).",
            labels=["source"],
        )
        try:
            snapshot = selectors.database_snapshot()
        except Exception:
            logger.exception("metrics: the database snapshot failed")
            up.add_metric(["database"], 0)
        else:
            up.add_metric(["database"], 1)
            yield from _database_families(snapshot)
        try:
            lengths = selectors.queue_lengths(selectors.queue_names())
        except Exception as exc:
            logger.warning("metrics: cannot read the queue lengths from the broker (%s)", type(exc).__name__)
            up.add_metric(["broker"], 0)
        else:
            up.add_metric(["broker"], 1)
            queues = GaugeMetricFamily(
                "partner_queue_length",
                "Tasks waiting in each Celery queue of the broker (not those a worker has reserved).",
                labels=["queue"],
            )
            for name, length in lengths.items():
                queues.add_metric([name], length)
            yield queues
        yield up


def _database_families(snapshot: selectors.DatabaseSnapshot) -> Iterator[GaugeMetricFamily]:
    messages = GaugeMetricFamily(
        "partner_messages",
        "Messages in the database by client slug, Optimove channel id and status.",
        labels=["client", "channel", "status"],
    )
    for (client, channel), counts in sorted(snapshot.messages.items()):
        for status, count in sorted(counts.items()):
            messages.add_metric([client, str(channel), status], count)
    yield messages
    runs = GaugeMetricFamily(
        "partner_campaign_runs", "Campaign runs by client slug and state.", labels=["client", "state"]
    )
    for (client, state), count in sorted(snapshot.runs.items()):
        runs.add_metric([client, state], count)
    yield runs
    yield GaugeMetricFamily(
        "partner_queue_lag_seconds",
        "Seconds since the oldest pending message of an active run fell due without being released "
        "(0 when the dispatcher is keeping up).",
        value=snapshot.queue_lag_seconds,
    )


class DefaultRegistryCollector:
    """This process's own metrics, when multiprocess mode is off (plain development)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()
