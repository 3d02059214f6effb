"""The pure core: one lead event and the lead's state in, a decision (and maybe an opportunity) out.

No broker, no Faust, no clock of its own: everything a decision depends on is an argument, so it can be tested,
replayed and benchmarked as plain function calls. The Faust shell (:mod:`worker.stream.app`) only moves bytes.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson

from worker.exceptions import EventError, StateError
from worker.lead import ids
from worker.lead.events import LeadActivity, LeadUpserted
from worker.lead.parse import DEFAULT_MAX_EVENT_BYTES, parse_event
from worker.lead.state import (
    HISTORY_FACT,
    LeadState,
    Position,
    apply_event,
    build_facts,
    decode_state,
    event_digest,
    new_state,
    redelivered,
    seen,
)
from worker.lead.times import iso_utc
from worker.routing import AccountIndex
from worker.routing.flow import RouteRequest, route_lead, route_opportunity, target_label
from worker.rules import QualificationRule, Ruleset
from worker.scoring import IS_MISSING, IS_UNSEEN, Model, feature_checks

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
    accounts: AccountIndex | None = None
    """Known accounts for routing (kept current by the worker's accounts feed; None: no account matching)."""


class Decided(NamedTuple):
    """The outcome of one event: the decision, and the opportunity when the lead converted.

    With routing configured, a converted lead also gets a routing decision (``routed``) when the route names a
    user or a queue; when it names a pool, the opportunity waits in a routing request (``route_request``) for the
    pool's owner to assign it (see :mod:`worker.routing.flow`), and ``opportunity`` is None.
    """

    decision: dict[str, Any]
    opportunity: dict[str, Any] | None
    facts: dict[str, object] | None = None  # what the model scored (None for a duplicate)
    routed: dict[str, Any] | None = None
    route_request: RouteRequest | None = None
    duplicate: bool = False
    """The event's id was already applied to the lead: nothing changed, and the worker sends nothing for it."""


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
    routing_decisions: list[tuple[bytes, bytes]] = field(default_factory=list)
    route_requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # key: the pool's name
    routed: Counter[tuple[str, str]] = field(default_factory=Counter)  # ("", target) of direct routes
    routed_times: list[float] = field(default_factory=list)  # record timestamps of the directly routed events
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


def _isoformat(moment: dt.datetime) -> str:
    """``moment.isoformat()`` for an aware time, by orjson: the same text in a fifth of the time (per event)."""
    return orjson.dumps(moment)[1:-1].decode()


def decide(
    engine: Engine,
    state: LeadState | None,
    event: LeadUpserted | LeadActivity,
    decided_at: float,
    position: Position | None = None,
) -> tuple[LeadState, Decided]:
    """Apply ``event`` to the lead's ``state`` (mutated, or created when None) and decide.

    ``decided_at`` is the wall-clock time of the decision (epoch seconds); everything else, including the
    opportunity's ``converted_at`` and ``close_date``, derives from the event so that a replay is identical.
    ``position`` is where the event's record was read (topic, partition, offset, timestamp), kept in the state:
    an event whose id the state holds, or whose record is at or before the last one applied in its partition, is
    a replay (``Decided.duplicate``) and changes nothing.
    """
    ruleset, model = engine.ruleset, engine.model
    lead_id = event.lead_id
    now = event.occurred_at.timestamp()
    if state is None:
        state = new_state(lead_id, now)
    digest = event_digest(event.event_id)
    previous_status: str = state["status"] or ruleset.default_status
    if seen(state, digest) or redelivered(state, position):
        last_score = state["score"] if state["score"] is not None else 0.0
        decision = _decision(
            engine, event, decided_at, previous_status, previous_status, state["points"], last_score, [], [], "none"
        )
        decision["opportunity_id"] = state["opportunity_id"]
        return state, Decided(decision, None, duplicate=True)

    changed = apply_event(state, event, digest, now, engine.dedupe_window)
    if position is not None:
        state["source"] = list(position)  # as stored (JSON): the cached state equals the stored one
    facts = build_facts(state, now, event, changed)
    score = model.score(facts)
    probability = score.probability
    facts["score"] = probability
    outcome = ruleset.evaluate(facts)
    factors = model.factors(score, facts, engine.top_factors)
    state["points"] = points = outcome.points
    state["score"] = probability

    status: str = state["status"] or ruleset.default_status  # a producer may have set it
    rule = outcome.qualification
    action = "none"
    opportunity: dict[str, Any] | None = None
    routed: dict[str, Any] | None = None
    request: RouteRequest | None = None
    if rule is not None and not state["converted"]:
        status = rule.status
        if rule.convert:
            action = "converted"
            opportunity = _convert(engine, state, event, facts, rule, probability, factors, outcome)
            spec = rule.opportunity
            if ruleset.routing is not None and spec is not None and spec.owner_id is None and spec.queue is None:
                # the rule names no owner or queue itself: routing decides (before the lead's own owner_id)
                route = ruleset.routing.route(facts, state, engine.accounts)
                opportunity, routed, request = route_opportunity(opportunity, route, ruleset.version, decided_at)
        elif status != previous_status:
            status_def = ruleset.statuses.get(status)
            action = "disqualified" if status_def is not None and status_def.disqualified else "status_changed"
    elif status != previous_status:
        action = "status_changed"
    state["status"] = status
    routing = ruleset.routing
    if action == "status_changed" and routing is not None and status in routing.lead_statuses:
        route = routing.route(facts, state, engine.accounts)
        routed, request = route_lead(lead_id, status, route, ruleset.version, decided_at)
    decision = _decision(
        engine, event, decided_at, status, previous_status, points, probability, factors, outcome.matched_rules, action
    )
    decision["opportunity_id"] = state["opportunity_id"]
    return state, Decided(decision, opportunity, facts, routed, request)


def _decision(
    engine: Engine,
    event: LeadUpserted | LeadActivity,
    decided_at: float,
    status: str,
    previous_status: str,
    points: float,
    score: float,
    factors: list[dict[str, Any]],
    matched_rules: Sequence[str],
    action: str,
) -> dict[str, Any]:
    """A decision in the contract's key order (the caller sets its opportunity id)."""
    return {
        "schema_version": 1,
        "decision_id": ids.decision_id(event.lead_id, event.event_id),
        "event_id": event.event_id,
        "lead_id": event.lead_id,
        "decided_at": iso_utc(decided_at),
        "occurred_at": _isoformat(event.occurred_at),
        "ruleset_version": engine.ruleset.version,
        "model_version": engine.model.version,
        "status": status,
        "previous_status": previous_status,
        "points": points,
        "score": score,
        "factors": factors,
        "matched_rules": list(matched_rules),
        "action": action,
        "opportunity_id": None,
    }


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
    lead_id = event.lead_id
    opp_id = ids.opportunity_id(lead_id)
    amount = spec.amount(facts)
    stage = spec.stage
    probability = stage.probability if spec.probability is None else spec.probability
    owner_id = spec.owner_id
    queue = spec.queue
    if owner_id is None and queue is None:
        owner_id = state.get("owner_id")
        if owner_id is None:
            queue = engine.ruleset.conversion.queue
    converted_at = event.occurred_at
    try:
        close_date = (converted_at.astimezone(_UTC) + dt.timedelta(days=spec.close_in_days)).date()
    except OverflowError:  # converted in the last days of year 9999: the calendar's last day
        close_date = dt.date.max
    state["converted"] = True
    state["opportunity_id"] = opp_id
    state["converted_at"] = converted_at.timestamp()
    company = state.get("company") or " ".join(p for p in (state.get("first_name"), state.get("last_name")) if p)
    return {
        "schema_version": 1,
        "event_type": "opportunity.created",
        "opportunity_id": opp_id,
        "lead_id": lead_id,
        "event_id": event.event_id,
        "name": spec.name(facts),
        "account": {
            "name": company or lead_id,
            "industry": state.get("industry"),
            "annual_revenue": state.get("annual_revenue"),
            "number_of_employees": state.get("number_of_employees"),
            "country": state.get("country"),
            "state": state.get("state"),
            "website": state.get("website"),
        },
        "contact": {
            "first_name": state.get("first_name"),
            "last_name": state.get("last_name"),
            "email": state.get("email"),
            "phone": state.get("phone"),
            "title": state.get("title"),
        },
        "stage_name": stage.name,
        "probability": probability,
        "forecast_category": spec.forecast_category or stage.forecast_category,
        "amount": amount,
        "expected_revenue": None if amount is None else round(amount * probability / 100, 2),
        "close_date": close_date.isoformat(),
        "lead_source": state.get("lead_source"),
        "owner_id": owner_id,
        "queue": queue,
        "score": score,
        "factors": factors,
        "matched_rules": list(outcome.matched_rules),
        "converted_by_rule": rule.id,
        "ruleset_version": engine.ruleset.version,
        "model_version": engine.model.version,
        "converted_at": _isoformat(converted_at),
    }


def process_batch(
    engine: Engine,
    records: Sequence[RecordLike],
    load_state: Callable[[str], bytes | None],
    decided_at: float,
    cache: MutableMapping[str, LeadState] | None = None,
    drift_sample: int = 0,
) -> BatchResult:
    """Run a batch of raw records through the core; each lead's records in order, the outputs in record order.

    ``load_state`` returns a lead's stored state (JSON bytes) or None. The states are carried in memory from one
    event to the next and serialised once, into ``states``. ``cache``, if given, holds decoded states equal to
    the stored ones: a lead found there is not loaded, and every lead of the batch is left there as it ends the
    batch (the caller stores ``states`` before the next batch).

    Nothing in a record stops the batch. A record that is not a valid lead event becomes a dead letter with its
    reason. A lead whose stored state cannot be read sends each of its events to the dead letters, naming it. Any
    other exception while deciding a lead (a bug, a state grown over half of ``engine.max_event_bytes``) sends the lead
    again through its events one at a time from its stored state: the events that fail go to the dead letters,
    naming the lead, the others are decided as they would have been (decisions are pure). The batch's other
    leads are not touched. An event whose id the lead's state already holds, or whose record is at or before the
    last one applied to the lead in its partition (a replay, see :func:`worker.lead.state.redelivered`), is counted in
    ``duplicates`` and sends nothing: its decision was sent before its state was stored.

    The records are decided lead by lead (a lead's records one after the other, in their order), then their
    outputs are listed in the records' order: decisions depend only on the lead's own state and events, so the
    result is the same as deciding the records one by one in order, and a lead's state stays in the CPU's caches
    from one of its events to the next (about 15 % faster with several events per lead in a batch).

    ``drift_sample`` N > 0 keeps the facts of the decided (not duplicate) events whose record offset is a multiple
    of N, and counts per feature whether each is missing or unseen (0: none).
    """
    result = BatchResult()
    cached = cache if cache is not None else {}
    outputs: list[_Output | None] = [None] * len(records)
    failed: dict[int, EventError] = {}
    states = result.states
    for indexes in _by_key(records):
        events = _parsed(records, indexes, engine.max_event_bytes, failed)
        if not events:
            continue
        lead_id = events[0][1].lead_id
        state = cached.get(lead_id)
        if state is None:
            try:
                state = _decoded(lead_id, load_state(lead_id))
            except Exception as exc:  # the lead's events wait in the dead letters; the others go on
                for index, _ in events:
                    failed[index] = _lead_error(lead_id, exc)
                continue
        try:
            state, stored = _decide_lead(engine, records, events, state, decided_at, drift_sample, outputs)
        except Exception:  # one event of this lead fails: find which, from the stored state
            state, stored = _decide_one_by_one(
                engine, records, events, lead_id, load_state, decided_at, drift_sample, outputs, failed
            )
        if stored is not None:
            states[lead_id] = stored
        if state is not None:
            cached[lead_id] = state
        else:  # the fast path may have changed the cached state before it failed
            cached.pop(lead_id, None)
    _collect(engine.model, records, outputs, failed, result)
    return result


_Output = tuple[
    bytes | None,  # the decision's JSON (None for a replay: nothing is sent)
    float | None,  # its score (None for a replay)
    dict[str, object] | None,  # its facts, when sampled for drift
    tuple[str, bytes] | None,  # the opportunity: its id and JSON
    tuple[str, bytes, str] | None,  # the routing decision: its key, JSON and target
    tuple[str, bytes] | None,  # the routing request: its pool and JSON
    str,  # the event type
    str,  # the decision's status
    str,  # the decision's action
]


def _by_key(records: Sequence[RecordLike]) -> Iterator[list[int]]:
    """The records' indexes grouped by key (a lead's records in their order), keys in order of first record."""
    groups: dict[bytes | None, list[int]] = {}
    for index, record in enumerate(records):
        group = groups.get(record.key)
        if group is None:
            groups[record.key] = [index]
        else:
            group.append(index)
    return iter(groups.values())


def _parsed(
    records: Sequence[RecordLike], indexes: list[int], max_bytes: int, failed: dict[int, EventError]
) -> list[tuple[int, LeadUpserted | LeadActivity]]:
    """The valid events among one key's records (each keyed by its lead id); the others go to ``failed``."""
    events = []
    for index in indexes:
        record = records[index]
        try:
            events.append((index, parse_event(record.key, record.value, max_bytes)))
        except EventError as exc:
            failed[index] = exc
        except Exception as exc:  # a bug in the parser must not stop the stream either
            failed[index] = EventError(f"the parser failed: {type(exc).__name__}: {exc}", reason="processing_error")
    return events


def _decoded(lead_id: str, stored: bytes | None) -> LeadState | None:
    state = None if stored is None else decode_state(stored)
    if state is not None and state.get("lead_id") != lead_id:
        msg = f"stored state is of lead {str(state.get('lead_id'))[:80]!r}"
        raise StateError(msg, lead_id=lead_id)
    return state


def _lead_error(lead_id: str, exc: Exception, event_id: str | None = None) -> EventError:
    """A dead letter's reason for an event of ``lead_id`` that could not be decided."""
    event = f" event {event_id!r}" if event_id is not None else ""
    if isinstance(exc, _StateTooLarge):
        return EventError(f"lead {lead_id!r}{event}: {exc}", reason="state_too_large")
    what = "stored state cannot be read" if isinstance(exc, StateError | orjson.JSONDecodeError) else "failed"
    return EventError(f"lead {lead_id!r}{event}: {what}: {type(exc).__name__}: {exc}", reason="processing_error")


class _StateTooLarge(Exception):
    """A lead's state would be stored larger than the limit (its changelog record would be refused)."""


def _serialised(state: LeadState, max_event_bytes: int) -> bytes:
    """The state's JSON, refused over half of LEADFLOW_MAX_EVENT_BYTES (its changelog record must fit the broker
    with room to spare; a lead's state is a few KB)."""
    stored = orjson.dumps(state)
    limit = max_event_bytes // 2
    if len(stored) > limit:
        msg = (
            f"its state would grow to {len(stored):,} bytes, over the limit of {limit:,} (half of"
            " LEADFLOW_MAX_EVENT_BYTES): too many custom fields or activity types"
        )
        raise _StateTooLarge(msg)
    return stored


def _decide_lead(
    engine: Engine,
    records: Sequence[RecordLike],
    events: list[tuple[int, LeadUpserted | LeadActivity]],
    state: LeadState | None,
    decided_at: float,
    drift_sample: int,
    outputs: list[_Output | None],
) -> tuple[LeadState | None, bytes | None]:
    """Decide one lead's events in order (the fast path); returns its state and, if it changed, the state's JSON.

    Any exception escapes: the caller then decides the lead again event by event (``state`` may be half-changed).
    """
    changed = False
    for index, event in events:
        record = records[index]
        state, decided = decide(engine, state, event, decided_at, _position(record))
        outputs[index] = _rendered(engine, record, event, decided, drift_sample)
        changed = changed or not decided.duplicate
    stored = _serialised(state, engine.max_event_bytes) if changed and state is not None else None
    return state, stored


def _decide_one_by_one(
    engine: Engine,
    records: Sequence[RecordLike],
    events: list[tuple[int, LeadUpserted | LeadActivity]],
    lead_id: str,
    load_state: Callable[[str], bytes | None],
    decided_at: float,
    drift_sample: int,
    outputs: list[_Output | None],
    failed: dict[int, EventError],
) -> tuple[LeadState | None, bytes | None]:
    """The slow path: each event on a copy of the state after the ones before it; a failing event is a dead letter
    and leaves the state as it was. Returns the lead's state and its JSON (None when nothing changed)."""
    try:
        state = _decoded(lead_id, load_state(lead_id))
    except Exception as exc:
        for index, _ in events:
            outputs[index] = None
            failed[index] = _lead_error(lead_id, exc)
        return None, None
    stored = None
    for index, event in events:
        outputs[index] = None
        try:
            record = records[index]
            trial = None if state is None else copy.deepcopy(state)
            trial, decided = decide(engine, trial, event, decided_at, _position(record))
            out = _rendered(engine, record, event, decided, drift_sample)
            trial_stored = None if decided.duplicate else _serialised(trial, engine.max_event_bytes)
        except Exception as exc:  # the event goes to the dead letters; the lead's next events go on without it
            failed[index] = _lead_error(lead_id, exc, event.event_id)
            continue
        outputs[index] = out
        state = trial
        if trial_stored is not None:
            stored = trial_stored
    return state, stored


def _position(record: RecordLike) -> Position:
    return (record.topic, record.partition, record.offset, record.timestamp)


def _rendered(
    engine: Engine, record: RecordLike, event: LeadUpserted | LeadActivity, decided: Decided, drift_sample: int
) -> _Output:
    """One decided event's outputs as JSON, ready to list (a replay's: nothing to send)."""
    decision = decided.decision
    status, action = decision["status"], decision["action"]
    if decided.duplicate:
        return (None, None, None, None, None, None, event.event_type, status, action)
    dumps = orjson.dumps
    opportunity = decided.opportunity
    opportunity_out = None if opportunity is None else (opportunity["opportunity_id"], dumps(opportunity))
    routed = decided.routed
    routed_out = None
    if routed is not None:
        routed_out = (routed["opportunity_id"] or routed["lead_id"], dumps(routed), target_label(routed["target"]))
    request = decided.route_request
    request_out = None
    if request is not None:
        request.message["event_time"] = record.timestamp  # for the time from lead event to assignment
        request_out = (request.pool, dumps(request.message))
    sampled = None
    if drift_sample and record.offset % drift_sample == 0 and decided.facts is not None:
        sampled = _without_history(decided.facts)
    return (
        dumps(decision),
        decision["score"],
        sampled,
        opportunity_out,
        routed_out,
        request_out,
        event.event_type,
        status,
        action,
    )


def _without_history(facts: dict[str, object]) -> dict[str, object]:
    """An event's facts as the drift sample keeps them: without the per-day history, which is the lead's own (the
    live state's, changed by its later events) and which no model can read (see worker.artifacts.check_servable)."""
    facts.pop(HISTORY_FACT, None)
    return facts


def _collect(
    model: Model,
    records: Sequence[RecordLike],
    outputs: Sequence[_Output | None],
    failed: dict[int, EventError],
    result: BatchResult,
) -> None:
    """List the batch's outputs and dead letters in the order of their records, and count them."""
    dead_letters, decisions, scores, record_times = (
        result.dead_letters,
        result.decisions,
        result.scores,
        result.record_times,
    )
    by_type, by_outcome = result.events_by_type, result.decisions_by
    for index, out in enumerate(outputs):
        record = records[index]
        if out is None:
            dead_letters.append((record, failed[index]))
            continue
        decision_bytes, score, sampled, opportunity, routed, request, event_type, status, action = out
        by_type[event_type] += 1
        by_outcome[status, action] += 1
        if decision_bytes is None:  # a replay: counted, nothing sent
            result.duplicates += 1
            continue
        decisions.append((record.key or b"", decision_bytes))  # the lead id: parse_event checked the key
        if score is not None:
            scores.append(score)
        if sampled is not None:
            _sample(model, sampled, result)
        if opportunity is not None:
            result.opportunities.append((opportunity[0].encode(), opportunity[1]))
        if routed is not None:
            routed_key, routed_bytes, target = routed
            result.routing_decisions.append((routed_key.encode(), routed_bytes))
            result.routed["", target] += 1
            if record.timestamp is not None:
                result.routed_times.append(record.timestamp)
        if request is not None:
            result.route_requests.append((request[0].encode(), request[1]))
        if record.timestamp is not None:
            record_times.append(record.timestamp)


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
