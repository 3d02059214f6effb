"""The pure core: one lead event and the lead's state in, a decision (and maybe an opportunity) out.

No broker, no Faust, no clock of its own: everything a decision depends on is an argument, so it can be tested,
replayed and benchmarked as plain function calls. The Faust shell (:mod:`worker.app`) only moves bytes.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson

from worker import ids
from worker.events import LeadActivity, LeadUpserted
from worker.exceptions import EventError, StateError
from worker.parse import DEFAULT_MAX_EVENT_BYTES, parse_event
from worker.route_flow import RouteRequest, route_lead, route_opportunity, target_label
from worker.routing import AccountIndex
from worker.rules import QualificationRule, Ruleset
from worker.scoring import IS_MISSING, IS_UNSEEN, Model, feature_checks
from worker.state import HISTORY_FACT, LeadState, apply_event, build_facts, decode_state, event_digest, new_state, seen

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
    pool's owner to assign it (see :mod:`worker.route_flow`), and ``opportunity`` is None.
    """

    decision: dict[str, Any]
    opportunity: dict[str, Any] | None
    facts: dict[str, object] | None = None  # what the model scored (None for a duplicate)
    routed: dict[str, Any] | None = None
    route_request: RouteRequest | None = None


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


@functools.lru_cache(maxsize=4)  # one decided_at per batch: formatted once
def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, _UTC).isoformat()


def _isoformat(moment: dt.datetime) -> str:
    """``moment.isoformat()`` for an aware time, by orjson: the same text in a fifth of the time (per event)."""
    return orjson.dumps(moment)[1:-1].decode()


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
    if seen(state, digest):
        last_score = state["score"] if state["score"] is not None else 0.0
        decision = _decision(
            engine, event, decided_at, previous_status, previous_status, state["points"], last_score, [], [], "none"
        )
        decision["opportunity_id"] = state["opportunity_id"]
        decision["duplicate"] = True
        return state, Decided(decision, None)

    changed = apply_event(state, event, digest, now, engine.dedupe_window)
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
    """A decision in the contract's key order (the caller sets its opportunity id, and ``duplicate`` for a replay)."""
    return {
        "schema_version": 1,
        "decision_id": ids.decision_id(event.lead_id, event.event_id),
        "event_id": event.event_id,
        "lead_id": event.lead_id,
        "decided_at": _iso(decided_at),
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
        "duplicate": False,
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
    close_date = (converted_at.astimezone(_UTC) + dt.timedelta(days=spec.close_in_days)).date()
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
    batch (the caller stores ``states`` before the next batch). A bad record becomes a dead letter; an unexpected
    error on one event also does, and leaves that lead's state as it was before the event (rebuilt from
    ``load_state`` by re-deciding the lead's earlier events of the batch: decisions are pure).

    The records are decided lead by lead (a lead's records one after the other, in their order), then their
    outputs are listed in the records' order: decisions depend only on the lead's own state and events, so the
    result is the same as deciding the records one by one in order, and a lead's state stays in the CPU's caches
    from one of its events to the next (about 15 % faster with several events per lead in a batch).

    ``drift_sample`` N > 0 keeps the facts of the decided (not duplicate) events whose record offset is a multiple
    of N, and counts per feature whether each is missing or unseen (0: none).
    """
    result = BatchResult()
    dumps = orjson.dumps
    cached = cache if cache is not None else {}
    live: dict[str, LeadState | None] = {}
    changed: set[str] = set()  # leads whose state an event of this batch changed: stored at the end
    max_bytes = engine.max_event_bytes
    by_type, by_outcome = result.events_by_type, result.decisions_by
    outputs: list[_Output | None] = [None] * len(records)
    failed: dict[int, EventError] = {}
    for index in _lead_order(records):
        record = records[index]
        try:
            event = parse_event(record.key, record.value, max_bytes)
        except EventError as exc:
            failed[index] = exc
            continue
        lead_id = event.lead_id
        if lead_id in live:
            state = live[lead_id]
        else:
            state = cached.get(lead_id)
            if state is None:
                stored = load_state(lead_id)
                if stored is not None:
                    try:
                        state = decode_state(stored)
                    except (StateError, orjson.JSONDecodeError) as exc:  # the event waits in the dead letters
                        failed[index] = EventError(f"{type(exc).__name__}: {exc}", reason="processing_error")
                        continue
            live[lead_id] = state
        try:
            state, decided = decide(engine, state, event, decided_at)
            decision = decided.decision
            decision_bytes = dumps(decision)
            opportunity = decided.opportunity
            opportunity_out = None if opportunity is None else (opportunity["opportunity_id"], dumps(opportunity))
            routed = decided.routed
            routed_out = None
            if routed is not None:
                routed_out = (
                    routed["opportunity_id"] or routed["lead_id"],
                    dumps(routed),
                    target_label(routed["target"]),
                )
            request = decided.route_request
            request_out = None
            if request is not None:
                request.message["event_time"] = record.timestamp  # for the time from lead event to assignment
                request_out = (request.pool, dumps(request.message))
        except Exception as exc:  # a bug must not stop the stream: the event goes to the dead-letter topic
            failed[index] = EventError(f"{type(exc).__name__}: {exc}", reason="processing_error")
            live[lead_id] = _replay(engine, load_state(lead_id), records[:index], record.key, decided_at)
            continue
        live[lead_id] = state
        by_type[event.event_type] += 1
        by_outcome[decision["status"], decision["action"]] += 1
        score: float | None = None
        sampled: dict[str, object] | None = None
        if decision["duplicate"]:
            result.duplicates += 1
        else:
            changed.add(lead_id)
            score = decision["score"]
            if drift_sample and record.offset % drift_sample == 0 and decided.facts is not None:
                sampled = _without_history(decided.facts)
        outputs[index] = (decision_bytes, score, sampled, opportunity_out, routed_out, request_out)
    _collect(engine.model, records, outputs, failed, result)
    result.states = {lead_id: dumps(live[lead_id]) for lead_id in changed}
    if cache is not None:
        for lead_id, state in live.items():
            if state is not None:
                cache[lead_id] = state
    return result


_Output = tuple[
    bytes,  # the decision's JSON
    float | None,  # its score (None for a duplicate)
    dict[str, object] | None,  # its facts, when sampled for drift
    tuple[str, bytes] | None,  # the opportunity: its id and JSON
    tuple[str, bytes, str] | None,  # the routing decision: its key, JSON and target
    tuple[str, bytes] | None,  # the routing request: its pool and JSON
]


def _without_history(facts: dict[str, object]) -> dict[str, object]:
    """An event's facts as the drift sample keeps them: without the per-day history, which is the lead's own (the
    live state's, changed by its later events) and which no model can read (see worker.artifacts.check_servable)."""
    facts.pop(HISTORY_FACT, None)
    return facts


def _lead_order(records: Sequence[RecordLike]) -> list[int]:
    """The records' indexes grouped by key (a lead's records in their order), leads in order of first record."""
    groups: dict[bytes | None, list[int]] = {}
    for index, record in enumerate(records):
        group = groups.get(record.key)
        if group is None:
            groups[record.key] = [index]
        else:
            group.append(index)
    if len(groups) == len(records):  # one record per lead: the records' own order
        return list(range(len(records)))
    return [index for group in groups.values() for index in group]


def _collect(
    model: Model,
    records: Sequence[RecordLike],
    outputs: Sequence[_Output | None],
    failed: dict[int, EventError],
    result: BatchResult,
) -> None:
    """List the batch's outputs and dead letters in the order of their records."""
    dead_letters, decisions, scores, record_times = (
        result.dead_letters,
        result.decisions,
        result.scores,
        result.record_times,
    )
    for index, out in enumerate(outputs):
        record = records[index]
        if out is None:
            dead_letters.append((record, failed[index]))
            continue
        decision_bytes, score, sampled, opportunity, routed, request = out
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


def _replay(
    engine: Engine, stored: bytes | None, earlier: Sequence[RecordLike], key: bytes | None, decided_at: float
) -> LeadState | None:
    """The lead's state after its ``earlier`` records of the batch (those with this ``key``), from the stored one.

    Decisions are pure, so re-deciding gives the same states; a record that failed the first time fails again
    and is left out again (it went to the dead letters).
    """
    state: LeadState | None = None if stored is None else decode_state(stored)
    for record in earlier:
        if record.key != key:
            continue
        try:
            event = parse_event(record.key, record.value, engine.max_event_bytes)
            state, _ = decide(engine, None if state is None else copy.deepcopy(state), event, decided_at)
        except Exception:  # noqa: S112  # it failed the first time too, and was dead-lettered then
            continue
    return state
