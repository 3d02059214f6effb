"""The pipeline: a batch of the pipeline topic folded into opportunities' states, and the figures added up.

:func:`pipeline_batch` folds records (``opportunity.created`` / ``.reassigned`` as the worker emits them, and the
``opportunity.updated`` / ``.closed`` feedback forwarded to the same partition) into each opportunity's state.
:class:`Pipeline` keeps the sums (count, amount, expected revenue by stage, forecast category and close month;
opportunities by lead source, score band and outcome) and changes them by the difference one state makes, so
that the worker's gauges never need a scan of the table; :func:`summarize` computes every figure from states.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from worker.exceptions import EventError
from worker.opportunities._state import (
    State,
    apply_feedback,
    loads,
    parse_feedback,
    state_from_created,
)
from worker.rules import StageDef

__all__ = [
    "CREATED_TYPES",
    "OUTCOMES",
    "Cell",
    "Closing",
    "Pipeline",
    "PipelineBatch",
    "PipelineRecord",
    "SourceLabels",
    "days_to_close",
    "days_to_conversion",
    "expected_revenue",
    "pipeline_batch",
    "score_band",
    "summarize",
]

CREATED_TYPES = ("opportunity.created", "opportunity.reassigned")
OUTCOMES = ("open", "won", "lost")
_DAY = 86_400.0
_CREATED_FIELDS = ("opportunity_id", "stage_name", "probability", "forecast_category", "close_date", "converted_at")


class PipelineRecord(Protocol):
    """What the fold reads of a record of the pipeline topic (Faust's messages have these attributes)."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Closing:
    """An opportunity that closed in a batch: its outcome, amount and seconds from conversion to close."""

    outcome: str
    amount: float
    seconds_to_close: float | None


@dataclass(slots=True)
class PipelineBatch:
    """What a batch changed: the new states (JSON, by opportunity id), each with the state it replaces."""

    states: dict[str, bytes | None] = field(default_factory=dict)
    """None: the state is deleted (its lead was erased; a tombstone in the changelog)."""
    changes: list[tuple[State | None, State | None]] = field(default_factory=list)
    created: list[State] = field(default_factory=list)
    closings: list[Closing] = field(default_factory=list)
    replayed: int = 0
    """Records already applied (a redelivery, or a feedback event id seen before): counted once."""
    dead_letters: list[tuple[Any, EventError]] = field(default_factory=list)


def _created(value: bytes | None) -> dict[str, Any] | None:
    """The record as an ``opportunity.created`` / ``.reassigned`` or an ``erased`` notice, or None when it is
    feedback."""
    record = loads(value, "a pipeline record")
    if isinstance(record, dict) and record.get("kind") == "erased":
        if not isinstance(record.get("opportunity_id"), str) or not record["opportunity_id"]:
            msg = "an 'erased' notice needs 'opportunity_id' as a non-empty text (worker.routing.sla.erased_notice)"
            raise EventError(msg, reason="schema_violation")
        return record
    if not isinstance(record, dict) or record.get("event_type") not in CREATED_TYPES:
        return None
    missing = [name for name in _CREATED_FIELDS if record.get(name) is None]
    if missing:
        msg = f"an {record['event_type']!r} record lacks {', '.join(missing)} (schemas/opportunity.schema.json)"
        raise EventError(msg, reason="schema_violation")
    return record


def pipeline_batch(
    records: Sequence[PipelineRecord], load: Callable[[str], bytes | None], stages: Mapping[str, StageDef]
) -> PipelineBatch:
    """Fold records, in order, into their opportunities' states (``load``: the stored state, JSON, or None).

    A record at or before the last one applied to its opportunity (a redelivery), or feedback whose event id was
    applied already, changes nothing and is counted in ``replayed``. An ``erased`` notice (its lead was erased,
    docs/PRIVACY.md) deletes the state: ``states`` maps it to None; a redelivered one leaves the state that the
    records after it made. Feedback for an opportunity the worker does not know is a dead letter
    (``unknown_opportunity``), as is a record that is not an opportunity or feedback.
    """
    out = PipelineBatch()
    live: dict[str, State] = {}
    erased: set[str] = set()  # deleted in this batch: no state, whatever the store still holds
    before: dict[str, State | None] = {}
    for record in records:
        try:
            created = _created(record.value)
            event = parse_feedback(record.value) if created is None else None
            opportunity_id: str = created["opportunity_id"] if created is not None else event.opportunity_id  # type: ignore[union-attr]  # one of the two is set
            if record.key != opportunity_id.encode():
                msg = f"record key {str(record.key)[:80]} is not the opportunity id {opportunity_id[:80]!r}"
                raise EventError(msg, reason="key_mismatch")
            if opportunity_id not in live and opportunity_id not in before:
                stored = load(opportunity_id)
                before[opportunity_id] = None if stored is None else _decode(stored)
            state = live.get(opportunity_id)
            if state is None and before[opportunity_id] is not None and opportunity_id not in erased:
                state = orjson.loads(orjson.dumps(before[opportunity_id]))
        except EventError as exc:
            out.dead_letters.append((record, exc))
            continue
        except Exception as exc:  # a stored state that does not decode: this record waits in the dead letters
            msg = f"pipeline record: {type(exc).__name__}: {exc}"
            out.dead_letters.append((record, EventError(msg, reason="processing_error")))
            continue
        if state is not None and record.offset <= state["offset"]:
            out.replayed += 1
            continue
        if created is not None and created.get("kind") == "erased":
            live.pop(opportunity_id, None)
            erased.add(opportunity_id)
            continue
        if created is not None:
            if state is None:
                try:
                    state = state_from_created(created)
                except (TypeError, ValueError) as exc:  # only leadflow writes them; a copy that is not one waits
                    msg = f"an {created['event_type']!r} record does not match schemas/opportunity.schema.json: {exc}"
                    out.dead_letters.append((record, EventError(msg, reason="schema_violation")))
                    continue
                out.created.append(state)
            else:  # sent again (a redelivered conversion) or reassigned after an SLA breach: the owner may change
                state["owner_id"] = created.get("owner_id")
        else:
            if state is None:
                msg = (
                    f"{event.event_type!r} for opportunity {opportunity_id[:80]!r}, which leadflow does not know"  # type: ignore[union-attr]
                    " (not converted by this deployment, or its 'opportunity.created' is not processed yet)"
                )
                out.dead_letters.append((record, EventError(msg, reason="unknown_opportunity")))
                continue
            was = state["outcome"]
            try:
                applied = apply_feedback(state, event, stages)  # type: ignore[arg-type]  # feedback here
            except EventError as exc:
                out.dead_letters.append((record, exc))
                continue
            if not applied:
                out.replayed += 1
            elif state["outcome"] != was and state["outcome"] != "open":
                out.closings.append(Closing(state["outcome"], state["amount"] or 0.0, _seconds_to_close(state)))
        state["offset"] = record.offset
        live[opportunity_id] = state
    gone = {k for k in erased - live.keys() if before.get(k) is not None}  # (none stored: nothing to delete)
    out.states = {k: orjson.dumps(v) for k, v in live.items()}
    out.states.update((k, None) for k in gone)
    out.changes = [(before.get(k), v) for k, v in live.items()]
    out.changes += [(before[k], None) for k in gone]
    return out


def _decode(stored: bytes) -> State:
    state = orjson.loads(stored)
    if not isinstance(state, dict) or not isinstance(state.get("offset"), int) or "outcome" not in state:
        msg = f"stored opportunity state is not one: {stored[:80]!r}"
        raise ValueError(msg)
    return state


def _seconds_to_close(state: State) -> float | None:
    if state["closed_at"] is None or state["converted_at"] is None:
        return None
    return max(0.0, float(state["closed_at"] - state["converted_at"]))


def expected_revenue(state: Mapping[str, Any]) -> float:
    """Amount × probability / 100 (no amount: 0)."""
    amount = state.get("amount")
    return 0.0 if amount is None else amount * state["probability"] / 100


def score_band(score: float) -> str:
    """The score's tenth: ``0.0-0.1`` ... ``0.9-1.0`` (1.0 falls in the last)."""
    tenth = min(max(int(score * 10), 0), 9)
    return f"{tenth / 10:.1f}-{(tenth + 1) / 10:.1f}"


def days_to_conversion(state: Mapping[str, Any]) -> float | None:
    """Days from the lead's first event to its conversion (None when the lead's creation is not known)."""
    created, converted = state.get("lead_created_at"), state.get("converted_at")
    return None if created is None or converted is None else max(0.0, converted - created) / _DAY


def days_to_close(state: Mapping[str, Any]) -> float | None:
    """Days from conversion to close (None while open)."""
    seconds = _seconds_to_close(dict(state)) if state.get("outcome") != "open" else None
    return None if seconds is None else seconds / _DAY


Cell = tuple[str, str, str]
"""(stage, forecast category, close month ``YYYY-MM``)."""


class SourceLabels:
    """Lead sources as bounded label values: the first ``limit`` seen keep their name (cut to 40 characters),
    later ones are ``other``; no source is ``none``. One instance per worker, so that its metrics agree."""

    def __init__(self, limit: int = 50) -> None:
        self.limit = limit
        self._labels: dict[str, str] = {}

    def __call__(self, source: str | None) -> str:
        if source is None:
            return "none"
        label = self._labels.get(source)
        if label is None:
            label = source[:40] if len(self._labels) < self.limit else "other"
            self._labels[source] = label
        return label


class Pipeline:
    """Sums over opportunities' states, changed a state at a time (add, or replace an old state by a new one).

    ``cells``: (stage, forecast category, close month) → [count, amount, expected revenue]; ``outcomes``: (lead
    source, score band, outcome) → count, the lead source as ``source_label`` makes it a bounded label.
    """

    def __init__(self, source_label: SourceLabels | None = None) -> None:
        self.cells: dict[Cell, list[float]] = {}
        self.outcomes: dict[tuple[str, str, str], int] = {}
        self.source_label = source_label or SourceLabels()

    def add(self, state: Mapping[str, Any], sign: int = 1) -> None:
        cell = (state["stage_name"], state["forecast_category"], str(state["close_date"])[:7])
        sums = self.cells.setdefault(cell, [0, 0.0, 0.0])
        sums[0] += sign
        sums[1] += sign * (state["amount"] or 0.0)
        sums[2] += sign * expected_revenue(state)
        if sums[0] <= 0:
            del self.cells[cell]
        key = (self.source_label(state["lead_source"]), score_band(state["score"]), state["outcome"])
        count = self.outcomes.get(key, 0) + sign
        if count > 0:
            self.outcomes[key] = count
        else:
            self.outcomes.pop(key, None)

    def change(self, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> None:
        """Replace ``before`` by ``after`` in the sums (None: none, as for a new or an erased opportunity)."""
        if before is not None:
            self.add(before, -1)
        if after is not None:
            self.add(after)

    @classmethod
    def of(cls, states: Iterable[Mapping[str, Any]]) -> Pipeline:
        pipeline = cls()
        for state in states:
            pipeline.add(state)
        return pipeline


def _sums(rows: Iterable[tuple[str, float, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, amount, expected in rows:
        sums = out.setdefault(name, {"count": 0, "amount": 0.0, "expected_revenue": 0.0})
        sums["count"] += 1
        sums["amount"] += amount
        sums["expected_revenue"] += expected
    return {name: {k: round(v, 2) for k, v in sums.items()} for name, sums in sorted(out.items())}


def _funnel(
    states: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], str], leads: Mapping[str, int] | None
) -> dict[str, Any]:
    groups: dict[str, list[str]] = {name: [] for name in leads or ()}
    for state in states:
        groups.setdefault(key(state), []).append(state["outcome"])
    out = {}
    for name, outcomes in sorted(groups.items()):
        won, lost = outcomes.count("won"), outcomes.count("lost")
        row: dict[str, Any] = {} if leads is None else {"leads": leads.get(name, 0)}
        row |= {
            "opportunities": len(outcomes),
            "won": won,
            "lost": lost,
            "won_rate": won / len(outcomes) if outcomes else None,
            "win_rate_of_closed": won / (won + lost) if won + lost else None,
        }
        if leads is not None:
            row["lead_to_opportunity_rate"] = len(outcomes) / row["leads"] if row["leads"] else None
        out[name] = row
    return out


def summarize(
    states: Iterable[Mapping[str, Any]], leads: Iterable[tuple[str | None, float | None]] | None = None
) -> dict[str, Any]:
    """Every figure of the pipeline from opportunities' states: by stage, forecast category and close month
    (count, amount, expected revenue), won and lost (count, amount), opportunity-to-won rates by lead source and
    score band, and the mean and median days from lead to conversion and from conversion to close.

    ``leads``, when given, is every lead once, as (lead source, score; the score at conversion for a converted
    lead, so that it falls in its opportunity's band): the funnels then hold the leads and the lead-to-opportunity
    rate (a lead without a score counts under its source only).
    """
    states = list(states)
    by_source: dict[str, int] | None = None
    by_band: dict[str, int] | None = None
    if leads is not None:
        by_source, by_band = {}, {}
        for source, score in leads:
            by_source[source or "none"] = by_source.get(source or "none", 0) + 1
            if score is not None:
                by_band[score_band(score)] = by_band.get(score_band(score), 0) + 1

    def rows(key: Callable[[Mapping[str, Any]], str]) -> list[tuple[str, float, float]]:
        return [(key(s), s["amount"] or 0.0, expected_revenue(s)) for s in states]

    closed = {
        outcome: {
            "count": sum(1 for s in states if s["outcome"] == outcome),
            "amount": round(sum(s["amount"] or 0.0 for s in states if s["outcome"] == outcome), 2),
        }
        for outcome in ("won", "lost")
    }
    days = {
        "lead_to_conversion": [d for s in states if (d := days_to_conversion(s)) is not None],
        "conversion_to_close": [d for s in states if (d := days_to_close(s)) is not None],
    }
    return {
        "opportunities": len(states),
        "by_stage": _sums(rows(lambda s: s["stage_name"])),
        "by_forecast_category": _sums(rows(lambda s: s["forecast_category"])),
        "by_close_month": _sums(rows(lambda s: str(s["close_date"])[:7])),
        **closed,
        "by_lead_source": _funnel(states, lambda s: s["lead_source"] or "none", by_source),
        "by_score_band": _funnel(states, lambda s: score_band(s["score"]), by_band),
        "days": {
            name: {
                "count": len(values),
                "mean": statistics.fmean(values) if values else None,
                "median": statistics.median(values) if values else None,
            }
            for name, values in days.items()
        },
    }
