"""The report's tables as text cells, built once: the terminal and the HTML page show the very same cells."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.tools.forecast._report import CATEGORIES, LABELS, ROLLUP

__all__ = ["View", "count", "headline", "money", "rate", "views"]


@dataclass(frozen=True)
class View:
    """A table: its name (for charts and tests), title, column heads and rows of formatted cells."""

    name: str
    title: str
    head: tuple[str, ...]
    rows: list[list[str]]


def count(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def rate(r: float | None) -> str:
    return "–" if r is None else f"{r:.1%}"


def _score(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _by_stage(report: dict[str, Any]) -> View:
    rows = [
        [stage, count(s["count"]), money(s["amount"]), money(s["expected_revenue"])]
        for stage, s in report["pipeline"]["by_stage"].items()
    ]
    return View("stages", "pipeline by stage", ("stage", "opportunities", "amount", "expected revenue"), rows)


def _by_category(report: dict[str, Any]) -> View:
    forecast = report["forecast"]
    categories = forecast["categories"]
    rows = [
        [
            LABELS.get(name, name),
            count(categories[name]["count"]),
            money(categories[name]["amount"]),
            money(forecast["forecast"].get(name)),
        ]
        for name in CATEGORIES
    ]
    head = ("forecast category", "opportunities", "amount", "forecast (rolled up)")
    return View("categories", "forecast by category, rolled up", head, rows)


def _by_month(report: dict[str, Any]) -> View:
    rows = [
        [month, *(money(m["forecast"][name]) for name in ROLLUP), money(m["categories"]["Omitted"]["amount"])]
        for month, m in report["forecast"]["by_close_month"].items()
    ]
    return View(
        "months",
        "forecast by close month (rolled up)",
        ("close month", *(LABELS.get(name, name) for name in ROLLUP), "Omitted"),
        rows,
    )


def _funnel(report: dict[str, Any]) -> View:
    rows = [
        [
            source,
            count(f["leads"]),
            count(f["opportunities"]),
            count(f["won"]),
            count(f["lost"]),
            rate(f["lead_to_opportunity"]),
            rate(f["opportunity_to_won"]),
            rate(f["win_rate_of_closed"]),
        ]
        for source, f in report["funnel"].items()
    ]
    head = ("lead source", "leads", "opportunities", "won", "lost", "lead → opp", "opp → won", "won of closed")
    return View("funnel", "funnel by lead source: leads → opportunities → won", head, rows)


def _calibration(report: dict[str, Any]) -> View:
    """Per score band: leads → opportunities (when the leads are known), then the closed ones against the score."""
    calibration, bands = report["calibration"], report["pipeline"]["by_score_band"]
    bins = {f"{b['lo']:.1f}-{b['hi']:.1f}": b for b in calibration["bins"]}
    rows = []
    for band in sorted(set(bands) | set(bins)):
        row, closed = bands.get(band, {}), bins.get(band)
        rows.append(
            [
                band,
                count(row.get("leads")),
                count(row.get("opportunities", 0)),
                rate(row.get("lead_to_opportunity_rate")),
                count(closed["n"] if closed else 0),
                _score(closed["predicted"] if closed else None),
                rate(closed["observed"] if closed else None),
            ]
        )
    ece = "–" if calibration["ece"] is None else f"{calibration['ece']:.3f}"
    title = f"by score band: leads → opportunities, and won against the score (ECE {ece})"
    head = ("score band", "leads", "opportunities", "lead → opp", "closed", "mean score", "won of closed")
    return View("calibration", title, head, rows)


def _rules(report: dict[str, Any]) -> View:
    rows = [
        [
            r["rule"],
            count(r["opportunities"]),
            count(r["open"]),
            count(r["won"]),
            count(r["lost"]),
            rate(r["win_rate_of_closed"]),
            money(r["won_amount"]),
            money(r["lost_amount"]),
        ]
        for r in report["rules"]
    ]
    head = ("converting rule", "opportunities", "open", "won", "lost", "won of closed", "won amount", "lost amount")
    return View("rules", "converting rules, best win rate first", head, rows)


_VIEWS: tuple[Callable[[dict[str, Any]], View], ...] = (
    _by_stage,
    _by_category,
    _by_month,
    _funnel,
    _calibration,
    _rules,
)


def views(report: dict[str, Any]) -> list[View]:
    """Every table of the report, in the order shown."""
    return [make(report) for make in _VIEWS]


def headline(report: dict[str, Any]) -> list[str]:
    """The lines above the tables: the totals, won and lost, the days, and what the fold set aside."""
    pipeline, feedback = report["pipeline"], report["feedback"]
    days = pipeline["days"]

    def mean(name: str) -> str:
        d = days[name]
        return "–" if d["mean"] is None else f"{d['mean']:.1f} (median {d['median']:.1f}, {d['count']:,})"

    dead = ", ".join(f"{reason} {n:,}" for reason, n in feedback["dead_letters"].items()) or "none"
    return [
        f"{pipeline['opportunities']:,} opportunities; won {pipeline['won']['count']:,} "
        f"({money(pipeline['won']['amount'])}), lost {pipeline['lost']['count']:,} "
        f"({money(pipeline['lost']['amount'])})",
        f"days from lead to conversion: {mean('lead_to_conversion')}; "
        f"from conversion to close: {mean('conversion_to_close')}",
        f"feedback: {feedback['replayed']:,} repeated (counted once), {feedback['accepted']:,} acceptances skipped, "
        f"set aside as the worker would dead-letter them: {dead}",
    ]
