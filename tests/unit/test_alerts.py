"""deploy/prometheus/alerts.yml: every alert is complete and reads only metrics the worker exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from worker.stream.metrics import Metrics

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_info")


def _rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _exported() -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    return {metric.name for metric in registry.collect()}


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: str(rule["alert"]))
def test_an_alert_has_a_name_an_expression_and_a_summary(rule: dict[str, object]) -> None:
    assert re.fullmatch(r"Leadflow[A-Z]\w+", str(rule["alert"]))
    assert isinstance(rule["expr"], str)
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    assert annotations["summary"]


def test_alerts_read_only_metrics_the_worker_exports() -> None:
    exported = _exported()
    unknown = set()
    for rule in _rules():
        for name in re.findall(r"\bleadflow_\w+", str(rule["expr"])):
            base = name
            for suffix in _SUFFIXES:
                base = base.removesuffix(suffix)
            if base not in exported and name not in exported:
                unknown.add(name)
    assert unknown == set()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) is not installed")
def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None
    done = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
