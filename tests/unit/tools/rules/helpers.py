"""Small rulesets for the tools' tests, written as Python data and dumped to YAML."""

from __future__ import annotations

from typing import Any

import yaml

from worker.tools.rules import CheckReport, Finding, check_text
from worker.tools.rules._lint import Sample

_NUMERIC_OPS = ("gt", "gte", "lt", "lte", "between")


def _declare(node: Any, out: dict[str, str]) -> None:
    """Declare each ``custom.*`` field a condition reads, with the kind its tests suggest."""
    if isinstance(node, list):
        for item in node:
            _declare(item, out)
    elif isinstance(node, dict):
        name = node.get("field") if "op" in node else None
        if isinstance(name, str) and name.startswith("custom."):
            value = node.get("value")
            values = value if isinstance(value, list) else [value]
            kind = "text"
            if any(isinstance(v, bool) for v in values):
                kind = "yes/no"
            elif node["op"] in _NUMERIC_OPS or any(isinstance(v, int | float) for v in values):
                kind = "number"
            out.setdefault(name, kind)
        per = node.get("per")
        if isinstance(per, str) and per.startswith("custom."):
            out.setdefault(per, "number")
        for value in node.values():
            _declare(value, out)


def ruleset_text(
    scoring: list[dict[str, Any]] | None = None, qualification: list[dict[str, Any]] | None = None, **top: Any
) -> str:
    """A ruleset's YAML; the ``custom.*`` fields its rules read are declared unless ``fields`` is given."""
    declared: dict[str, str] = {}
    _declare([scoring or [], qualification or []], declared)
    doc: dict[str, Any] = {"version": "1", **top}
    if scoring is not None:
        doc["scoring"] = scoring
    if qualification is not None:
        doc["qualification"] = qualification
    if declared and "fields" not in top:
        doc["fields"] = declared  # last, so that the rules' lines do not depend on it
    return yaml.safe_dump(doc, sort_keys=False)


def check(
    scoring: list[dict[str, Any]] | None = None,
    qualification: list[dict[str, Any]] | None = None,
    sample: Sample | None = None,
    **top: Any,
) -> CheckReport:
    return check_text(ruleset_text(scoring, qualification, **top), "rules.yaml", sample)


def codes(report: CheckReport) -> list[tuple[str, str | None]]:
    """(code, rule id) of every finding."""
    return [(f.code, f.rule_id) for f in report.findings]


def only(report: CheckReport, code: str) -> Finding:
    (found,) = [f for f in report.findings if f.code == code]
    return found


def scoring_rule(when: dict[str, Any], rule_id: str = "s", points: float = 10) -> dict[str, Any]:
    return {"id": rule_id, "when": when, "points": points}


def q(rule_id: str, when: dict[str, Any], status: str = "Contacted", **more: Any) -> dict[str, Any]:
    return {"id": rule_id, "when": when, "status": status, **more}


def leaf(field: str, op: str, value: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        out["value"] = value
    return out
