"""The batch API of the core: raw records in, everything a batch produced out, ready to send and to count.

:func:`process_batch` parses each record, decides each lead's events in order with :func:`worker.core.decide`
and serialises each lead's state once. The worker's lead step, the backtest, drift and the benchmarks all run
batches through here, so they decide exactly alike.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Callable, Container, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import orjson

from worker.core import Decided, Engine, decide, decide_time, erase, set_wake
from worker.exceptions import EventError, StateError
from worker.lead import ids
from worker.lead.events import LeadActivity, LeadErased, LeadMatched, LeadUpserted
from worker.lead.parse import parse_event
from worker.lead.state import (
    HISTORY_FACT,
    LeadState,
    Position,
    decode_state,
)
from worker.routing.flow import target_label
from worker.rules.duplicates import (
    DUPLICATE_OF,
    SURVIVOR_PARTITION,
    claimed_keys,
    forwarded_activity,
    merged_engagement,
)
from worker.scoring import IS_MISSING, IS_UNSEEN, Model, feature_checks

__all__ = ["BatchResult", "Record", "RecordLike", "due", "process_batch", "process_wakeups", "trim_cache"]


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
    created_by_stage: Counter[str] = field(default_factory=Counter)  # the opportunities sent, by their stage
    routing_decisions: list[tuple[bytes, bytes]] = field(default_factory=list)
    route_requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # key: the pool's name
    routed: Counter[tuple[str, str]] = field(default_factory=Counter)  # ("", target) of direct routes
    routed_times: list[float] = field(default_factory=list)  # record timestamps of the directly routed events
    dead_letters: list[tuple[RecordLike, EventError]] = field(default_factory=list)
    states: dict[str, bytes] = field(default_factory=dict)
    erased: list[str] = field(default_factory=list)  # leads whose stored state must be deleted (lead.erased)
    # each erasure's lead's opportunity id (converted or not) and where the erasure was read (routing.sla.erased_notice)
    erased_opportunities: list[tuple[str, Position]] = field(default_factory=list)
    events_by_type: Counter[str] = field(default_factory=Counter)
    decisions_by: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicates: int = 0
    leads_created: Counter[str | None] = field(default_factory=Counter)  # new leads, by lead source at batch end
    scores: list[float] = field(default_factory=list)
    record_times: list[float] = field(default_factory=list)
    # drift: the facts of the sampled events (1 record offset in ``drift_sample``) and, per model feature, how
    # many were observed, missing or unseen (see worker.scoring.feature_checks)
    sampled_facts: list[dict[str, object]] = field(default_factory=list)
    features_observed: Counter[str] = field(default_factory=Counter)
    features_missing: Counter[str] = field(default_factory=Counter)
    features_unseen: Counter[str] = field(default_factory=Counter)
    # duplicates (see worker.rules.duplicates): claims and releases of match keys for the match step (key: the
    # match key), events forwarded to a survivor's partition of leads (partition, key, value), leads merged
    match_requests: list[tuple[bytes, bytes]] = field(default_factory=list)
    forwards: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    merged: int = 0
    wakes: dict[str, float | None] = field(default_factory=dict)  # the wake-up time of each state in ``states``
    time_in_status: list[tuple[str, float]] = field(default_factory=list)  # (status left, seconds spent in it)
    time_decisions: Counter[str] = field(default_factory=Counter)  # decisions that time triggered, by action
    wake_failures: list[tuple[str, str]] = field(default_factory=list)  # (lead id, why) of leads not re-decided
    in_block: int = 0  # events the columnar engine decided in one block (worker.columnar._whole); the rest, 0 here


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

    A ``lead.erased`` event drops the lead's state (the lead's later events start from nothing) and sends its audit
    record (no personal data) with the decisions; a lead left without a state at the batch's end is listed in
    ``erased``, for the caller to delete its stored state, and its opportunity id in ``erased_opportunities``, for
    the caller to forget the opportunity downstream (see docs/PRIVACY.md).

    ``drift_sample`` N > 0 keeps the facts of the decided (not duplicate) events whose record offset is a multiple
    of N, and counts per feature whether each is missing or unseen (0: none).
    """
    result = BatchResult()
    cached = cache if cache is not None else {}
    outputs: list[_Output | None] = [None] * len(records)
    failed: dict[int, EventError] = {}
    for lead_id, events, state in _leads(engine, records, load_state, cached, failed):
        _decide_lead_into(
            engine,
            records,
            events,
            lead_id,
            state,
            load_state,
            cached,
            decided_at,
            drift_sample,
            outputs,
            failed,
            result,
        )
    _collect(engine.model, records, outputs, failed, result)
    return result


def _leads(
    engine: Engine,
    records: Sequence[RecordLike],
    load_state: Callable[[str], bytes | None],
    cached: MutableMapping[str, LeadState],
    failed: dict[int, EventError],
    parse: Callable[[Sequence[RecordLike], list[int], int, dict[int, EventError]], list[tuple[int, Any]]] | None = None,
) -> Iterator[tuple[str, list[tuple[int, _Event]], LeadState | None]]:
    """Each lead of the batch with its parsed events (in order) and its state at the batch's start (cached, or
    stored); a record that does not parse, or a lead whose stored state cannot be read, goes to ``failed``.
    ``parse`` reads one key's records (:func:`_parsed`, unless the columnar engine gives its own)."""
    for indexes in _by_key(records):
        events = (parse or _parsed)(records, indexes, engine.max_event_bytes, failed)
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
        yield lead_id, events, state


def _decide_lead_into(
    engine: Engine,
    records: Sequence[RecordLike],
    events: list[tuple[int, _Event]],
    lead_id: str,
    state: LeadState | None,
    load_state: Callable[[str], bytes | None],
    cached: MutableMapping[str, LeadState],
    decided_at: float,
    drift_sample: int,
    outputs: list[_Output | None],
    failed: dict[int, EventError],
    result: BatchResult,
) -> None:
    """Decide one lead's events from ``state`` (its state at the batch's start) and put what came of it in
    ``result`` and ``cached``: the fast path, or event by event from the stored state when one event fails."""
    new = state is None
    try:
        state, stored, erased = _decide_lead(engine, records, events, state, decided_at, drift_sample, outputs)
    except Exception:  # one event of this lead fails: find which, from the stored state
        state, stored, erased = _decide_one_by_one(
            engine, records, events, lead_id, load_state, decided_at, drift_sample, outputs, failed
        )
    if erased and state is None:
        result.erased.append(lead_id)
    if stored is not None:
        result.states[lead_id] = stored
        result.wakes[lead_id] = None if state is None else state.get("wake_at")
        if new and state is not None:
            result.leads_created[state.get("lead_source")] += 1
    if state is not None and not (new and stored is None):
        cached[lead_id] = state
    else:  # the fast path may have changed the cached state before it failed; a new lead whose events
        # changed nothing (a match answer it never asked for) is not stored, so it is not cached either
        cached.pop(lead_id, None)


_Output = tuple[
    bytes | None,  # the decision's JSON (None for a replay: nothing is sent)
    float | None,  # its score (None for a replay)
    dict[str, object] | None,  # its facts, when sampled for drift
    tuple[str, bytes, str] | None,  # the opportunity: its id, JSON and stage
    tuple[str, bytes, str] | None,  # the routing decision: its key, JSON and target
    tuple[str, bytes] | None,  # the routing request: its pool and JSON
    str,  # the event type (lead.erased: the decision is the erasure's audit record)
    str,  # the decision's status
    str,  # the decision's action
    "_Matching | None",  # duplicates: what goes to the match step and to a survivor, and the lead.merged record
    tuple[str, float] | None,  # the status the lead left and the seconds it spent in it
]


class _Matching(NamedTuple):
    """One event's outputs for duplicates: match requests (key, JSON), the lead.merged record, forwarded events."""

    requests: list[tuple[bytes, bytes]]
    merged: bytes | None
    forwards: list[tuple[int, bytes, bytes]]


_Event = LeadUpserted | LeadActivity | LeadErased | LeadMatched


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
) -> list[tuple[int, _Event]]:
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
    events: list[tuple[int, _Event]],
    state: LeadState | None,
    decided_at: float,
    drift_sample: int,
    outputs: list[_Output | None],
) -> tuple[LeadState | None, bytes | None, bool]:
    """Decide one lead's events in order (the fast path); returns its state, the state's JSON if it changed, and
    whether the lead was erased on the way.

    Any exception escapes: the caller then decides the lead again event by event (``state`` may be half-changed).
    """
    changed = erased = False
    last_facts: dict[str, object] | None = None  # of the last decision: the wake-up time is worked out once, from it
    for index, event in events:
        record = records[index]
        if isinstance(event, LeadErased):
            outputs[index], forgotten = _erased(state, event, record, decided_at)
            if forgotten:
                state, changed, erased, last_facts = None, False, True, None
            continue
        state, decided = decide(engine, state, event, decided_at, _position(record), wake=False)
        outputs[index] = _rendered(engine, record, event.event_type, decided, drift_sample, event, state)
        if not decided.duplicate:
            changed, last_facts = True, decided.facts
    if last_facts is not None and state is not None:
        set_wake(engine.ruleset, state, last_facts, last_facts["now"])  # type: ignore[arg-type]  # a float
    stored = _serialised(state, engine.max_event_bytes) if changed and state is not None else None
    return state, stored, erased


def _decide_one_by_one(
    engine: Engine,
    records: Sequence[RecordLike],
    events: list[tuple[int, _Event]],
    lead_id: str,
    load_state: Callable[[str], bytes | None],
    decided_at: float,
    drift_sample: int,
    outputs: list[_Output | None],
    failed: dict[int, EventError],
) -> tuple[LeadState | None, bytes | None, bool]:
    """The slow path: each event on a copy of the state after the ones before it; a failing event is a dead letter
    and leaves the state as it was. Returns the lead's state, its JSON (None when nothing changed) and whether the
    lead was erased."""
    try:
        state = _decoded(lead_id, load_state(lead_id))
    except Exception as exc:
        for index, _ in events:
            outputs[index] = None
            failed[index] = _lead_error(lead_id, exc)
        return None, None, False
    stored = None
    erased = False
    for index, event in events:
        outputs[index] = None
        try:
            record = records[index]
            if isinstance(event, LeadErased):
                outputs[index], forgotten = _erased(state, event, record, decided_at)
                if forgotten:
                    state, stored, erased = None, None, True
                continue
            trial = None if state is None else copy.deepcopy(state)
            trial, decided = decide(engine, trial, event, decided_at, _position(record))
            out = _rendered(engine, record, event.event_type, decided, drift_sample, event, trial)
            trial_stored = None if decided.duplicate else _serialised(trial, engine.max_event_bytes)
        except Exception as exc:  # the event goes to the dead letters; the lead's next events go on without it
            failed[index] = _lead_error(lead_id, exc, event.event_id)
            continue
        outputs[index] = out
        state = trial
        if trial_stored is not None:
            stored = trial_stored
    return state, stored, erased


def _position(record: RecordLike) -> Position:
    return (record.topic, record.partition, record.offset, record.timestamp)


def _rendered(
    engine: Engine,
    record: RecordLike,
    event_type: str,
    decided: Decided,
    drift_sample: int,
    event: LeadUpserted | LeadActivity | LeadMatched | None = None,
    state: LeadState | None = None,
) -> _Output:
    """One decision's outputs as JSON, ready to list (a replay's: nothing to send); ``event`` and ``state`` for
    what goes to the match step (none for a decision that time triggered)."""
    decision = decided.decision
    status, action = decision["status"], decision["action"]
    if decided.duplicate:
        return (None, None, None, None, None, None, event_type, status, action, None, None)
    dumps = orjson.dumps
    opportunity = decided.opportunity
    opportunity_out = (
        None if opportunity is None else (opportunity["opportunity_id"], dumps(opportunity), opportunity["stage_name"])
    )
    routed = decided.routed
    routed_out = None
    if routed is not None:
        routed_out = (routed["opportunity_id"] or routed["lead_id"], dumps(routed), target_label(routed["target"]))
    request = decided.route_request
    request_out = None
    if request is not None:
        request.message["event_time"] = record.timestamp  # for the time from lead event to assignment
        request.message["origin"] = [*_position(record)]  # an erasure of the lead after it drops the request
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
        event_type,
        status,
        action,
        None if event is None or state is None else _matching(record, event, decided, state),
        decided.left_status,
    )


def _matching(
    record: RecordLike, event: LeadUpserted | LeadActivity | LeadMatched, decided: Decided, state: LeadState
) -> _Matching | None:
    """What a decided event sends for duplicates: its new claims (with the partition of the lead's records, where
    the answer goes), and for a duplicate its engagement for the survivor: all of it when the event merged it, else
    the event itself when it is an activity."""
    claims, merged = decided.claims, decided.merged
    forwarding = state.get(DUPLICATE_OF) is not None and (merged is not None or isinstance(event, LeadActivity))
    if not claims and not forwarding:
        return None
    dumps = orjson.dumps
    requests = [
        (
            key.encode(),
            dumps(
                {
                    "claim": key,
                    "lead_id": event.lead_id,
                    "partition": record.partition,
                    "occurred_at": decided.decision["occurred_at"],
                }
            ),
        )
        for key in claims
    ]
    forwards: list[tuple[int, bytes, bytes]] = []
    if forwarding:
        survivor = str(state[DUPLICATE_OF]).encode()
        partition = int(state[SURVIVOR_PARTITION])
        if merged is not None:
            events = merged_engagement(state)
        else:
            events = [forwarded_activity(state, event)] if isinstance(event, LeadActivity) else []
        forwards = [(partition, survivor, dumps(e)) for e in events]
    return _Matching(requests, None if merged is None else dumps(merged), forwards)


def _releases(state: LeadState | None) -> _Matching | None:
    """An erased lead's match keys, released at the match step (which forgets them if the lead holds them)."""
    keys = claimed_keys(state)
    if not keys or state is None:
        return None
    lead_id = state["lead_id"]
    return _Matching([(k.encode(), orjson.dumps({"release": k, "lead_id": lead_id})) for k in keys], None, [])


def _erased(state: LeadState | None, event: LeadErased, record: RecordLike, decided_at: float) -> tuple[_Output, bool]:
    """An erasure's output (its audit record in place of a decision; nothing for a replay) and whether the lead's
    state is to be dropped. The opportunity slot names the lead's opportunity id (no JSON), to forget it: the id
    depends on the lead id alone, so it is named whether or not the state (if any) says the lead converted, and
    erasing again reaches what an earlier erasure could not (docs/PRIVACY.md)."""
    audit = erase(state, event, decided_at, _position(record))
    if audit is None:
        return (None, None, None, None, None, None, event.event_type, "", "", None, None), False
    opportunity = (ids.opportunity_id(event.lead_id), b"", "")
    released = _releases(state)
    return (orjson.dumps(audit), None, None, opportunity, None, None, event.event_type, "", "", released, None), True


def _without_history(facts: dict[str, object]) -> dict[str, object]:
    """An event's facts as the drift sample keeps them: without the per-day history, which is the lead's own (the
    live state's, changed by its later events) and which no model can read (see worker.artifacts.check_servable).
    A copy: the facts of a lead's last decision in the batch still give its wake-up time after this."""
    if HISTORY_FACT not in facts:
        return facts
    kept = facts.copy()
    del kept[HISTORY_FACT]
    return kept


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
        decision_bytes, score, sampled, opportunity, routed, request, event_type, status, action, matching, left = out
        by_type[event_type] += 1
        if left is not None:
            result.time_in_status.append(left)
        if action:  # an erasure decides no status
            by_outcome[status, action] += 1
        if decision_bytes is None:  # a replay: counted, nothing sent
            result.duplicates += 1
            continue
        decisions.append((record.key or b"", decision_bytes))  # the lead id: parse_event checked the key
        if matching is not None:
            result.match_requests += matching.requests
            result.forwards += matching.forwards
            if matching.merged is not None:
                decisions.append((record.key or b"", matching.merged))
                result.merged += 1
        if score is not None:
            scores.append(score)
        if sampled is not None:
            _sample(model, sampled, result)
        if opportunity is not None and not action:  # an erasure's: the opportunity to forget
            result.erased_opportunities.append((opportunity[0], _position(record)))
        elif opportunity is not None:
            result.opportunities.append((opportunity[0].encode(), opportunity[1]))
            result.created_by_stage[opportunity[2]] += 1
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


TIME_TRIGGER = "time"
"""The ``event_type`` under which a batch of wake-ups lists its decisions (no event: nothing counts as one)."""


def due(state: LeadState, until: float) -> bool:
    """Whether the lead's wake-up time has come by ``until``."""
    wake = state.get("wake_at")
    return wake is not None and wake <= until


def process_wakeups(
    engine: Engine,
    leads: Sequence[str],
    load_state: Callable[[str], bytes | None],
    until: float,
    decided_at: float,
    cache: MutableMapping[str, LeadState] | None = None,
    max_steps: int = 16,
) -> BatchResult:
    """Decide again, with no event, each of ``leads`` whose wake-up time has come by ``until`` (epoch seconds):
    the batch of what time changed, ready to send and to store like an event batch's.

    Each lead is decided at its wake-up time, then at the next one if that has come too (a lead idle for months
    crosses its thresholds one after the other), at most ``max_steps`` times per batch; the rest wait for the next
    batch. A decision is listed only when it changed something (the status, or the points); the state is stored
    in any case, with its next wake-up time. Everything derives from the stored state: a batch decided again
    after a crash, before its states were stored, gives the same decisions, with the same ids.

    A lead already decided at this time (a wake-up time not yet due: an event batch stored it meanwhile) is left
    alone; one whose state cannot be read or decided is listed in ``wake_failures`` and left as it was.
    """
    result = BatchResult()
    cached = cache if cache is not None else {}
    records: list[Record] = []
    outputs: list[_Output | None] = []
    for lead_id in leads:
        try:
            state = cached.get(lead_id)
            if state is None:
                state = _decoded(lead_id, load_state(lead_id))
            if state is None or not due(state, until):  # erased, or decided since: its wake-up time as it is
                result.wakes[lead_id] = None if state is None else state.get("wake_at")
                continue
            state, sent = _woken(engine, copy.deepcopy(state), until, decided_at, max_steps)
            stored = _serialised(state, engine.max_event_bytes)
        except Exception as exc:  # the lead stays as it was; the others go on
            result.wake_failures.append((lead_id, f"{type(exc).__name__}: {exc}"))
            continue
        record = Record(lead_id.encode(), None, "", -1, -1)
        for decided in sent:
            records.append(record)
            outputs.append(_rendered(engine, record, TIME_TRIGGER, decided, 0))
            result.time_decisions[decided.decision["action"]] += 1
        result.states[lead_id] = stored
        result.wakes[lead_id] = state.get("wake_at")
        cached[lead_id] = state
    _collect(engine.model, records, outputs, {}, result)
    result.events_by_type.clear()  # none of these is an event
    return result


def _woken(
    engine: Engine, state: LeadState, until: float, decided_at: float, max_steps: int
) -> tuple[LeadState, list[Decided]]:
    """The lead decided at each of its wake-up times up to ``until`` (at most ``max_steps``), and the decisions that
    changed something."""
    sent = []
    for _ in range(max_steps):
        if not due(state, until):
            break
        points = state["points"]
        state, decided = decide_time(engine, state, decided_at)
        decision = decided.decision
        if decision["action"] != "none" or decision["points"] != points:
            sent.append(decided)
    return state, sent


def trim_cache(cache: MutableMapping[str, LeadState], size: int, keep: Container[str] = ()) -> None:
    """Bound a cache of decoded states between batches (``LEADFLOW_STATE_CACHE_SIZE``): over ``size`` states, the
    oldest half goes, except the leads in ``keep``. A lead not in the cache is decoded from its stored state, so the
    decisions are the same with any bound (the worker, ``leadflow backtest`` and ``leadflow drift`` all trim so)."""
    if len(cache) > size:
        for lead_id in list(itertools.islice(cache, len(cache) // 2)):
            if lead_id not in keep:
                del cache[lead_id]
