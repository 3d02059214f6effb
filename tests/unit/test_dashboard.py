"""deploy/grafana/leadflow.json: a dashboard Grafana imports as it is, every query filtered by the job and instance
chosen, reading metrics the worker exports. Whether each panel shows data from a real worker is
tests/integration/test_prometheus.py's question."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_alerts import unknown_metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "leadflow.json"
BOARD: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
PANELS: list[dict[str, Any]] = BOARD["panels"]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
FILTER = ('job=~"$job"', 'instance=~"$instance"')
# a metric name in an expression, and its label matchers if any (functions and keywords are followed by "(")
_SELECTOR = re.compile(r"\b((?:leadflow|process)_\w+)\b(\{[^}]*\})?")


def test_the_dashboard_is_a_recent_grafana_dashboard_with_a_datasource_a_job_and_an_instance_variable() -> None:
    assert 36 <= BOARD["schemaVersion"] <= 41
    assert BOARD["uid"] == "leadflow"
    variables = {v["name"]: v for v in BOARD["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance"]
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    assert variables["job"]["query"]["query"] == "label_values(leadflow_worker_up, job)"
    assert variables["instance"]["query"]["query"] == 'label_values(leadflow_worker_up{job=~"$job"}, instance)'
    for name in ("job", "instance"):
        assert variables[name]["datasource"] == DATASOURCE
        assert variables[name]["multi"]
        assert variables[name]["includeAll"]


def test_panels_do_not_overlap_and_fit_the_24_columns() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in PANELS:
        g = panel["gridPos"]
        assert g["x"] >= 0
        assert g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]
    assert len({p["id"] for p in PANELS}) == len(PANELS)


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_a_panel_queries_the_chosen_datasource_job_and_instance(panel: dict[str, Any]) -> None:
    assert panel["description"]
    assert panel["fieldConfig"]["defaults"]["unit"]
    assert panel["datasource"] == DATASOURCE
    assert panel["targets"]
    assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE
        selectors = _SELECTOR.findall(target["expr"])
        assert selectors, target["expr"]
        for name, matchers in selectors:
            assert all(f in matchers for f in FILTER), f"{name} in {panel['title']!r} is not filtered by {FILTER}"


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_a_panel_reads_only_metrics_the_worker_exports(panel: dict[str, Any]) -> None:
    """leadflow_* against worker/stream/metrics.py; process_* are prometheus_client's process collector's, seen on
    the worker's page by the integration test."""
    unknown = set().union(*(unknown_metrics(target["expr"]) for target in panel["targets"]))
    assert unknown == set(), f"{panel['title']!r} reads metrics that worker/stream/metrics.py does not define"
