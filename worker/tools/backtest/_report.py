"""The backtest report: every number of the replay as plain JSON-able data, which the terminal and HTML render.

Layout (``format`` 1): ``source``, ``model``, ``decided_at``, ``rulesets`` (one entry per ruleset, the new one
first: events, bad events, leads per status, conversions, opportunities per stage, queue and owner, points
percentiles and histogram counts, precision and recall against known outcomes, and ``routing``: None without a
``routing:`` section, else the leads assigned per pool and member, skips by reason, overflows and direct routes;
see :func:`routing_summary`), ``points_bins`` (the histogram edges both rulesets share), ``rule_changes``,
``changed`` (the leads whose outcome differs, by transition) and
``outcomes``; the last three are None when they do not apply.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from worker.tools.backtest._outcomes import Outcomes, confusion
from worker.tools.backtest._replay import DECIDED_AT, LeadResult, Run
from worker.tools.backtest._rulediff import RuleChanges

__all__ = ["PERCENTILES", "build_report", "percentile", "routing_summary"]

REPORT_FORMAT = 1
PERCENTILES = (10, 25, 50, 75, 90, 99)
_TARGET_BINS = 12


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of already sorted values, interpolated between neighbours."""
    if not sorted_values:
        return math.nan
    rank = (len(sorted_values) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def _bins(values: Sequence[float]) -> list[tuple[float, float]]:
    """About a dozen bins of a round width covering every value."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    raw = max(hi - lo, 1.0) / _TARGET_BINS
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(lo / step) * step
    count = math.floor((hi - start) / step) + 1
    return [(start + i * step, start + (i + 1) * step) for i in range(count)]


def _histogram(values: Sequence[float], bins: Sequence[tuple[float, float]]) -> list[int]:
    counts = [0] * len(bins)
    if not bins:
        return counts
    start, step = bins[0][0], bins[0][1] - bins[0][0]
    for value in values:
        counts[min(len(bins) - 1, max(0, math.floor((value - start) / step)))] += 1
    return counts


def _summary(
    role: str, path: str, run: Run, bins: Sequence[tuple[float, float]], outcomes: Outcomes | None
) -> dict[str, Any]:
    ruleset = run.engine.ruleset
    leads = run.leads.values()
    statuses = dict.fromkeys(ruleset.statuses, 0)
    statuses.update(Counter(lead.status for lead in leads))
    converted = [lead for lead in leads if lead.converted]
    by_stage: dict[str, list[float]] = {}
    for lead in converted:
        by_stage.setdefault(lead.stage or "", []).append(lead.amount or 0.0)
    points = sorted(lead.points for lead in leads)
    summary: dict[str, Any] = {
        "role": role,
        "path": path,
        "name": ruleset.name,
        "version": ruleset.version,
        "events": {
            "valid": run.valid_events,
            "by_type": dict(sorted(run.events_by_type.items())),
            "duplicates": run.duplicates,
        },
        "bad_events": {
            "total": sum(run.bad_by_reason.values()),
            "by_reason": dict(run.bad_by_reason.most_common()),
            "examples": [asdict(bad) for bad in run.bad_examples],
        },
        "leads": len(run.leads),
        "statuses": statuses,
        "converted": len(converted),
        "conversion_rate": len(converted) / len(run.leads) if run.leads else None,
        "opportunities": {
            "count": len(converted),
            "amount": round(sum(lead.amount or 0.0 for lead in converted), 2),
            "by_stage": [
                {"stage": stage, "count": len(amounts), "amount": round(sum(amounts), 2)}
                for stage, amounts in sorted(by_stage.items(), key=lambda kv: (-len(kv[1]), kv[0]))
            ],
            "by_queue": dict(Counter(lead.queue for lead in converted if lead.queue is not None).most_common()),
            "by_owner": dict(Counter(lead.owner_id for lead in converted if lead.owner_id is not None).most_common()),
            "by_rule": dict(Counter(lead.converted_by for lead in converted).most_common()),
        },
        "points": {
            "mean": round(sum(points) / len(points), 4) if points else None,
            "min": points[0] if points else None,
            **{f"p{p}": round(percentile(points, p), 4) if points else None for p in PERCENTILES},
            "max": points[-1] if points else None,
            "histogram": _histogram(points, bins),
        },
        "outcomes": None,
        "routing": routing_summary(run),
    }
    if outcomes is not None:
        matrix = confusion({k: v.converted for k, v in run.leads.items()}, outcomes.converted)
        summary["outcomes"] = {
            "leads": matrix.tp + matrix.fp + matrix.fn + matrix.tn,
            "tp": matrix.tp,
            "fp": matrix.fp,
            "fn": matrix.fn,
            "tn": matrix.tn,
            "precision": matrix.precision,
            "recall": matrix.recall,
        }
    return summary


def routing_summary(run: Run) -> dict[str, Any] | None:
    """Per-member load of a replay: None when the ruleset has no ``routing:`` section, else::

        {"assigned": 40, "overflows": 2, "direct": {"queue:DACH": 5}, "skips": {"out_of_office": 7},
         "pools": [{"pool": "ae", "assigned": 40, "overflows": 2, "overflow_to": {"queue:AE-Overflow": 2},
                    "skips": {"out_of_office": 7},
                    "members": [{"member": "ann", "weight": 200, "leads": 19, "share": 0.5}, ...]}]}

    ``share`` is the member's part of the leads the pool's members got (overflows left out); every member of the
    ruleset's pools is listed, in pool order, with 0 when it got nothing.
    """
    routing = run.engine.ruleset.routing
    if routing is None:
        return None
    tally = run.routing
    pools: list[dict[str, Any]] = []
    for name, pool in routing.pools.items():
        ids = [m.id for m in pool.members]
        got = {member: n for (p, member), n in tally.assignments.items() if p == name}
        to_members = sum(got.get(member, 0) for member in ids)
        pools.append(
            {
                "pool": name,
                "assigned": sum(got.values()),
                "overflows": tally.overflows[name],
                "overflow_to": {k: n for k, n in sorted(got.items()) if k not in ids},
                "skips": dict(sorted(((r, n) for (p, r), n in tally.skips.items() if p == name), key=_most)),
                "members": [
                    {
                        "member": m.id,
                        "weight": m.weight,
                        "leads": got.get(m.id, 0),
                        "share": round(got.get(m.id, 0) / to_members, 4) if to_members else None,
                    }
                    for m in pool.members
                ],
            }
        )
    skips: Counter[str] = Counter()
    for (_, reason), n in tally.skips.items():
        skips[reason] += n
    return {
        "assigned": sum(p["assigned"] for p in pools),
        "overflows": sum(tally.overflows.values()),
        "direct": dict(sorted(tally.direct.items(), key=_most)),
        "skips": dict(sorted(skips.items(), key=_most)),
        "pools": pools,
    }


def _most(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _transition(old: LeadResult, new: LeadResult) -> str:
    if old.status != new.status:
        return f"{old.status} → {new.status}"
    yes_no = {True: "yes", False: "no"}
    return f"{old.status}: converted {yes_no[old.converted]} → {yes_no[new.converted]}"


def _side(lead: LeadResult) -> dict[str, Any]:
    return {
        "status": lead.status,
        "converted": lead.converted,
        "points": lead.points,
        "score": lead.score,
        "decided_by": lead.decided_by,
    }


def _changed(new: Run, old: Run, changes: RuleChanges | None) -> dict[str, Any]:
    redefined = set(changes.changed) if changes is not None else set()
    rows: list[dict[str, Any]] = []
    for lead_id, after in new.leads.items():
        before = old.leads.get(lead_id)
        if before is None or (before.status, before.converted) == (after.status, after.converted):
            continue
        now, then = set(after.scoring_rules), set(before.scoring_rules)
        differ = sorted(
            [f"+{r}" for r in now - then] + [f"-{r}" for r in then - now] + [f"~{r}" for r in (now & then) & redefined],
            key=lambda s: (s[1:], s[0]),
        )
        rows.append(
            {
                "lead_id": lead_id,
                "transition": _transition(before, after),
                "old": _side(before),
                "new": _side(after),
                "points_delta": round(after.points - before.points, 4),
                "scoring_rules": differ,
            }
        )
    counts = Counter(row["transition"] for row in rows)
    # the biggest group of changes first; inside one, the leads whose points moved most
    rows.sort(key=lambda r: (-counts[r["transition"]], r["transition"], -abs(r["points_delta"]), r["lead_id"]))
    return {
        "total": len(rows),
        "by_transition": [
            {"transition": t, "leads": n} for t, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "leads": rows,
    }


def build_report(
    *,
    source: Mapping[str, Any],
    model: Mapping[str, Any],
    runs: Mapping[str, Run],
    paths: Mapping[str, str],
    rule_changes: RuleChanges | None = None,
    outcomes: Outcomes | None = None,
) -> dict[str, Any]:
    """Every number of a backtest; ``runs`` and ``paths`` are keyed by role (``new``, then ``old`` if any)."""
    all_points = [lead.points for run in runs.values() for lead in run.leads.values()]
    bins = _bins(all_points)
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "source": dict(source),
        "model": dict(model),
        "decided_at": dt.datetime.fromtimestamp(DECIDED_AT, dt.UTC).isoformat(),
        "rulesets": [_summary(role, paths[role], run, bins, outcomes) for role, run in runs.items()],
        "points_bins": [list(b) for b in bins],
        "rule_changes": None,
        "changed": None,
        "outcomes": None,
    }
    if "old" in runs:
        report["rule_changes"] = asdict(rule_changes) if rule_changes is not None else None
        report["changed"] = _changed(runs["new"], runs["old"], rule_changes)
    if outcomes is not None:
        seen = set(runs["new"].leads)
        report["outcomes"] = {
            "path": outcomes.path,
            "id_column": outcomes.id_column,
            "outcome_column": outcomes.outcome_column,
            "leads": len(outcomes.converted),
            "converted": sum(outcomes.converted.values()),
            "blank": outcomes.blank,
            "not_in_events": sum(1 for lead_id in outcomes.converted if lead_id not in seen),
        }
    return report
