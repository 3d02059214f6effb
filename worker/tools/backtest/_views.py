"""The report's side-by-side tables as plain rows, shared by the terminal and the HTML renderings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from worker.tools.backtest._report import PERCENTILES

__all__ = [
    "Row",
    "SideBySide",
    "count",
    "delta",
    "rule_changes_text",
    "share",
    "side_by_side_tables",
]


def count(value: Any) -> str:
    """A count or amount with thousands separators (two decimals when it has any)."""
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def share(value: float | None) -> str:
    """A ratio as a percentage."""
    return "–" if value is None else f"{value:.1%}"


class Row(NamedTuple):
    """One label and its value under each ruleset (new first)."""

    label: str
    values: Sequence[Any]
    fmt: Callable[[Any], str] = count


@dataclass(frozen=True, slots=True)
class SideBySide:
    """A table with one column per ruleset."""

    title: str
    first: str
    rows: list[Row]


def delta(row: Row) -> tuple[str, int]:
    """The new value minus the old one as text, and its sign (0: equal or not comparable)."""
    new, old = row.values[0], row.values[1]
    if not isinstance(new, int | float) or not isinstance(old, int | float):
        return "", 0
    if new == old:
        return "=", 0
    sign = 1 if new > old else -1
    return f"{'+' if sign > 0 else '−'}{row.fmt(abs(new - old))}", sign


def _keys(summaries: Sequence[dict[str, Any]], get: Callable[[dict[str, Any]], dict[str, Any]]) -> list[str]:
    """The keys of a mapping in every summary, in first-seen order."""
    return list(dict.fromkeys(k for s in summaries for k in get(s)))


def _by(
    title: str, first: str, summaries: Sequence[dict[str, Any]], get: Callable[[dict[str, Any]], dict[str, Any]]
) -> SideBySide:
    return SideBySide(title, first, [Row(k, [get(s).get(k, 0) for s in summaries]) for k in _keys(summaries, get)])


def _stages(summary: dict[str, Any]) -> dict[str, Any]:
    return {row["stage"]: row["count"] for row in summary["opportunities"]["by_stage"]}


def _routes(summary: dict[str, Any]) -> dict[str, Any]:
    opportunities = summary["opportunities"]
    return {
        **{f"queue {q}": n for q, n in opportunities["by_queue"].items()},
        **{f"owner {o}": n for o, n in opportunities["by_owner"].items()},
    }


def _members(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Per pool member (``"ae / ann"``) its ``key`` (leads or weight); overflows after the members for leads."""

    def get(summary: dict[str, Any]) -> dict[str, Any]:
        routing = summary.get("routing") or {"pools": []}
        out: dict[str, Any] = {}
        for pool in routing["pools"]:
            out.update({f"{pool['pool']} / {m['member']}": m[key] for m in pool["members"]})
            if key == "leads":
                out.update({f"{pool['pool']} / overflow to {t}": n for t, n in pool["overflow_to"].items()})
        return out

    return get


def _skips(summary: dict[str, Any]) -> dict[str, Any]:
    routing = summary.get("routing") or {"pools": []}
    return {f"{pool['pool']} / {reason}": n for pool in routing["pools"] for reason, n in pool["skips"].items()}


def _direct(summary: dict[str, Any]) -> dict[str, Any]:
    return dict((summary.get("routing") or {}).get("direct", {}))


def _outcomes(summaries: Sequence[dict[str, Any]], info: dict[str, Any]) -> SideBySide:
    rows = [
        Row(label, [s["outcomes"][key] for s in summaries], fmt)
        for label, key, fmt in (
            ("leads with a known outcome", "leads", count),
            ("converted, did convert (TP)", "tp", count),
            ("converted, did not (FP)", "fp", count),
            ("not converted, did (FN)", "fn", count),
            ("not converted, did not (TN)", "tn", count),
            ("precision", "precision", share),
            ("recall", "recall", share),
        )
    ]
    return SideBySide(f"“qualified” against known outcomes ({info['path']})", "", rows)


def side_by_side_tables(report: dict[str, Any]) -> dict[str, SideBySide]:
    """Every side-by-side table of the report that has rows, by name, in reading order."""
    summaries = report["rulesets"]
    overview = [
        Row("events decided", [s["events"]["valid"] for s in summaries]),
        Row("bad events (not decided)", [s["bad_events"]["total"] for s in summaries]),
        Row("replayed events recognised", [s["events"]["duplicates"] for s in summaries]),
        Row("leads", [s["leads"] for s in summaries]),
        Row("converted (opportunities)", [s["converted"] for s in summaries]),
        Row("conversion rate (converted / leads)", [s["conversion_rate"] for s in summaries], share),
        Row("opportunity amount", [s["opportunities"]["amount"] for s in summaries]),
    ]
    stats = ["mean", "min", *(f"p{p}" for p in PERCENTILES), "max"]
    tables = {
        "overview": SideBySide("overview", "", overview),
        "statuses": _by("leads by final status", "status", summaries, lambda s: s["statuses"]),
        "stages": _by("opportunities by stage", "stage", summaries, _stages),
        "routes": _by("opportunities by queue / owner", "routed to", summaries, _routes),
        "rules": _by("conversions by rule", "rule", summaries, lambda s: s["opportunities"]["by_rule"]),
        "points": SideBySide(
            "points per lead (final)", "", [Row(k, [s["points"][k] for s in summaries]) for k in stats]
        ),
        "load": _by("routing: leads per pool member", "pool / member", summaries, _members("leads")),
        "weights": _by("routing: pool member weights", "pool / member", summaries, _members("weight")),
        "skips": _by("routing: members skipped, by reason", "pool / reason", summaries, _skips),
        "direct": _by("routing: routed directly (no pool)", "target", summaries, _direct),
        "bad": _by(
            "bad events by reason (skipped: the worker would dead-letter them)",
            "reason",
            summaries,
            lambda s: s["bad_events"]["by_reason"],
        ),
    }
    if report["outcomes"] is not None:
        tables["outcomes"] = _outcomes(summaries, report["outcomes"])
    return {name: table for name, table in tables.items() if table.rows}


def rule_changes_text(changes: dict[str, Any] | None) -> str | None:
    """What differs between the rulesets' rules, in one line (None without a comparison)."""
    if changes is None:
        return None
    parts = [f"{key}: {', '.join(changes[key])}" for key in ("added", "removed", "changed") if changes[key]]
    if changes["qualification_order_changed"]:
        parts.append("qualification order changed")
    if changes["other_sections"]:
        parts.append(f"also changed: {', '.join(changes['other_sections'])}")
    return "; ".join(parts) or "no rule differs"
