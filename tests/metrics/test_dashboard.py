"""deploy/grafana-dashboard.json is a Grafana dashboard whose every query names a metric `/metrics`
exposes: a renamed metric breaks this test, not a dashboard somebody looks at during an incident."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client as HttpClient
from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"

# The series a family of each type is queried by (a labelled family is listed before it has samples).
_SAMPLE_SUFFIXES = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}

# PromQL words that look like names but are not metrics.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or"}
_KEYWORDS |= {"unless", "inf", "nan", "le"}


def expression_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values, regexes)
    expr = re.sub(r"\$\{[^}]*\}|\$\w+", "", expr)  # Grafana's variables ($__rate_interval, $client)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", expr):  # not inside 5m or 1e3
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for panel in panels:
        flat.append(panel)
        flat.extend(_panels(panel.get("panels", [])))
    return flat


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["definition"])
            assert match, f"variable {variable['name']}: unexpected query {variable['definition']!r}"
            queries.append(match.group(1))
    return queries


def test_expression_metric_names_finds_the_selected_metrics_only() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, kind) (rate(a_seconds_bucket{kind=~"$k", x="y z"}'
        "[$__rate_interval]))) / on (kind) group_left max without (instance) (b_total offset 5m)"
        " + deriv(c[10m:1m]) and d"
    )
    assert expression_metric_names(expr) == {"a_seconds_bucket", "b_total", "c", "d"}


def test_the_dashboard_is_a_grafana_dashboard_with_a_prometheus_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())

    assert dashboard["uid"] == "optimove-partner"
    assert isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = _panels(dashboard["panels"])
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 10
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))


@pytest.mark.django_db
def test_every_metric_the_dashboard_queries_is_one_metrics_exposes(
    redis_client: Any, client: HttpClient
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = set().union(*(expression_metric_names(q) for q in dashboard_queries(dashboard)))
    exposed = set()
    for family in text_string_to_metric_families(client.get("/metrics").content.decode()):
        exposed |= {f"{family.name}{suffix}" for suffix in _SAMPLE_SUFFIXES[family.type]}

    assert used - exposed == set()
    # The panels the operations guide promises.
    assert {
        "partner_provider_messages_total",
        "partner_messages",
        "partner_queue_length",
        "partner_queue_lag_seconds",
        "partner_optimove_requests_total",
        "partner_optimove_request_duration_seconds_bucket",
        "partner_provider_call_duration_seconds_bucket",
        "django_http_requests_total_by_view_transport_method_total",
        "django_http_requests_latency_seconds_by_view_method_bucket",
    } <= used
