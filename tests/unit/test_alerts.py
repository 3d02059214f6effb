"""deploy/prometheus/alerts.yml: every alert is complete, reads only metrics the worker exports, and has promtool unit
tests in deploy/prometheus/tests/<alert>.yml that show it firing and not firing.

promtool comes from Debian's prometheus package, which `make system-deps` (a prerequisite of `make test`) installs:
without it these tests fail and say so; they never skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from worker.opportunities import Pipeline
from worker.stream.metrics import Metrics

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "tests"
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_info")


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def exported_metrics() -> set[str]:
    """The names of the metrics a worker registers (without the suffixes of their samples)."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.watch_partitions(list)  # the consumer lag and oldest-record gauges: with no partitions, names alone
    metrics.watch_pipeline(Pipeline)  # the pipeline gauges: with no opportunities, names alone
    return {metric.name for metric in registry.collect()}


def promtool() -> str:
    """The path of promtool, or a failure that says how to get it."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run `make system-deps` (it installs Debian's prometheus package)")
    return path


_NAMES = [str(rule["alert"]) for rule in _rules()]


@pytest.mark.parametrize("rule", _rules(), ids=_NAMES)
def test_an_alert_has_a_name_an_expression_a_severity_and_a_summary(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"Leadflow[A-Z]\w+", str(rule["alert"]))
    assert isinstance(rule["expr"], str)
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"]


def unknown_metrics(expr: str) -> set[str]:
    """The leadflow_* metrics ``expr`` reads that worker/stream/metrics.py does not define."""
    exported = exported_metrics()
    unknown = set()
    for name in re.findall(r"\bleadflow_\w+", expr):
        if not exported & {name, *(name.removesuffix(suffix) for suffix in _SUFFIXES)}:
            unknown.add(name)
    return unknown


@pytest.mark.parametrize("rule", _rules(), ids=_NAMES)
def test_an_alert_reads_only_metrics_the_worker_exports(rule: dict[str, Any]) -> None:
    unknown = unknown_metrics(str(rule["expr"]))
    assert unknown == set(), f"{rule['alert']} reads metrics that worker/stream/metrics.py does not define"


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("alert", _NAMES)
def test_an_alert_fires_and_stays_quiet_as_its_promtool_unit_tests_say(alert: str) -> None:
    path = RULE_TESTS / f"{alert}.yml"
    assert path.exists(), f"{alert} has no promtool unit tests: write {path.relative_to(PROMETHEUS.parents[1])}"
    cases = [
        case
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert
    ]
    assert any(case.get("exp_alerts") for case in cases), f"{path.name} never shows {alert} firing"
    assert any(not case.get("exp_alerts") for case in cases), f"{path.name} never shows {alert} quiet"
    done = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_test_file_is_of_an_alert_that_exists() -> None:
    assert {path.stem for path in RULE_TESTS.glob("*.yml")} <= set(_NAMES)


def test_the_readme_explains_every_alert() -> None:
    readme = (PROMETHEUS.parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("### Dashboard and alerts") :]
    named = set(re.findall(r"`(Leadflow\w+)`", table[: table.index("\n## ")]))
    assert named == set(_NAMES)
