"""An opportunity's current state, folded from its ``opportunity.created`` and the feedback that follows it.

The state is a plain dict (stored as JSON in the worker's ``pipeline-state`` table, key = opportunity id)::

    {"opportunity_id", "lead_id", "lead_source", "score", "matched_rules", "converted_by_rule",
     "lead_created_at": float | None, "converted_at": float,      # epoch seconds
     "stage_name", "probability", "forecast_category", "amount": float | None, "close_date": "YYYY-MM-DD",
     "owner_id", "outcome": "open" | "won" | "lost", "closed_at": float | None,
     "applied": [event_id, ...],   # the last RECENT feedback event ids applied (a repeat is ignored)
     "offset": int}                # the last record applied, on the pipeline topic (a redelivery is ignored)

Feedback is applied in the order it arrives (one partition per opportunity keeps that order).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from worker.exceptions import EventError
from worker.lead.events import OpportunityClosed, OpportunityFeedback, OpportunityUpdated
from worker.rules import StageDef

__all__ = [
    "FEEDBACK_TYPES",
    "RECENT",
    "State",
    "apply_feedback",
    "closed_stage",
    "loads",
    "parse_feedback",
    "state_from_created",
]

State = dict[str, Any]
FEEDBACK_TYPES = ("opportunity.updated", "opportunity.closed")
RECENT = 64
"""How many applied feedback event ids an opportunity remembers."""

_FEEDBACK: TypeAdapter[OpportunityUpdated | OpportunityClosed] = TypeAdapter(OpportunityFeedback)
_UTC = dt.UTC


def loads(value: bytes | None, what: str) -> Any:
    """A record's JSON; EventError for a tombstone or what is not JSON (orjson: bounded depth, no NaN)."""
    if value is None:
        msg = f"{what} has no value (a tombstone)"
        raise EventError(msg, reason="tombstone")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        msg = f"{what} is not JSON: {exc}"
        raise EventError(msg, reason="not_json") from None


def parse_feedback(value: bytes | None) -> OpportunityUpdated | OpportunityClosed:
    """An ``opportunity.updated`` or ``opportunity.closed`` event; EventError says what is wrong with it."""
    raw = loads(value, "a feedback record")
    if not isinstance(raw, dict):
        msg = f"a feedback record must be a JSON object, got {type(raw).__name__}"
        raise EventError(msg, reason="not_an_object")
    if raw.get("event_type") not in FEEDBACK_TYPES:
        shown = str(raw.get("event_type"))[:80]
        msg = f"feedback event_type {shown!r} is not known; expected one of {', '.join(FEEDBACK_TYPES)}"
        raise EventError(msg, reason="unknown_event_type")
    try:
        return _FEEDBACK.validate_json(value or b"", strict=True)  # loads refused None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'][1:])!r}: {error['msg']}"
            for error in exc.errors(include_url=False)[:5]
        )
        schema = f"schemas/{raw['event_type'].replace('.', '-')}.schema.json"
        msg = f"an {raw['event_type']!r} event does not match {schema}: {problems}"
        raise EventError(msg, reason="schema_violation") from None


def _epoch(text: str | None) -> float | None:
    return None if text is None else dt.datetime.fromisoformat(text).timestamp()


def state_from_created(opportunity: Mapping[str, Any]) -> State:
    """The state of a new opportunity, from the ``opportunity.created`` record the worker emitted."""
    amount = opportunity.get("amount")
    return {
        "opportunity_id": opportunity["opportunity_id"],
        "lead_id": opportunity.get("lead_id"),
        "lead_source": opportunity.get("lead_source"),
        "score": float(opportunity.get("score") or 0.0),
        "matched_rules": list(opportunity.get("matched_rules") or ()),
        "converted_by_rule": opportunity.get("converted_by_rule"),
        "lead_created_at": _epoch(opportunity.get("lead_created_at")),
        "converted_at": _epoch(opportunity["converted_at"]),
        "stage_name": opportunity["stage_name"],
        "probability": int(opportunity["probability"]),
        "forecast_category": opportunity["forecast_category"],
        "amount": None if amount is None else float(amount),
        "close_date": opportunity["close_date"],
        "owner_id": opportunity.get("owner_id"),
        "outcome": "open",
        "closed_at": None,
        "applied": [],
        "offset": -1,
    }


def closed_stage(stages: Mapping[str, StageDef], won: bool) -> StageDef:
    """The ruleset's first closed stage that is won (or lost): Closed Won / Closed Lost in the Salesforce table."""
    for stage in stages.values():
        if stage.closed and stage.won == won:
            return stage
    return (
        StageDef("Closed Won", 100, "Closed", closed=True, won=True)
        if won
        else StageDef("Closed Lost", 0, "Omitted", closed=True)
    )


def apply_feedback(state: State, event: OpportunityUpdated | OpportunityClosed, stages: Mapping[str, StageDef]) -> bool:
    """Apply a feedback event to ``state`` (mutated); False when its id was applied already (nothing changes).

    EventError (``schema_violation``) for a stage the ruleset does not define.
    """
    if event.event_id in state["applied"]:
        return False
    occurred = event.occurred_at.timestamp()
    if isinstance(event, OpportunityClosed):
        stage = closed_stage(stages, event.won)
        state.update(stage_name=stage.name, probability=stage.probability, forecast_category=stage.forecast_category)
        state["close_date"] = (event.close_date or event.occurred_at.astimezone(_UTC).date()).isoformat()
        if event.amount is not None:
            state["amount"] = event.amount
        _set_outcome(state, stage, occurred)
    else:
        if event.stage_name is not None:
            moved = stages.get(event.stage_name)
            if moved is None:
                known = ", ".join(repr(s) for s in stages)
                msg = f"stage {event.stage_name[:80]!r} is not one of the ruleset's stages ({known})"
                raise EventError(msg, reason="schema_violation")
            state.update(stage_name=moved.name, probability=moved.probability)
            state["forecast_category"] = moved.forecast_category
            _set_outcome(state, moved, occurred)
        if event.probability is not None:
            state["probability"] = event.probability
        if event.forecast_category is not None:
            state["forecast_category"] = event.forecast_category
        for name in ("amount", "owner_id"):
            value = getattr(event, name)
            if value is not None:
                state[name] = value
        if event.close_date is not None:
            state["close_date"] = event.close_date.isoformat()
    state["applied"] = [*state["applied"][-(RECENT - 1) :], event.event_id]
    return True


def _set_outcome(state: State, stage: StageDef, occurred: float) -> None:
    outcome = ("won" if stage.won else "lost") if stage.closed else "open"
    if outcome != state["outcome"]:
        state["outcome"] = outcome
        state["closed_at"] = occurred if stage.closed else None
