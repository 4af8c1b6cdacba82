"""The metrics directory the suite's web and worker processes share (tests/conftest.py subprocess_env)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache


@lru_cache(maxsize=1)
def session_multiproc_dir() -> str:
    """One empty directory per pytest run, removed at its end: every process the suite starts runs in
    prometheus_client's multiprocess mode, as in production. A test that reads the counters passes a
    directory of its own instead."""
    path = tempfile.mkdtemp(prefix="optimove-partner-metrics-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(text: str) -> Samples:
    """Prometheus's text format -> {(sample name, labels): value}, read with prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def family_names(text: str) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name for family in text_string_to_metric_families(text)}


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a counter nobody has incremented yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def select(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return {key: v for (n, key), v in samples.items() if n == name and wanted <= key}
