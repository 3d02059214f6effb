"""The backtest report as rich tables in the terminal, the rulesets side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from worker.tools.backtest._views import SideBySide, count, delta, rule_changes_text, side_by_side_tables

__all__ = ["print_report"]

_CHANGED_SHOWN = 20
_BAR = 24


def _table(view: SideBySide, summaries: Sequence[dict[str, Any]]) -> Table:
    """One row per label, one column per ruleset, and the change when there are two."""
    table = Table(title=Text(view.title), title_justify="left")
    table.add_column(view.first)
    for summary in summaries:
        table.add_column(summary["role"], justify="right")
    if len(summaries) == 2:
        table.add_column("change", justify="right")
    for row in view.rows:
        cells = [row.fmt(v) for v in row.values]
        if len(summaries) == 2:
            cells.append(delta(row)[0])
        table.add_row(*(Text(cell) for cell in (row.label, *cells)))
    return table


def _headline(console: Console, report: dict[str, Any]) -> None:
    source = report["source"]
    console.print(f"[bold]leadflow backtest[/] of {escape(source['name'])}: {source['records']:,} records")
    for s in report["rulesets"]:
        console.print(f"  {s['role']}: {s['path']} (ruleset {s['name']!r} {s['version']})", markup=False)
    console.print(f"  model {report['model']['version']}; every decision stamped {report['decided_at']}")


def _histogram(console: Console, report: dict[str, Any]) -> None:
    summaries, bins = report["rulesets"], report["points_bins"]
    if not bins:
        return
    top = max((n for s in summaries for n in s["points"]["histogram"]), default=1) or 1
    table = Table(title="points histogram (leads per bin)", title_justify="left")
    table.add_column("points")
    for s in summaries:
        table.add_column(s["role"])
    for i, (lo, hi) in enumerate(bins):
        cells = [
            f"{'█' * round(_BAR * n / top):<{_BAR}} {n:,}" for n in (s["points"]["histogram"][i] for s in summaries)
        ]
        table.add_row(f"{count(lo)} to {count(hi)}", *cells)
    console.print(table)


def _changed(console: Console, report: dict[str, Any]) -> None:
    changed = report["changed"]
    if changed is None:
        return
    console.print(f"[bold]rules[/] new vs old: {escape(rule_changes_text(report['rule_changes']) or '')}")
    if not changed["total"]:
        console.print("[bold]no lead's outcome changed[/] (final status and converted flag are the same)")
        return
    transitions = Table(title=f"leads whose outcome changed: {changed['total']:,}", title_justify="left")
    transitions.add_column("old → new")
    transitions.add_column("leads", justify="right")
    for row in changed["by_transition"]:
        transitions.add_row(Text(row["transition"]), f"{row['leads']:,}")
    console.print(transitions)
    shown = changed["leads"][:_CHANGED_SHOWN]
    more = f" (first {len(shown)}; all in --json / --html)" if changed["total"] > len(shown) else ""
    table = Table(title=f"changed leads{more}", title_justify="left")
    for column in ("lead", "old → new", "points", "decided by (old → new)", "scoring rules that differ"):
        table.add_column(column, justify="right" if column == "points" else "left")
    for row in shown:
        old, new = row["old"], row["new"]
        cells = (
            row["lead_id"],
            row["transition"],
            f"{count(old['points'])} → {count(new['points'])}",
            f"{old['decided_by'] or '–'} → {new['decided_by'] or '–'}",
            " ".join(row["scoring_rules"]) or "–",
        )
        table.add_row(*(Text(cell) for cell in cells))  # ids and names are data, not markup
    console.print(table)


def print_report(report: dict[str, Any], console: Console) -> None:
    """Print the whole report: overview, statuses, opportunities, points, bad events, outcomes, changes."""
    summaries = report["rulesets"]
    _headline(console, report)
    for name, view in side_by_side_tables(report).items():
        console.print(_table(view, summaries))
        if name == "points":
            _histogram(console, report)
        if name == "bad":
            for bad in summaries[0]["bad_events"]["examples"][:5]:
                console.print(f"  {bad['where']}: {bad['reason']}: {bad['error']}", markup=False)
    if report["outcomes"] is not None and report["outcomes"]["not_in_events"]:
        console.print(f"  {report['outcomes']['not_in_events']:,} leads of the outcomes file are not in the events")
    _changed(console, report)
