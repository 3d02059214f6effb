"""The report's charts as PNG bytes: the conversion funnel, the points histogram and the per-member load of
routing, rulesets side by side.

matplotlib is imported when a chart is drawn, and only its object API is used (no pyplot, no global state).
"""

from __future__ import annotations

from typing import Any

from worker.scoring.training import figure_png

__all__ = ["funnel_chart", "load_chart", "points_chart"]

_DPI = 110  # of the PNG figures

_COLOURS = {"new": "#2563eb", "old": "#9ca3af"}


def funnel_stages(summary: dict[str, Any]) -> list[tuple[str, int]]:
    """events → leads → leads per status → converted, for one ruleset."""
    return [
        ("events", summary["events"]["valid"]),
        ("leads", summary["leads"]),
        *((f"status {status}", n) for status, n in summary["statuses"].items()),
        ("converted", summary["converted"]),
    ]


def funnel_chart(report: dict[str, Any]) -> bytes:
    """Horizontal bars per funnel stage, one bar per ruleset, on a log scale (events outnumber leads)."""
    from matplotlib.figure import Figure

    summaries = report["rulesets"]
    labels = list(dict.fromkeys(label for s in summaries for label, _ in funnel_stages(s)))
    figure = Figure(figsize=(8, 0.45 * len(labels) * len(summaries) + 1.2))
    axes = figure.add_subplot()
    height = 0.8 / len(summaries)
    for i, summary in enumerate(summaries):
        values = dict(funnel_stages(summary))
        ys = [row + i * height for row in range(len(labels))]
        counts = [values.get(label, 0) for label in labels]
        bars = axes.barh(
            ys, [max(c, 0.8) for c in counts], height, label=summary["role"], color=_COLOURS.get(summary["role"])
        )
        axes.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3, fontsize=8)
    axes.set_yticks([row + height * (len(summaries) - 1) / 2 for row in range(len(labels))], labels)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("count (log scale)")
    axes.set_title("conversion funnel")
    axes.legend(loc="lower right")
    axes.margins(x=0.15)
    return figure_png(figure, _DPI)


def points_chart(report: dict[str, Any]) -> bytes:
    """Leads per points bin, the rulesets' bars side by side in each bin."""
    from matplotlib.figure import Figure

    summaries, bins = report["rulesets"], report["points_bins"]
    figure = Figure(figsize=(8, 3.6))
    axes = figure.add_subplot()
    if bins:
        step = bins[0][1] - bins[0][0]
        width = step * 0.8 / len(summaries)
        for i, summary in enumerate(summaries):
            xs = [lo + step * 0.1 + width * i for lo, _ in bins]
            axes.bar(
                xs,
                summary["points"]["histogram"],
                width,
                align="edge",
                label=summary["role"],
                color=_COLOURS.get(summary["role"]),
            )
        axes.legend()
    axes.set_xlabel("points (final, per lead)")
    axes.set_ylabel("leads")
    axes.set_title("points distribution")
    return figure_png(figure, _DPI)


def load_chart(report: dict[str, Any]) -> bytes:
    """Leads per pool member, one bar per ruleset for each member: the load a routing change moves."""
    from matplotlib.figure import Figure

    summaries = report["rulesets"]
    loads = [
        {
            f"{pool['pool']} / {m['member']}": m["leads"]
            for pool in (s.get("routing") or {"pools": []})["pools"]
            for m in pool["members"]
        }
        for s in summaries
    ]
    labels = list(dict.fromkeys(label for load in loads for label in load))
    figure = Figure(figsize=(8, 0.4 * len(labels) * len(summaries) + 1.2))
    axes = figure.add_subplot()
    height = 0.8 / len(summaries)
    for i, (summary, load) in enumerate(zip(summaries, loads, strict=True)):
        ys = [row + i * height for row in range(len(labels))]
        counts = [load.get(label, 0) for label in labels]
        bars = axes.barh(ys, counts, height, label=summary["role"], color=_COLOURS.get(summary["role"]))
        axes.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3, fontsize=8)
    axes.set_yticks([row + height * (len(summaries) - 1) / 2 for row in range(len(labels))], labels)
    axes.invert_yaxis()
    axes.set_xlabel("leads assigned")
    axes.set_title("leads per pool member")
    axes.legend(loc="lower right")
    axes.margins(x=0.15)
    return figure_png(figure, _DPI)
