"""The topics' records folded into what the report counts: opportunities' states, leads and their sources.

The worker folds one internal topic where each opportunity's conversion comes before its feedback; read from the
outside, the opportunities topic and the feedback topic are two streams with no order between them. So every
``opportunity.created`` / ``.reassigned`` is applied first (in its topic's order), then the feedback (in its
topic's order, partition by partition: one opportunity's feedback keyed by its id stays in order), with the same
pure fold as the worker (:func:`worker.opportunities.pipeline_batch`): a repeated feedback event counts once,
feedback for an opportunity never converted is counted as a dead letter, as the worker would. A tombstone on the
opportunities topic (its lead was erased, docs/PRIVACY.md) forgets the opportunity, as the worker's pipeline does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from worker.batch import Record, RecordLike
from worker.opportunities import State, pipeline_batch
from worker.routing.sla import erased_notice
from worker.rules import StageDef

__all__ = ["Folded", "LeadCounts", "count_leads", "fold_opportunities"]


@dataclass
class Folded:
    """Opportunities' states and what the fold set aside."""

    states: list[State]
    replayed: int = 0
    """Feedback already applied (a repeated event id, or a record sent twice): counted once."""
    accepted: int = 0
    """``opportunity.accepted`` records (routing's, not the pipeline's): skipped."""
    dead_letters: dict[str, int] = field(default_factory=dict)
    """By reason, as the worker would dead-letter them (``unknown_opportunity``, ``schema_violation``...)."""


def _opportunity_id(value: bytes | None) -> str | None:
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("opportunity_id"), str):
        return None
    return record["opportunity_id"] if record.get("event_type") != "opportunity.accepted" else "\0accepted"


def fold_opportunities(
    opportunities: Iterable[RecordLike], feedback: Iterable[RecordLike], stages: Mapping[str, StageDef]
) -> Folded:
    """Every opportunity's state from the opportunities records, then the feedback records."""
    ordered: list[Record] = []
    accepted = 0
    feedback_records = sorted(feedback, key=lambda r: r.partition)  # stable: each partition keeps its order
    for record in [*opportunities, *feedback_records]:
        if record.value is None and record.key is not None:  # an erased lead's opportunity: forgotten
            erased, notice = erased_notice(record.key.decode(errors="replace"))
            ordered.append(Record(erased, notice, record.topic, 0, len(ordered)))
            continue
        opportunity_id = _opportunity_id(record.value)
        if opportunity_id == "\0accepted":
            accepted += 1
            continue
        # keyed by the opportunity as on the worker's internal topic (the CRM may key feedback its own way)
        key = record.key if opportunity_id is None else opportunity_id.encode()
        ordered.append(Record(key, record.value, record.topic, 0, len(ordered)))
    batch = pipeline_batch(ordered, lambda _: None, stages)
    reasons = Counter(error.reason for _, error in batch.dead_letters)
    return Folded(
        states=[after for _, after in batch.changes if after is not None],
        replayed=batch.replayed,
        accepted=accepted,
        dead_letters=dict(sorted(reasons.items())),
    )


@dataclass
class LeadCounts:
    """The leads the worker decided on (with their last score) and each lead's source where known."""

    decided: dict[str, float | None] = field(default_factory=dict)
    """Each lead decided on, with the score of its last decision."""
    sources: dict[str, str] = field(default_factory=dict)


def count_leads(decisions: Iterable[RecordLike], leads: Iterable[RecordLike] = ()) -> LeadCounts:
    """Leads from the decisions (each decided lead once, with its last score) and their source from the leads
    topic's ``lead.upserted`` events (the last one that names a source)."""
    out = LeadCounts()
    for record in decisions:
        value = _object(record.value)
        lead_id = value.get("lead_id")
        if isinstance(lead_id, str) and value.get("event_type") == "lead.erased":  # forgotten: not counted
            out.decided.pop(lead_id, None)
        elif isinstance(lead_id, str):
            score = value.get("score")
            out.decided[lead_id] = float(score) if isinstance(score, int | float) else None
    for record in leads:
        value = _object(record.value)
        lead, lead_id = value.get("lead"), value.get("lead_id")
        if value.get("event_type") == "lead.upserted" and isinstance(lead, dict) and isinstance(lead_id, str):
            source = lead.get("lead_source")
            if isinstance(source, str) and source:
                out.sources[lead_id] = source
        elif value.get("event_type") == "lead.erased" and isinstance(lead_id, str):
            out.sources.pop(lead_id, None)
    return out


def _object(value: bytes | None) -> dict[str, Any]:
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}
