"""The backtest report as one self-contained HTML file: inline style, charts embedded as PNG data URIs."""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection, Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from worker.backtest._charts import funnel_chart, points_chart
from worker.backtest._report import PERCENTILES
from worker.exceptions import BacktestError

__all__ = ["render_html", "write_html"]

_CHANGED_ROWS = 2_000

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #111827; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #e5e7eb; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e5e7eb; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.up { color: #15803d; } .down { color: #b91c1c; }
.muted { color: #6b7280; } code { background: #f3f4f6; padding: 0 .25em; }
img { max-width: 100%; }
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _n(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{value:,.0f}"


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value:.1%}"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Collection[int] | None = None) -> str:
    """A table of already escaped cells; ``numeric`` columns (default: all but the first) are right-aligned."""
    right = range(1, len(head)) if numeric is None else numeric
    cls = [' class="n"' if i in right else "" for i in range(len(head))]
    out = ["<table><tr>", *(f"<th{cls[i]}>{escape(h)}</th>" for i, h in enumerate(head)), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td{cls[i]}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _delta(new: Any, old: Any, fmt: Callable[[Any], str]) -> str:
    if not isinstance(new, int | float) or not isinstance(old, int | float) or new == old:
        return "=" if new == old else ""
    sign, cls = ("+", "up") if new > old else ("−", "down")
    return f'<span class="{cls}">{sign}{fmt(abs(new - old))}</span>'


def _side_by_side(
    first: str,
    summaries: Sequence[dict[str, Any]],
    rows: Sequence[tuple[str, Sequence[Any]]],
    fmt: Callable[[Any], str] = _n,
) -> str:
    head = [first, *(f"{s['role']} ({s['path']})" for s in summaries)]
    if len(summaries) == 2:
        head.append("change")
    body = []
    for label, values in rows:
        cells = [escape(label), *(fmt(v) for v in values)]
        if len(summaries) == 2:
            cells.append(_delta(values[0], values[1], fmt))
        body.append(cells)
    return _table(head, body)


def _keys(summaries: Sequence[dict[str, Any]], get: Callable[[dict[str, Any]], dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for s in summaries for k in get(s)))


def _overview(report: dict[str, Any]) -> str:
    summaries = report["rulesets"]
    rows: list[tuple[str, Sequence[Any]]] = [
        ("events decided", [s["events"]["valid"] for s in summaries]),
        ("bad events (not decided)", [s["bad_events"]["total"] for s in summaries]),
        ("leads", [s["leads"] for s in summaries]),
        ("converted (opportunities)", [s["converted"] for s in summaries]),
        ("opportunity amount", [s["opportunities"]["amount"] for s in summaries]),
    ]
    rate = [("conversion rate", [s["conversion_rate"] for s in summaries])]
    statuses = _keys(summaries, lambda s: s["statuses"])
    status_rows = [(st, [s["statuses"].get(st, 0) for s in summaries]) for st in statuses]
    return (
        "<h2>Overview</h2>"
        + _side_by_side("", summaries, rows)
        + _side_by_side("", summaries, rate, _pct)
        + "<h2>Leads by final status</h2>"
        + _side_by_side("status", summaries, status_rows)
    )


def _opportunities(report: dict[str, Any]) -> str:
    summaries = report["rulesets"]
    out = ["<h2>Opportunities</h2>"]

    def stages(s: dict[str, Any]) -> dict[str, Any]:
        return {row["stage"]: row["count"] for row in s["opportunities"]["by_stage"]}

    stage_rows = [(stage, [stages(s).get(stage, 0) for s in summaries]) for stage in _keys(summaries, stages)]
    routes = [("queue", q) for q in _keys(summaries, lambda s: s["opportunities"]["by_queue"])]
    routes += [("owner", o) for o in _keys(summaries, lambda s: s["opportunities"]["by_owner"])]
    route_rows = [(f"{k} {v}", [s["opportunities"][f"by_{k}"].get(v, 0) for s in summaries]) for k, v in routes]
    rules = _keys(summaries, lambda s: s["opportunities"]["by_rule"])
    rule_rows = [(r, [s["opportunities"]["by_rule"].get(r, 0) for s in summaries]) for r in rules]
    out.append(_side_by_side("stage", summaries, stage_rows))
    out.append(_side_by_side("routed to", summaries, route_rows))
    out.append(_side_by_side("converted by rule", summaries, rule_rows))
    return "".join(out)


def _points(report: dict[str, Any]) -> str:
    summaries = report["rulesets"]
    stats = ["mean", "min", *(f"p{p}" for p in PERCENTILES), "max"]
    rows = [(stat, [s["points"][stat] for s in summaries]) for stat in stats]
    return (
        "<h2>Points per lead</h2>" + _img(points_chart(report), "points histogram") + _side_by_side("", summaries, rows)
    )


def _outcomes(report: dict[str, Any]) -> str:
    info, summaries = report["outcomes"], report["rulesets"]
    if info is None:
        return ""
    counts = [
        (label, [s["outcomes"][key] for s in summaries])
        for label, key in (
            ("leads with a known outcome", "leads"),
            ("converted, did convert (TP)", "tp"),
            ("converted, did not (FP)", "fp"),
            ("not converted, did (FN)", "fn"),
            ("not converted, did not (TN)", "tn"),
        )
    ]
    scores = [(key, [s["outcomes"][key] for s in summaries]) for key in ("precision", "recall")]
    note = (
        f"<p class=muted>{escape(info['path'])}: column <code>{escape(info['id_column'])}</code> and "
        f"<code>{escape(info['outcome_column'])}</code>; {info['leads']:,} leads, {info['converted']:,} converted; "
        f"{info['not_in_events']:,} not in the events (left out).</p>"
    )
    return (
        "<h2>“Qualified” against known outcomes</h2>"
        + note
        + _side_by_side("", summaries, counts)
        + _side_by_side("", summaries, scores, _pct)
    )


def _changes(report: dict[str, Any]) -> str:
    changed, rules = report["changed"], report["rule_changes"]
    if changed is None:
        return ""
    out = ["<h2>Leads whose outcome changed</h2>"]
    if rules is not None:
        parts = [
            f"{key}: {', '.join(f'<code>{escape(r)}</code>' for r in rules[key])}"
            for key in ("added", "removed", "changed")
            if rules[key]
        ]
        if rules["qualification_order_changed"]:
            parts.append("qualification order changed")
        out.append(f"<p>Rules, new vs old: {'; '.join(parts) or 'no rule differs'}.</p>")
    if not changed["total"]:
        out.append("<p>No lead's final status or converted flag changed.</p>")
        return "".join(out)
    out.append(
        _table(["old → new", "leads"], ([escape(r["transition"]), _n(r["leads"])] for r in changed["by_transition"]))
    )
    rows = changed["leads"][:_CHANGED_ROWS]
    if changed["total"] > len(rows):
        out.append(f"<p class=muted>The first {len(rows):,} of {changed['total']:,}; --json has them all.</p>")
    out.append(
        _table(
            [
                "lead",
                "old → new",
                "points old",
                "points new",
                "decided by (old)",
                "decided by (new)",
                "scoring rules that differ",
            ],
            (
                [
                    escape(r["lead_id"]),
                    escape(r["transition"]),
                    _n(r["old"]["points"]),
                    _n(r["new"]["points"]),
                    escape(r["old"]["decided_by"] or "–"),
                    escape(r["new"]["decided_by"] or "–"),
                    escape(" ".join(r["scoring_rules"]) or "–"),
                ]
                for r in rows
            ),
            numeric=(2, 3),
        )
    )
    return "".join(out)


def _bad_events(report: dict[str, Any]) -> str:
    summaries = report["rulesets"]
    reasons = _keys(summaries, lambda s: s["bad_events"]["by_reason"])
    if not reasons:
        return ""
    rows = [(r, [s["bad_events"]["by_reason"].get(r, 0) for s in summaries]) for r in reasons]
    examples = _table(
        ["where", "reason", "error"],
        ([escape(b["where"]), escape(b["reason"]), escape(b["error"])] for b in summaries[0]["bad_events"]["examples"]),
        numeric=(),
    )
    return (
        "<h2>Bad events (skipped, as the worker would dead-letter them)</h2>"
        + _side_by_side("reason", summaries, rows)
        + examples
    )


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one HTML document with no external reference."""
    source, summaries = report["source"], report["rulesets"]
    rulesets = "".join(
        f"<li><b>{escape(s['role'])}</b>: {escape(s['path'])} (ruleset {escape(s['name'])!s} "
        f"<code>{escape(s['version'])}</code>)</li>"
        for s in summaries
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>leadflow backtest: {escape(source['name'])}</title><style>{_STYLE}</style></head><body>"
        f"<h1>leadflow backtest</h1><p>{escape(source['name'])}: {source['records']:,} records. "
        f"Model <code>{escape(report['model']['version'])}</code>; decisions stamped {escape(report['decided_at'])}."
        f"</p><ul>{rulesets}</ul>"
        + "<h2>Conversion funnel</h2>"
        + _img(funnel_chart(report), "conversion funnel")
        + _overview(report)
        + _opportunities(report)
        + _points(report)
        + _outcomes(report)
        + _changes(report)
        + _bad_events(report)
        + "</body></html>"
    )


def write_html(report: dict[str, Any], path: Path) -> None:
    """Write the HTML report to ``path``."""
    try:
        path.write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        msg = f"cannot write the HTML report {str(path)!r}: {exc.strerror or exc}"
        raise BacktestError(msg, source=str(path)) from exc
