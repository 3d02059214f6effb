"""Lead events for unit tests, built as the worker would parse them."""

from __future__ import annotations

import datetime as dt

from worker.lead.events import Activity, LeadActivity, LeadFields, LeadUpserted

__all__ = ["T0", "activity", "upsert", "v1_state"]

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def upsert(event_id: str, when: dt.datetime | str = T0, lead_id: str = "L1", **fields: object) -> LeadUpserted:
    """A ``lead.upserted`` event setting ``fields`` (an explicit None clears a field)."""
    return LeadUpserted.model_validate(
        {
            "event_id": event_id,
            "event_type": "lead.upserted",
            "occurred_at": when,
            "lead_id": lead_id,
            "lead": LeadFields.model_validate(fields),
        }
    )


def activity(
    event_id: str, kind: str, when: dt.datetime | str = T0, count: int = 1, lead_id: str = "L1"
) -> LeadActivity:
    """A ``lead.activity`` event of type ``kind``."""
    return LeadActivity(
        event_id=event_id,
        event_type="lead.activity",
        occurred_at=when,  # type: ignore[arg-type]  # pydantic parses RFC 3339 strings too
        lead_id=lead_id,
        activity=Activity(type=kind, count=count),
    )


def v1_state(lead_id: str = "L1", **fields: object) -> dict[str, object]:
    """A lead state as leadflow stored it before layout version 2 (nested maps); ``fields`` replace its parts."""
    state: dict[str, object] = {
        "v": 1,
        "lead_id": lead_id,
        "profile": {},
        "custom": {},
        "activity": {},
        "history": {},
        "last_activity_at": None,
        "status": None,
        "points": 0.0,
        "score": None,
        "converted": False,
        "opportunity_id": None,
        "converted_at": None,
        "recent": "",
        "events": 0,
        "first_seen_at": 1_700_000_000.0,
        "updated_at": 1_700_000_000.0,
    }
    state.update(fields)
    return state
