"""The forecast report as plain data: every figure the tables, the charts and ``--json`` show.

The pipeline's own figures come from :func:`worker.opportunities.summarize`; this adds the forecast rolled up as
Salesforce's forecasts do (Closed ⊂ Commit ⊂ Most Likely ⊂ Best Case ⊂ Pipeline, each including the ones before
it, Omitted in none; keyed by the API's names: Commit is ``Forecast``, Best Case ``BestCase``), by close month
too; the funnel from leads to won by lead source; the calibration of the live score on closed opportunities
(won = 1) with its expected calibration error; won and lost by converting rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from worker.opportunities import State, summarize
from worker.scoring.training import calibration_bins, expected_calibration_error
from worker.tools.forecast._fold import Folded, LeadCounts

__all__ = ["CATEGORIES", "LABELS", "ROLLUP", "build_forecast"]

CATEGORIES = ("Closed", "Forecast", "MostLikely", "BestCase", "Pipeline", "Omitted")
"""Salesforce's forecast categories as its API spells them (as the events and the ruleset's stages do)."""
ROLLUP = CATEGORIES[:-1]
"""Each forecast includes the categories before it: Commit = Closed + Commit, and so on; Omitted is in none."""
LABELS = {"Forecast": "Commit", "MostLikely": "Most Likely", "BestCase": "Best Case"}
"""How Salesforce shows a category (``Forecast`` is Commit); the others show as spelled."""


def _rollup(states: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Amount and count per forecast category, and the cumulative forecasts."""
    categories = {name: {"count": 0, "amount": 0.0} for name in CATEGORIES}
    for state in states:
        cell = categories.setdefault(state["forecast_category"], {"count": 0, "amount": 0.0})
        cell["count"] += 1
        cell["amount"] += state["amount"] or 0.0
    forecast, running = {}, 0.0
    for name in ROLLUP:
        running += categories[name]["amount"]
        forecast[name] = round(running, 2)
    return {
        "categories": {name: {"count": c["count"], "amount": round(c["amount"], 2)} for name, c in categories.items()},
        "forecast": forecast,
    }


def _forecast(states: Sequence[State]) -> dict[str, Any]:
    by_month: dict[str, list[State]] = {}
    for state in states:
        by_month.setdefault(str(state["close_date"])[:7], []).append(state)
    return {**_rollup(states), "by_close_month": {month: _rollup(by_month[month]) for month in sorted(by_month)}}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _funnel(summary: Mapping[str, Any], with_leads: bool) -> dict[str, Any]:
    """Leads → opportunities → won by lead source, most opportunities first, and ``all`` (from ``summarize``)."""
    rows = sorted(summary["by_lead_source"].items(), key=lambda kv: (-kv[1]["opportunities"], kv[0]))
    total = {"leads": sum(r["leads"] for _, r in rows) if with_leads else None}
    total |= {k: sum(r[k] for _, r in rows) for k in ("opportunities", "won", "lost")}
    out = {}
    for name, row in [*rows, ("all", total)]:
        leads = row.get("leads") if with_leads else None
        out[name] = {
            "leads": leads,
            "opportunities": row["opportunities"],
            "won": row["won"],
            "lost": row["lost"],
            "lead_to_opportunity": _rate(row["opportunities"], leads or 0),
            "opportunity_to_won": _rate(row["won"], row["opportunities"]),
            "win_rate_of_closed": _rate(row["won"], row["won"] + row["lost"]),
        }
    return out


def _leads(states: Sequence[State], leads: LeadCounts) -> list[tuple[str | None, float | None]]:
    """Every decided lead once as (source, score): a converted lead's score at conversion (its opportunity's band),
    another's the score of its last decision."""
    converted = {s["lead_id"]: float(s["score"]) for s in states}
    return [(leads.sources.get(lead), converted.get(lead, score)) for lead, score in leads.decided.items()]


def _calibration(states: Sequence[State]) -> dict[str, Any]:
    """The live score against the outcome of closed opportunities: 10 equal-width bins and the ECE."""
    closed = [s for s in states if s["outcome"] in ("won", "lost")]
    y = [int(s["outcome"] == "won") for s in closed]
    p = [float(s["score"]) for s in closed]
    bins = [{k: round(v, 4) if isinstance(v, float) else v for k, v in b.items()} for b in calibration_bins(y, p)]
    return {
        "closed": len(closed),
        "won": sum(y),
        "mean_score": round(sum(p) / len(p), 4) if p else None,
        "ece": round(expected_calibration_error(y, p), 4) if closed else None,
        "bins": bins,
    }


def _rules(states: Sequence[State]) -> list[dict[str, Any]]:
    """Won and lost by converting rule, best win rate (of closed) first; rules with nothing closed last."""
    rows: dict[str, dict[str, Any]] = {}
    for state in states:
        row = rows.setdefault(
            state["converted_by_rule"] or "none",
            {"opportunities": 0, "open": 0, "won": 0, "lost": 0, "won_amount": 0.0, "lost_amount": 0.0},
        )
        row["opportunities"] += 1
        row[state["outcome"]] += 1
        if state["outcome"] in ("won", "lost"):
            row[f"{state['outcome']}_amount"] += state["amount"] or 0.0
    out = [
        {
            "rule": rule,
            **row,
            "won_amount": round(row["won_amount"], 2),
            "lost_amount": round(row["lost_amount"], 2),
            "win_rate_of_closed": _rate(row["won"], row["won"] + row["lost"]),
        }
        for rule, row in rows.items()
    ]
    out.sort(key=lambda r: (r["win_rate_of_closed"] is None, -(r["win_rate_of_closed"] or 0), -r["won"], r["rule"]))
    return out


def build_forecast(
    folded: Folded, leads: LeadCounts | None, sources: Mapping[str, Any], stage_order: Sequence[str] = ()
) -> dict[str, Any]:
    """The whole report: where it was read from, the pipeline, the forecast, the funnel, calibration and rules.

    ``stage_order``: the ruleset's stages in their order (Prospecting ... Closed Lost), the order of the stage
    table; stages it does not name follow, by name.
    """
    states = folded.states
    summary = summarize(states, None if leads is None else _leads(states, leads))
    rank = {name: i for i, name in enumerate(stage_order)}
    summary["by_stage"] = dict(sorted(summary["by_stage"].items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))
    return {
        "sources": dict(sources),
        "pipeline": summary,
        "forecast": _forecast(states),
        "funnel": _funnel(summary, leads is not None),
        "calibration": _calibration(states),
        "rules": _rules(states),
        "feedback": {"replayed": folded.replayed, "accepted": folded.accepted, "dead_letters": folded.dead_letters},
    }
