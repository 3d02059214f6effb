"""The forecast report's charts as PNG bytes: the pipeline by stage, the forecast by month, the funnel by source,
the calibration curve and the converting rules' wins and losses.

matplotlib is imported when a chart is drawn, and only its object API is used (no pyplot, no global state).
"""

from __future__ import annotations

from typing import Any

from worker.scoring.training import figure_png
from worker.tools.forecast._report import LABELS, ROLLUP

__all__ = ["CHARTS"]

_DPI = 110
_BLUE, _GREY, _GREEN, _RED = "#2563eb", "#9ca3af", "#15803d", "#b91c1c"
_ROLLUP_COLOURS = ("#15803d", "#1d4ed8", "#3b82f6", "#93c5fd", "#e2e8f0")


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    return figure, figure.add_subplot()


def _thousands(axis: Any) -> None:
    """Amounts as 1,250,000 rather than 1.25 with a 1e6 offset."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))


def stages_chart(report: dict[str, Any]) -> bytes:
    """Amount and expected revenue per stage, horizontal bars."""
    stages = report["pipeline"]["by_stage"]
    figure, axes = _figure(8, 0.5 * max(len(stages), 1) + 1.4)
    ys = range(len(stages))
    axes.barh([y - 0.2 for y in ys], [s["amount"] for s in stages.values()], 0.4, label="amount", color=_GREY)
    axes.barh(
        [y + 0.2 for y in ys],
        [s["expected_revenue"] for s in stages.values()],
        0.4,
        label="expected revenue",
        color=_BLUE,
    )
    axes.set_yticks(list(ys), list(stages))
    axes.invert_yaxis()
    axes.set_xlabel("amount")
    _thousands(axes.xaxis)
    axes.set_title("pipeline by stage")
    axes.legend(loc="lower right")
    return figure_png(figure, _DPI)


def months_chart(report: dict[str, Any]) -> bytes:
    """Per close month, the rolled-up forecasts as overlapping bars: Pipeline behind, Closed in front."""
    months = report["forecast"]["by_close_month"]
    figure, axes = _figure(8, 3.8)
    xs = range(len(months))
    for name, colour in reversed(list(zip(ROLLUP, _ROLLUP_COLOURS, strict=True))):
        axes.bar(
            list(xs), [m["forecast"][name] for m in months.values()], 0.7, label=LABELS.get(name, name), color=colour
        )
    axes.set_xticks(list(xs), list(months), rotation=45, ha="right")
    axes.set_ylabel("amount (rolled up)")
    _thousands(axes.yaxis)
    axes.set_title(
        "forecast by close month, rolled up: Closed ⊂ Commit ⊂ Most Likely ⊂ Best Case ⊂ Pipeline", fontsize=10
    )
    axes.legend()
    return figure_png(figure, _DPI)


def funnel_chart(report: dict[str, Any]) -> bytes:
    """Leads, opportunities and won per lead source, on a log scale (leads outnumber wins)."""
    funnel = {k: v for k, v in report["funnel"].items() if k != "all"}
    figure, axes = _figure(8, 0.6 * max(len(funnel), 1) + 1.4)
    height = 0.27
    for i, (what, colour) in enumerate((("leads", _GREY), ("opportunities", _BLUE), ("won", _GREEN))):
        values = [max(row[what] or 0, 0.8) for row in funnel.values()]
        axes.barh([y + (i - 1) * height for y in range(len(funnel))], values, height, label=what, color=colour)
    axes.set_yticks(list(range(len(funnel))), list(funnel))
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("count (log scale)")
    axes.set_title("funnel by lead source")
    axes.legend(loc="lower right")
    return figure_png(figure, _DPI)


def calibration_chart(report: dict[str, Any]) -> bytes:
    """Share won against the mean score per score band (the diagonal: a score that means what it says)."""
    calibration = report["calibration"]
    figure, axes = _figure(5.5, 5)
    axes.plot([0, 1], [0, 1], linestyle="--", color=_GREY, label="perfectly calibrated")
    bins = calibration["bins"]
    axes.plot(
        [b["predicted"] for b in bins], [b["observed"] for b in bins], marker="o", color=_BLUE, label="live score"
    )
    for b in bins:
        axes.annotate(
            f"{b['n']:,}", (b["predicted"], b["observed"]), textcoords="offset points", xytext=(4, 4), fontsize=8
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("mean score in the band")
    axes.set_ylabel("share won (closed opportunities)")
    ece = "–" if calibration["ece"] is None else f"{calibration['ece']:.3f}"
    axes.set_title(f"calibration on {calibration['closed']:,} closed opportunities (ECE {ece})")
    axes.legend(loc="upper left")
    return figure_png(figure, _DPI)


def rules_chart(report: dict[str, Any]) -> bytes:
    """Won and lost per converting rule, best win rate on top."""
    rules = report["rules"]
    figure, axes = _figure(8, 0.45 * max(len(rules), 1) + 1.4)
    ys = list(range(len(rules)))
    won = [r["won"] for r in rules]
    axes.barh(ys, won, 0.6, label="won", color=_GREEN)
    axes.barh(ys, [r["lost"] for r in rules], 0.6, left=won, label="lost", color=_RED)
    axes.set_yticks(ys, [r["rule"] for r in rules])
    axes.invert_yaxis()
    axes.set_xlabel("closed opportunities")
    axes.set_title("converting rules: won and lost")
    axes.legend(loc="lower right")
    return figure_png(figure, _DPI)


CHARTS = {
    "stages": stages_chart,
    "months": months_chart,
    "funnel": funnel_chart,
    "calibration": calibration_chart,
    "rules": rules_chart,
}
"""The chart drawn after the table of the same name."""
