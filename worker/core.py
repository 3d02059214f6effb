"""The pure core: one lead event and the lead's state in, a decision (and maybe an opportunity) out.

No broker, no Faust, no clock of its own: everything a decision depends on is an argument, so it can be tested,
replayed and benchmarked as plain function calls. The Faust shell (:mod:`worker.app`) only moves bytes.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson

from worker import ids
from worker.events import LeadActivity, LeadUpserted
from worker.exceptions import EventError
from worker.parse import DEFAULT_MAX_EVENT_BYTES, parse_event
from worker.rules import QualificationRule, Ruleset
from worker.scoring import IS_MISSING, IS_UNSEEN, Model, feature_checks
from worker.state import LeadState, apply_event, build_facts, event_digest, new_state, seen

__all__ = [
    "BatchResult",
    "Decided",
    "Engine",
    "Record",
    "RecordLike",
    "decide",
    "process_batch",
]

_UTC = dt.UTC


@dataclass(frozen=True, slots=True)
class Engine:
    """Everything a decision depends on; swapped as a whole so every decision is made by one version."""

    ruleset: Ruleset
    model: Model
    dedupe_window: int = 64
    top_factors: int = 5
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES


class Decided(NamedTuple):
    """The outcome of one event: the decision, and the opportunity when the lead converted."""

    decision: dict[str, Any]
    opportunity: dict[str, Any] | None
    facts: dict[str, object] | None = None  # what the model scored (None for a duplicate)


class RecordLike(Protocol):
    """What the core reads of a raw record: Faust's consumer messages have these attributes too."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> float | None: ...


class Record(NamedTuple):
    """One raw record of the ``leads`` topic with its position."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: float | None = None  # epoch seconds the record was produced, if known


@dataclass(slots=True)
class BatchResult:
    """What a batch produced, ready to send, plus the counts that metrics need."""

    decisions: list[tuple[bytes, bytes]] = field(default_factory=list)
    opportunities: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[tuple[RecordLike, EventError]] = field(default_factory=list)
    states: dict[str, bytes] = field(default_factory=dict)
    events_by_type: Counter[str] = field(default_factory=Counter)
    decisions_by: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicates: int = 0
    scores: list[float] = field(default_factory=list)
    record_times: list[float] = field(default_factory=list)
    # drift: the facts of the sampled events (1 record offset in ``drift_sample``) and, per model feature, how
    # many were observed, missing or unseen (see worker.scoring.feature_checks)
    sampled_facts: list[dict[str, object]] = field(default_factory=list)
    features_observed: Counter[str] = field(default_factory=Counter)
    features_missing: Counter[str] = field(default_factory=Counter)
    features_unseen: Counter[str] = field(default_factory=Counter)


@functools.lru_cache(maxsize=4)  # one decided_at per batch: formatted once
def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, _UTC).isoformat()


def decide(
    engine: Engine, state: LeadState | None, event: LeadUpserted | LeadActivity, decided_at: float
) -> tuple[LeadState, Decided]:
    """Apply ``event`` to the lead's ``state`` (mutated, or created when None) and decide.

    ``decided_at`` is the wall-clock time of the decision (epoch seconds); everything else, including the
    opportunity's ``converted_at`` and ``close_date``, derives from the event so that a replay is identical.
    """
    ruleset, model = engine.ruleset, engine.model
    lead_id = event.lead_id
    now = event.occurred_at.timestamp()
    if state is None:
        state = new_state(lead_id, now)
    digest = event_digest(event.event_id)
    previous_status: str = state["status"] or ruleset.default_status
    base = {
        "schema_version": 1,
        "decision_id": ids.decision_id(lead_id, event.event_id),
        "event_id": event.event_id,
        "lead_id": lead_id,
        "decided_at": _iso(decided_at),
        "occurred_at": event.occurred_at.isoformat(),
        "ruleset_version": ruleset.version,
        "model_version": model.version,
    }
    if seen(state, digest):
        base.update(
            status=previous_status,
            previous_status=previous_status,
            points=state["points"],
            score=state["score"] if state["score"] is not None else 0.0,
            factors=[],
            matched_rules=[],
            action="none",
            opportunity_id=state["opportunity_id"],
            duplicate=True,
        )
        return state, Decided(base, None)

    changed = apply_event(state, event, digest, now, engine.dedupe_window)
    facts = build_facts(state, now, event, changed)
    score = model.score(facts)
    facts["score"] = score.probability
    outcome = ruleset.evaluate(facts)
    factors = model.factors(score, facts, engine.top_factors)
    state["points"] = outcome.points
    state["score"] = score.probability

    status: str = state["status"] or ruleset.default_status
    rule = outcome.qualification
    action = "none"
    opportunity: dict[str, Any] | None = None
    if rule is not None and not state["converted"]:
        status = rule.status
        if rule.convert:
            action = "converted"
            opportunity = _convert(engine, state, event, facts, rule, score.probability, factors, outcome)
        elif status != previous_status:
            status_def = ruleset.statuses.get(status)
            action = "disqualified" if status_def is not None and status_def.disqualified else "status_changed"
    elif status != previous_status:
        action = "status_changed"
    state["status"] = status
    base.update(
        status=status,
        previous_status=previous_status,
        points=outcome.points,
        score=score.probability,
        factors=factors,
        matched_rules=list(outcome.matched_rules),
        action=action,
        opportunity_id=state["opportunity_id"],
        duplicate=False,
    )
    return state, Decided(base, opportunity, facts)


def _convert(
    engine: Engine,
    state: LeadState,
    event: LeadUpserted | LeadActivity,
    facts: dict[str, object],
    rule: QualificationRule,
    score: float,
    factors: list[dict[str, Any]],
    outcome: Any,
) -> dict[str, Any]:
    spec = rule.opportunity
    if spec is None:  # the compiler resolves defaults for converting rules; this is a guard
        msg = f"qualification rule {rule.id!r} converts but has no opportunity spec"
        raise AssertionError(msg)
    profile: dict[str, Any] = state["profile"]
    lead_id = event.lead_id
    opp_id = ids.opportunity_id(lead_id)
    amount = spec.amount(facts)
    stage = spec.stage
    probability = stage.probability if spec.probability is None else spec.probability
    owner_id = spec.owner_id
    queue = spec.queue
    if owner_id is None and queue is None:
        owner_id = profile.get("owner_id")
        if owner_id is None:
            queue = engine.ruleset.conversion.queue
    converted_at = event.occurred_at
    close_date = (converted_at.astimezone(_UTC) + dt.timedelta(days=spec.close_in_days)).date()
    state["converted"] = True
    state["opportunity_id"] = opp_id
    state["converted_at"] = converted_at.timestamp()
    company = profile.get("company") or " ".join(p for p in (profile.get("first_name"), profile.get("last_name")) if p)
    return {
        "schema_version": 1,
        "event_type": "opportunity.created",
        "opportunity_id": opp_id,
        "lead_id": lead_id,
        "event_id": event.event_id,
        "name": spec.name(facts),
        "account": {
            "name": company or lead_id,
            "industry": profile.get("industry"),
            "annual_revenue": profile.get("annual_revenue"),
            "number_of_employees": profile.get("number_of_employees"),
            "country": profile.get("country"),
            "state": profile.get("state"),
            "website": profile.get("website"),
        },
        "contact": {
            "first_name": profile.get("first_name"),
            "last_name": profile.get("last_name"),
            "email": profile.get("email"),
            "phone": profile.get("phone"),
            "title": profile.get("title"),
        },
        "stage_name": stage.name,
        "probability": probability,
        "forecast_category": spec.forecast_category or stage.forecast_category,
        "amount": amount,
        "expected_revenue": None if amount is None else round(amount * probability / 100, 2),
        "close_date": close_date.isoformat(),
        "lead_source": profile.get("lead_source"),
        "owner_id": owner_id,
        "queue": queue,
        "score": score,
        "factors": factors,
        "matched_rules": list(outcome.matched_rules),
        "converted_by_rule": rule.id,
        "ruleset_version": engine.ruleset.version,
        "model_version": engine.model.version,
        "converted_at": converted_at.isoformat(),
    }


def process_batch(
    engine: Engine,
    records: Sequence[RecordLike],
    load_state: Callable[[str], bytes | None],
    decided_at: float,
    cache: MutableMapping[str, LeadState] | None = None,
    drift_sample: int = 0,
) -> BatchResult:
    """Run a batch of raw records through the core, in order.

    ``load_state`` returns a lead's stored state (JSON bytes) or None. The states are carried in memory from one
    event to the next and serialised once, into ``states``. ``cache``, if given, holds decoded states equal to
    the stored ones: a lead found there is not loaded, and every lead of the batch is left there as it ends the
    batch (the caller stores ``states`` before the next batch). A bad record becomes a dead letter; an unexpected
    error on one event also does, and leaves that lead's state as it was before the event (rebuilt from
    ``load_state`` by re-deciding the lead's earlier events of the batch: decisions are pure).

    ``drift_sample`` N > 0 keeps the facts of the decided (not duplicate) events whose record offset is a multiple
    of N, and counts per feature whether each is missing or unseen (0: none).
    """
    result = BatchResult()
    dumps, loads = orjson.dumps, orjson.loads
    cached = cache if cache is not None else {}
    live: dict[str, LeadState | None] = {}
    applied: dict[str, list[LeadUpserted | LeadActivity]] = {}
    for record in records:
        try:
            event = parse_event(record.key, record.value, engine.max_event_bytes)
        except EventError as exc:
            result.dead_letters.append((record, exc))
            continue
        lead_id = event.lead_id
        if lead_id in live:
            state = live[lead_id]
        else:
            state = cached.get(lead_id)
            if state is None:
                stored = load_state(lead_id)
                state = None if stored is None else loads(stored)
            live[lead_id] = state
        try:
            state, decided = decide(engine, state, event, decided_at)
            decision_bytes = dumps(decided.decision)
            opportunity = decided.opportunity
            opportunity_bytes = None if opportunity is None else dumps(opportunity)
        except Exception as exc:  # a bug must not stop the stream: the event goes to the dead-letter topic
            error = EventError(f"{type(exc).__name__}: {exc}", reason="processing_error")
            result.dead_letters.append((record, error))
            live[lead_id] = _replay(engine, load_state(lead_id), applied.get(lead_id, ()), decided_at)
            continue
        live[lead_id] = state
        decision = decided.decision
        result.events_by_type[event.event_type] += 1
        result.decisions.append((lead_id.encode(), decision_bytes))
        result.decisions_by[decision["status"], decision["action"]] += 1
        if decision["duplicate"]:
            result.duplicates += 1
        else:
            applied.setdefault(lead_id, []).append(event)
            result.scores.append(decision["score"])
            if drift_sample and record.offset % drift_sample == 0 and decided.facts is not None:
                _sample(engine.model, decided.facts, result)
        if opportunity is not None and opportunity_bytes is not None:
            result.opportunities.append((opportunity["opportunity_id"].encode(), opportunity_bytes))
        if record.timestamp is not None:
            result.record_times.append(record.timestamp)
    result.states = {lead_id: dumps(state) for lead_id, state in live.items() if lead_id in applied}
    if cache is not None:
        for lead_id, state in live.items():
            if state is not None:
                cache[lead_id] = state
    return result


def _sample(model: Model, facts: dict[str, object], result: BatchResult) -> None:
    """Keep one sampled event's facts and count which features are missing or unseen in them."""
    result.sampled_facts.append(facts)
    observed, missing, unseen = result.features_observed, result.features_missing, result.features_unseen
    for name, check in feature_checks(model):
        observed[name] += 1
        status = check(facts)
        if status == IS_MISSING:
            missing[name] += 1
        elif status == IS_UNSEEN:
            unseen[name] += 1


def _replay(
    engine: Engine, stored: bytes | None, events: Sequence[LeadUpserted | LeadActivity], decided_at: float
) -> LeadState | None:
    """The state after ``events``, starting again from the stored one."""
    state: LeadState | None = None if stored is None else orjson.loads(stored)
    for event in events:
        state, _ = decide(engine, state, event, decided_at)
    return state
