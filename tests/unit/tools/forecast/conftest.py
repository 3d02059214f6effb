"""A hand-built history: five opportunities, their feedback, the decisions and the leads behind them.

A (Web, 0.80, hot, 10,000): to Negotiation/Review as Commit (API: Forecast), amount 20,000, open (closes 2026-12).
B (Web, 0.75, hot, 10,000): closed won at 15,000 on 2026-11-20; its closing is sent twice.
C (Partner, 0.30, warm, 5,000): closed lost on 2026-11-16.
D (Partner, 0.20, warm, 8,000): moved to Proposal/Price Quote as Best Case (BestCase), closing 2027-01-15.
E (Web, 0.55, hot, 4,000): untouched, Needs Analysis, Pipeline, closing 2026-12-20.
Plus an acceptance (skipped) and an update for opportunity X, never converted (set aside as a dead letter).
Leads: L-A..L-E converted (their decisions' scores differ from the opportunities': the score at conversion counts),
L-F (Web, 0.35) and L-G (no source, 0.05) not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from worker.batch import Record


def created(
    opportunity_id: str, source: str | None, score: float, rule: str, amount: float, close: str
) -> dict[str, Any]:
    return {
        "event_type": "opportunity.created",
        "opportunity_id": opportunity_id,
        "lead_id": f"L-{opportunity_id}",
        "stage_name": "Needs Analysis",
        "probability": 20,
        "forecast_category": "Pipeline",
        "amount": amount,
        "close_date": close,
        "lead_source": source,
        "score": score,
        "matched_rules": [rule],
        "converted_by_rule": rule,
        "converted_at": "2026-11-06T00:00:00+00:00",
        "lead_created_at": "2026-11-01T00:00:00+00:00",
        "owner_id": None,
    }


def updated(opportunity_id: str, event_id: str, **fields: Any) -> dict[str, Any]:
    event = {"event_type": "opportunity.updated", "opportunity_id": opportunity_id, "event_id": event_id}
    return event | {"occurred_at": "2026-11-10T00:00:00+00:00"} | fields


def closed(opportunity_id: str, event_id: str, won: bool, **fields: Any) -> dict[str, Any]:
    event = {"event_type": "opportunity.closed", "opportunity_id": opportunity_id, "event_id": event_id}
    return event | {"occurred_at": "2026-11-16T00:00:00+00:00", "won": won} | fields


OPPORTUNITIES = [
    created("A", "Web", 0.80, "hot", 10_000, "2026-12-06"),
    created("B", "Web", 0.75, "hot", 10_000, "2026-12-06"),
    created("C", "Partner", 0.30, "warm", 5_000, "2026-12-06"),
    created("D", "Partner", 0.20, "warm", 8_000, "2026-12-06"),
    created("E", "Web", 0.55, "hot", 4_000, "2026-12-20"),
]
FEEDBACK = [
    {"event_type": "opportunity.accepted", "opportunity_id": "A", "accepted_by": "005-ANA"},
    updated("A", "a1", stage_name="Negotiation/Review", forecast_category="Forecast", amount=20_000),
    closed("B", "b1", True, amount=15_000, close_date="2026-11-20"),
    closed("C", "c1", False),
    updated("D", "d1", stage_name="Proposal/Price Quote", forecast_category="BestCase", close_date="2027-01-15"),
    closed("B", "b1", True, amount=15_000, close_date="2026-11-20"),  # the CRM sent it again
    updated("X", "x1", stage_name="Closed Won"),  # never converted by leadflow
]
_SCORES = {"A": 0.41, "B": 0.42, "C": 0.43, "D": 0.44, "E": 0.45, "F": 0.35, "G": 0.05}
DECISIONS = [
    {"lead_id": f"L-{lead}", "score": score, "action": "converted" if lead in "ABCDE" else "none"}
    for lead, score in _SCORES.items()
]
LEADS = [
    {"event_type": "lead.upserted", "lead_id": f"L-{lead}", "lead": {"lead_source": source}}
    for lead, source in (("A", "Web"), ("B", "Web"), ("C", "Partner"), ("D", "Partner"), ("E", "Web"), ("F", "Web"))
] + [{"event_type": "lead.upserted", "lead_id": "L-G", "lead": {"company": "Nowhere"}}]


def records(values: list[dict[str, Any]], topic: str = "t") -> list[Record]:
    return [Record(None, orjson.dumps(v), topic, 0, i) for i, v in enumerate(values)]


def jsonl(values: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(v) + b"\n" for v in values)


def write_files(directory: Path) -> list[str]:
    """The history as JSON-lines files in ``directory``; returns the arguments that name them."""
    args = []
    for name, values in (
        ("opportunities", OPPORTUNITIES),
        ("feedback", FEEDBACK),
        ("decisions", DECISIONS),
        ("leads", LEADS),
    ):
        (directory / f"{name}.jsonl").write_bytes(jsonl(values))
        args += [f"--{name}", str(directory / f"{name}.jsonl")]
    return args
