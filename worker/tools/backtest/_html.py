"""The backtest report as one self-contained HTML file: inline style, charts embedded as PNG data URIs."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from worker.exceptions import BacktestError
from worker.tools._html import STYLE as _STYLE
from worker.tools._html import img as _img
from worker.tools._html import table as _table
from worker.tools._html import write_page
from worker.tools.backtest._charts import funnel_chart, load_chart, points_chart
from worker.tools.backtest._views import SideBySide, count, delta, rule_changes_text, side_by_side_tables

__all__ = ["render_html", "write_html"]

_CHANGED_ROWS = 2_000


def _side_by_side(view: SideBySide, summaries: Sequence[dict[str, Any]]) -> str:
    head = [view.first, *(f"{s['role']} ({s['path']})" for s in summaries)]
    if len(summaries) == 2:
        head.append("change")
    body = []
    for row in view.rows:
        cells = [escape(row.label), *(row.fmt(v) for v in row.values)]
        if len(summaries) == 2:
            text, sign = delta(row)
            cells.append(f'<span class="{"up" if sign > 0 else "down"}">{text}</span>' if sign else text)
        body.append(cells)
    return f"<h2>{escape(view.title[:1].upper() + view.title[1:])}</h2>" + _table(head, body)


def _changes(report: dict[str, Any]) -> str:
    changed = report["changed"]
    if changed is None:
        return ""
    out = [
        "<h2>Leads whose outcome changed</h2>",
        f"<p>Rules, new vs old: {escape(rule_changes_text(report['rule_changes']) or '')}.</p>",
    ]
    if not changed["total"]:
        out.append("<p>No lead's final status or converted flag changed.</p>")
        return "".join(out)
    out.append(
        _table(["old → new", "leads"], ([escape(r["transition"]), count(r["leads"])] for r in changed["by_transition"]))
    )
    rows = changed["leads"][:_CHANGED_ROWS]
    if changed["total"] > len(rows):
        out.append(f"<p class=muted>The first {len(rows):,} of {changed['total']:,}; --json has them all.</p>")
    head = [
        "lead",
        "old → new",
        "points old",
        "points new",
        "decided by (old)",
        "decided by (new)",
        "scoring rules that differ",
    ]
    body = (
        [
            escape(r["lead_id"]),
            escape(r["transition"]),
            count(r["old"]["points"]),
            count(r["new"]["points"]),
            escape(r["old"]["decided_by"] or "–"),
            escape(r["new"]["decided_by"] or "–"),
            escape(" ".join(r["scoring_rules"]) or "–"),
        ]
        for r in rows
    )
    out.append(_table(head, body, numeric=(2, 3)))
    return "".join(out)


def _extras(name: str, report: dict[str, Any]) -> str:
    """What follows a side-by-side table: a chart (points, per-member load), bad-event examples, the outcomes file."""
    if name == "points":
        return _img(points_chart(report), "points histogram")
    if name == "load":
        return _img(load_chart(report), "leads per pool member")
    if name == "bad":
        examples = report["rulesets"][0]["bad_events"]["examples"]
        return _table(
            ["where", "reason", "error"],
            ([escape(b["where"]), escape(b["reason"]), escape(b["error"])] for b in examples),
            numeric=(),
        )
    if name == "outcomes":
        info = report["outcomes"]
        return (
            f"<p class=muted>{escape(info['path'])}: columns <code>{escape(info['id_column'])}</code> and "
            f"<code>{escape(info['outcome_column'])}</code>; {info['leads']:,} leads, {info['converted']:,} "
            f"converted; {info['not_in_events']:,} not in the events (left out).</p>"
        )
    return ""


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one HTML document with no external reference."""
    source, summaries = report["source"], report["rulesets"]
    rulesets = "".join(
        f"<li><b>{escape(s['role'])}</b>: {escape(s['path'])} (ruleset {escape(s['name'])} "
        f"<code>{escape(s['version'])}</code>)</li>"
        for s in summaries
    )
    tables = "".join(
        _side_by_side(view, summaries) + _extras(name, report) for name, view in side_by_side_tables(report).items()
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>leadflow backtest: {escape(source['name'])}</title><style>{_STYLE}</style></head><body>"
        f"<h1>leadflow backtest</h1><p>{escape(source['name'])}: {source['records']:,} records. "
        f"Model <code>{escape(report['model']['version'])}</code>; decisions stamped {escape(report['decided_at'])}."
        f"</p><ul>{rulesets}</ul><h2>Conversion funnel</h2>{_img(funnel_chart(report), 'conversion funnel')}"
        f"{tables}{_changes(report)}</body></html>"
    )


def write_html(report: dict[str, Any], path: Path) -> None:
    """Write the HTML report to ``path``."""
    write_page(path, render_html(report), BacktestError)
