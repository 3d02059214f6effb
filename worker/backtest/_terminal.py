"""The backtest report as rich tables in the terminal, the rulesets side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from rich.console import Console
from rich.table import Table

from worker.backtest._report import PERCENTILES

__all__ = ["print_report", "ruleset_label"]

_CHANGED_SHOWN = 20
_BAR = 24


def ruleset_label(summary: dict[str, Any]) -> str:
    """How a ruleset is named in tables: its role and file."""
    return str(summary["role"])


def _count(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _delta(values: Sequence[Any], fmt: Callable[[Any], str]) -> str:
    new, old = values[0], values[1]
    if not isinstance(new, int | float) or not isinstance(old, int | float):
        return ""
    change = new - old
    if not change:
        return "="
    return f"{'+' if change > 0 else '−'}{fmt(abs(change))}"


class _Row(NamedTuple):
    label: str
    values: Sequence[Any]
    fmt: Callable[[Any], str] = _count


def _table(title: str, first: str, summaries: Sequence[dict[str, Any]], rows: Sequence[_Row]) -> Table:
    """One row per label, one column per ruleset, and the change when there are two."""
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    for summary in summaries:
        table.add_column(ruleset_label(summary), justify="right")
    if len(summaries) == 2:
        table.add_column("change", justify="right")
    for label, values, fmt in rows:
        cells = [fmt(v) for v in values]
        if len(summaries) == 2:
            cells.append(_delta(values, fmt))
        table.add_row(label, *cells)
    return table


def _keys(summaries: Sequence[dict[str, Any]], get: Callable[[dict[str, Any]], dict[str, Any]]) -> list[str]:
    """The keys of a mapping in every summary, in first-seen order."""
    return list(dict.fromkeys(k for s in summaries for k in get(s)))


def _headline(console: Console, report: dict[str, Any]) -> None:
    source, summaries = report["source"], report["rulesets"]
    console.print(f"[bold]leadflow backtest[/] of {source['name']}: {source['records']:,} records")
    for s in summaries:
        console.print(f"  {s['role']}: {s['path']} (ruleset {s['name']!r} {s['version']})")
    console.print(f"  model {report['model']['version']}; every decision stamped {report['decided_at']}")


def _overview(console: Console, summaries: Sequence[dict[str, Any]]) -> None:
    rows = [
        _Row("events decided", [s["events"]["valid"] for s in summaries]),
        _Row("bad events (not decided)", [s["bad_events"]["total"] for s in summaries]),
        _Row("replayed events recognised", [s["events"]["duplicates"] for s in summaries]),
        _Row("leads", [s["leads"] for s in summaries]),
        _Row("converted (opportunities)", [s["converted"] for s in summaries]),
        _Row("conversion rate (converted / leads)", [s["conversion_rate"] for s in summaries], _share),
        _Row("opportunity amount", [s["opportunities"]["amount"] for s in summaries]),
    ]
    console.print(_table("overview", "", summaries, rows))
    statuses = _keys(summaries, lambda s: s["statuses"])
    rows = [_Row(status, [s["statuses"].get(status, 0) for s in summaries]) for status in statuses]
    console.print(_table("leads by final status", "status", summaries, rows))


def _opportunities(console: Console, summaries: Sequence[dict[str, Any]]) -> None:
    def stage_counts(s: dict[str, Any]) -> dict[str, Any]:
        return {row["stage"]: row["count"] for row in s["opportunities"]["by_stage"]}

    stages = _keys(summaries, stage_counts)
    if stages:
        rows = [_Row(stage, [stage_counts(s).get(stage, 0) for s in summaries]) for stage in stages]
        console.print(_table("opportunities by stage", "stage", summaries, rows))
    routes = [("queue", q) for q in _keys(summaries, lambda s: s["opportunities"]["by_queue"])]
    routes += [("owner", o) for o in _keys(summaries, lambda s: s["opportunities"]["by_owner"])]
    if routes:
        rows = [
            _Row(f"{kind} {name}", [s["opportunities"][f"by_{kind}"].get(name, 0) for s in summaries])
            for kind, name in routes
        ]
        console.print(_table("opportunities by queue / owner", "routed to", summaries, rows))
    rules = _keys(summaries, lambda s: s["opportunities"]["by_rule"])
    if rules:
        rows = [_Row(rule, [s["opportunities"]["by_rule"].get(rule, 0) for s in summaries]) for rule in rules]
        console.print(_table("conversions by rule", "rule", summaries, rows))


def _points(console: Console, report: dict[str, Any]) -> None:
    summaries = report["rulesets"]
    stats = ["mean", "min", *(f"p{p}" for p in PERCENTILES), "max"]
    rows = [_Row(stat, [s["points"][stat] for s in summaries]) for stat in stats]
    console.print(_table("points per lead (final)", "", summaries, rows))
    bins = report["points_bins"]
    if not bins:
        return
    top = max((n for s in summaries for n in s["points"]["histogram"]), default=1) or 1
    table = Table(title="points histogram (leads per bin)", title_justify="left")
    table.add_column("points")
    for s in summaries:
        table.add_column(ruleset_label(s))
    for i, (lo, hi) in enumerate(bins):
        cells = []
        for s in summaries:
            n = s["points"]["histogram"][i]
            cells.append(f"{'█' * round(_BAR * n / top):<{_BAR}} {n:,}")
        table.add_row(f"{_count(lo)} to {_count(hi)}", *cells)
    console.print(table)


def _bad_events(console: Console, summaries: Sequence[dict[str, Any]]) -> None:
    reasons = _keys(summaries, lambda s: s["bad_events"]["by_reason"])
    if not reasons:
        return
    rows = [_Row(reason, [s["bad_events"]["by_reason"].get(reason, 0) for s in summaries]) for reason in reasons]
    console.print(
        _table("bad events by reason (skipped: the worker would dead-letter them)", "reason", summaries, rows)
    )
    for bad in summaries[0]["bad_events"]["examples"][:5]:
        console.print(f"  {bad['where']}: {bad['reason']}: {bad['error']}", markup=False)


def _rule_changes(console: Console, changes: dict[str, Any] | None) -> None:
    if changes is None:
        return
    parts = [
        f"{label} {', '.join(changes[key])}"
        for key, label in (("added", "added:"), ("removed", "removed:"), ("changed", "changed:"))
        if changes[key]
    ]
    if changes["qualification_order_changed"]:
        parts.append("qualification order changed")
    if changes["other_sections"]:
        parts.append(f"also changed: {', '.join(changes['other_sections'])}")
    console.print(f"[bold]rules[/] new vs old: {'; '.join(parts) or 'no rule differs'}")


def _changed(console: Console, changed: dict[str, Any] | None) -> None:
    if changed is None:
        return
    if not changed["total"]:
        console.print("[bold]no lead's outcome changed[/] (final status and converted flag are the same)")
        return
    transitions = Table(title=f"leads whose outcome changed: {changed['total']:,}", title_justify="left")
    transitions.add_column("old → new")
    transitions.add_column("leads", justify="right")
    for row in changed["by_transition"]:
        transitions.add_row(row["transition"], f"{row['leads']:,}")
    console.print(transitions)
    shown = changed["leads"][:_CHANGED_SHOWN]
    more = f" (first {len(shown)}; all in --json / --html)" if changed["total"] > len(shown) else ""
    table = Table(title=f"changed leads{more}", title_justify="left")
    for column in ("lead", "old → new", "points", "decided by (old → new)", "scoring rules that differ"):
        table.add_column(column, justify="right" if column == "points" else "left")
    for row in shown:
        old, new = row["old"], row["new"]
        table.add_row(
            row["lead_id"],
            row["transition"],
            f"{_count(old['points'])} → {_count(new['points'])}",
            f"{old['decided_by'] or '–'} → {new['decided_by'] or '–'}",
            " ".join(row["scoring_rules"]) or "–",
        )
    console.print(table)


def _outcomes(console: Console, report: dict[str, Any]) -> None:
    info, summaries = report["outcomes"], report["rulesets"]
    if info is None:
        return
    rows = [
        _Row(label, [s["outcomes"][key] for s in summaries], fmt)
        for label, key, fmt in (
            ("leads with a known outcome", "leads", _count),
            ("converted, did convert (TP)", "tp", _count),
            ("converted, did not (FP)", "fp", _count),
            ("not converted, did (FN)", "fn", _count),
            ("not converted, did not (TN)", "tn", _count),
            ("precision", "precision", _share),
            ("recall", "recall", _share),
        )
    ]
    title = f"'qualified' against known outcomes ({info['path']}: {info['outcome_column']!r})"
    console.print(_table(title, "", summaries, rows))
    if info["not_in_events"]:
        console.print(f"  {info['not_in_events']:,} leads of the outcomes file are not in the events (left out)")


def print_report(report: dict[str, Any], console: Console) -> None:
    """Print the whole report: overview, statuses, opportunities, points, bad events, changes, outcomes."""
    summaries = report["rulesets"]
    _headline(console, report)
    _overview(console, summaries)
    _opportunities(console, summaries)
    _points(console, report)
    _bad_events(console, summaries)
    _outcomes(console, report)
    _rule_changes(console, report["rule_changes"])
    _changed(console, report["changed"])
