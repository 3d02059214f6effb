"""The columnar batch engine: the same :class:`~worker.batch.BatchResult` as :func:`worker.batch.process_batch`,
with the model and the scoring rules run over whole columns of leads.

How a batch is decided:

1. the records are parsed and grouped by lead as the reference does it (:func:`worker.batch.process_batch`'s own
   helpers);
2. a lead with an erasure, or with a match step's answer (``lead.matched``: it may merge the lead), goes through
   the reference's per-lead path as it is;
3. when nothing the engine's rules and model read is written by a decision (the default ruleset and model, and most
   rulesets without windows, decay or time in status), the leads are decided in one block for the whole batch
   (:mod:`worker.columnar._whole`), from ``WHOLE_FROM`` events on. A smaller batch, or any batch of an engine the
   block does not take, is decided by the reference itself (:func:`~worker.batch.process_batch`, before step 1):
   there it is faster than the rounds below. The leads of a block's batch that the block does not take go on to
   the rounds (and with ``rounds=True``, as the equivalence tests run it, every batch the block leaves);
4. the rest are decided in rounds: round *k* takes each lead's *k*-th event, so every lead's events stay in
   their order and each event sees the state its predecessor left, exactly as in the reference. In a round, each
   event is merged into its lead's state and its facts built by the core's own functions (a replay is decided by
   :func:`worker.core.decide` itself: it changes nothing); then the model scores the round as columns
   (:class:`~worker.columnar._model.ModelColumns`), the plain scoring rules run as masks
   (:class:`~worker.columnar._rules.RuleColumns`), and each decision is built by the core's own builder. With a
   ``duplicates:`` section an upsert's new match keys are claimed as the core claims them, and a conversion the
   claims hold is not made, as in the core (``duplicate_of`` in every decision, as the core writes it);
5. once fewer than ``SMALL_ROUND`` leads are left (the busiest leads' last events), each goes on event by event
   with :func:`worker.core.decide` itself, from the state the rounds left;
6. an event that converts its lead is decided in its round by the core's own second half
   (:func:`worker.core._decided`: the opportunity and its fields), from the state the round merged and facts built
   again from it; once converted, the lead goes on in the rounds;
7. a lead whose event would convert it with a ``routing:`` section (routing picks the owner) or route it (a status
   that ``routing.lead_statuses`` routes), or that raises anything, is dropped from the rounds and decided again
   from its stored state by the reference's per-lead path; so is a lead whose state would grow over the limit.
   What the reference does for those leads is what this engine does.

Outputs go to each record's slot and are listed in record order by the reference's own collector, so the result is
the reference's, field by field and byte for byte (``tests/unit/test_columnar.py``).

The fallback reloads a lead's state with ``load_state``, as the reference's error path does: the ``cache`` must
hold states equal to the stored ones (which the worker, the backtest and the benchmarks guarantee).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from worker.batch import (
    BatchResult,
    RecordLike,
    _collect,
    _decide_lead_into,
    _decoded,
    _Event,
    _lead_error,
    _leads,
    _Output,
    _position,
    _rendered,
    _serialised,
    process_batch,
)
from worker.columnar._frame import Frame
from worker.columnar._model import ModelColumns
from worker.columnar._rules import RuleColumns, finish
from worker.columnar._whole import (
    Verdicts,
    WholeLead,
    WholePlan,
    decide_lead,
    factors,
    frame_of,
    merge,
    qualified,
    takes,
    whole_plan,
)
from worker.core import Cause, Decided, Engine, _decided, _decision, _left_status, decide, set_wake
from worker.exceptions import EventError
from worker.lead.events import LeadActivity, LeadErased, LeadMatched, LeadUpserted
from worker.lead.state import (
    CHANGED_FACT,
    LeadState,
    apply_event,
    build_facts,
    event_digest,
    new_state,
    redelivered,
    seen,
)
from worker.rules.duplicates import DUPLICATE_OF, MATCH, claim_keys, held

__all__ = ["SMALL_ROUND", "WHOLE_FROM", "process_columnar"]


@dataclass(slots=True)
class _Lead:
    """One lead of the batch on its way through the rounds."""

    lead_id: str
    events: list[tuple[int, _Event]]
    state: LeadState | None
    new: bool
    next: int = 0
    changed: bool = False
    reference: bool = False  # decided by the reference's per-lead path (at the end of the batch)
    pending: list[int] = field(default_factory=list)  # records whose outputs this engine has set
    last_facts: dict[str, object] | None = None  # of its last decision: the wake-up time is worked out once, from it


@dataclass(slots=True)
class _Item:
    """One event of a round, merged into its lead's state, waiting for the round's columns."""

    lead: _Lead
    index: int
    event: LeadUpserted | LeadActivity
    facts: dict[str, object]
    previous_status: str
    claims: list[str]


class _Columns:
    """The column forms of one engine's model and ruleset (built once per engine)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.model = ModelColumns(engine.model)
        self.rules = RuleColumns(engine.ruleset)
        self.whole = whole_plan(engine, self.model, self.rules)


_BUILT: dict[int, _Columns] = {}
SMALL_ROUND = 64
"""Below this many leads in a round, their remaining events are decided by the per-event core: numpy's and Arrow's
fixed cost per column (tens of µs, 40-odd columns) would outweigh what columns save."""
WHOLE_FROM = 5000
"""From this many events of the leads it takes, a batch is decided in one block (:mod:`worker.columnar._whole`).
A smaller batch, or one of an engine that the block cannot decide, goes to the reference (:func:`process_batch`):
numpy's fixed cost per column is then spread over too few events, and the rounds were slower than the reference
(``bench_core --alternate``, 2026-12-07: the block 0.79x the reference at 100 events a batch, 0.87x at 500, 0.90x
at 2,000, 0.98-0.99x at 5,000, 1.04x at 7,500, 1.07-1.09x at 10,000; the rounds 0.94x, 0.94x, 0.75x, and
0.72-0.75x on 10,000-event batches of rulesets with a window or ``within_days``; docs/PERFORMANCE.md)."""


def _columns_for(engine: Engine) -> _Columns:
    built = _BUILT.get(id(engine))
    if built is None or built.engine is not engine:
        if len(_BUILT) >= 4:
            _BUILT.clear()
        built = _BUILT[id(engine)] = _Columns(engine)
    return built


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a batch is decided, and let run again after it.

    A block holds every event of its batch at once (about 20 tracked objects an event: 200,000 for a batch of
    10,000), none of them garbage until the batch is done. The collector counts allocations against its threshold
    (``LEADFLOW_GC_THRESHOLD``, 50,000), so it ran several times in each batch, each time walking every one of them
    and moving them up a generation, only for them to be freed by reference counting at the batch's end: 9-34 % of
    a batch's time (bench_core, batches of 10,000, alternated in one process; docs/PERFORMANCE.md). Paused, it runs
    between batches as before, on what the batches left (the states they added). Reference counting still frees
    what a batch drops at once; only cyclic garbage (an exception's traceback, on a dead letter) waits for the
    collector's next run, after the batch.
    """
    if not gc.isenabled():  # LEADFLOW_GC_THRESHOLD=0 leaves Python's settings alone; so do we
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def process_columnar(
    engine: Engine,
    records: Sequence[RecordLike],
    load_state: Callable[[str], bytes | None],
    decided_at: float,
    cache: MutableMapping[str, LeadState] | None = None,
    drift_sample: int = 0,
    *,
    small_round: int | None = None,
    whole_from: int | None = None,
    rounds: bool = False,
) -> BatchResult:
    """:func:`worker.batch.process_batch`, decided in columns: same arguments, same result.

    A batch that the block does not take (fewer than ``WHOLE_FROM`` events, or an engine whose rules or model read
    what a decision writes) is decided by the reference itself, which is faster there; with ``rounds`` it goes to
    the rounds instead (the equivalence tests run them so). ``small_round`` overrides ``SMALL_ROUND`` (0: every
    round in columns), ``whole_from`` ``WHOLE_FROM`` (0: the block whenever the engine allows it)."""
    least = WHOLE_FROM if whole_from is None else whole_from
    if not rounds and (_columns_for(engine).whole is None or len(records) < least):
        return process_batch(engine, records, load_state, decided_at, cache, drift_sample)
    with _collector_paused():
        return _process(engine, records, load_state, decided_at, cache, drift_sample, small_round, least)


def _process(
    engine: Engine,
    records: Sequence[RecordLike],
    load_state: Callable[[str], bytes | None],
    decided_at: float,
    cache: MutableMapping[str, LeadState] | None,
    drift_sample: int,
    small_round: int | None,
    whole_from: int,
) -> BatchResult:
    least = SMALL_ROUND if small_round is None else small_round
    result = BatchResult()
    cached = cache if cache is not None else {}
    outputs: list[_Output | None] = [None] * len(records)
    failed: dict[int, EventError] = {}
    leads: list[_Lead] = []
    for lead_id, events, state in _leads(engine, records, load_state, cached, failed):
        lead = _Lead(lead_id, events, state, state is None)
        lead.reference = any(isinstance(event, LeadErased | LeadMatched) for _, event in events)
        leads.append(lead)

    columns = _columns_for(engine)
    plan = columns.whole
    block: list[WholeLead] = []
    if plan is not None:
        taken = [lead for lead in leads if not lead.reference and takes(lead.state, lead.events)]
        if taken and sum(len(lead.events) for lead in taken) >= whole_from:
            block = _decide_whole(engine, columns, plan, records, taken, load_state, decided_at, drift_sample, outputs)
    active = [lead for lead in leads if not lead.reference and lead.next < len(lead.events)]
    while active:
        if len(active) < least:  # a few busy leads left: columns would cost more than they save
            for lead in active:
                _decide_rest(engine, records, lead, decided_at, drift_sample, outputs)
            break
        merged = [_merged(engine, records, lead, decided_at, drift_sample, outputs) for lead in active]
        items = [item for item in merged if item is not None]
        _decide_round(engine, columns, records, items, decided_at, drift_sample, outputs)
        active = [lead for lead in active if not lead.reference and lead.next < len(lead.events)]

    states = result.states
    for lead in leads:
        stored = None
        if not lead.reference and lead.changed and lead.state is not None:
            try:
                if lead.last_facts is not None:  # once per lead and batch, as the reference does
                    set_wake(engine.ruleset, lead.state, lead.last_facts, lead.last_facts["now"])  # type: ignore[arg-type]
                stored = _serialised(lead.state, engine.max_event_bytes)
            except Exception:  # over the limit (or the wake-up time failed): the reference finds the event
                _to_reference(lead, outputs)
        if lead.reference:
            _reference_lead(
                engine, records, lead, load_state, cached, decided_at, drift_sample, outputs, failed, result
            )
            continue
        if stored is not None:
            states[lead.lead_id] = stored
            result.wakes[lead.lead_id] = None if lead.state is None else lead.state.get("wake_at")
            if lead.new and lead.state is not None:
                result.leads_created[lead.state.get("lead_source")] += 1
        if lead.state is not None and not (lead.new and stored is None):  # as process_batch caches
            cached[lead.lead_id] = lead.state
        else:
            cached.pop(lead.lead_id, None)
    result.in_block = sum(len(whole.rows) for whole in block if not whole.lead.reference)
    _collect(engine.model, records, outputs, failed, result)
    return result


def _decide_whole(
    engine: Engine,
    columns: _Columns,
    plan: WholePlan,
    records: Sequence[RecordLike],
    leads: list[_Lead],
    load_state: Callable[[str], bytes | None],
    decided_at: float,
    drift_sample: int,
    outputs: list[_Output | None],
) -> list[WholeLead]:
    """The leads decided in one block (:mod:`worker.columnar._whole`), returned; a lead that is routed or fails
    goes to the reference."""

    def to_reference(lead: _Lead) -> None:
        _to_reference(lead, outputs)

    taken, built, nows, event_values = merge(engine, plan, records, leads, drift_sample, to_reference)
    if not taken:
        return taken
    try:
        frame = frame_of(plan, built, nows, event_values)
        probabilities, contributions = columns.model.score(frame)  # type: ignore[arg-type]  # a frame of columns
        totals, matched = columns.rules.points(frame, shared=True)  # type: ignore[arg-type]  # read only
        if not engine.ruleset._whole:
            totals = [round(total, 4) for total in totals]
        verdicts = Verdicts(
            totals,
            probabilities,
            matched,
            qualified(plan, frame, totals, probabilities),
            factors(columns.model, frame, contributions, engine.top_factors),
        )
    except Exception:  # the reference decides these leads and says what failed
        for whole in taken:
            to_reference(whole.lead)
        return []

    for whole in taken:
        lead = whole.lead

        def stored(lead_id: str = lead.lead_id) -> LeadState | None:
            return _decoded(lead_id, load_state(lead_id))

        try:
            decide_lead(engine, plan, records, whole, verdicts, decided_at, drift_sample, outputs, stored)
        except Exception:  # routed, or failed: the reference decides the lead
            to_reference(lead)
    return taken


def _decide_rest(
    engine: Engine,
    records: Sequence[RecordLike],
    lead: _Lead,
    decided_at: float,
    drift_sample: int,
    outputs: list[_Output | None],
) -> None:
    """The lead's remaining events decided one by one by :func:`worker.core.decide` itself, from the state the
    rounds left (conversions and routing included)."""
    try:
        while lead.next < len(lead.events):
            index, event = lead.events[lead.next]
            lead.next += 1
            assert not isinstance(event, LeadErased)  # noqa: S101  # leads with an erasure go to the reference
            record = records[index]
            lead.state, decided = decide(engine, lead.state, event, decided_at, _position(record), wake=False)
            outputs[index] = _rendered(engine, record, event.event_type, decided, drift_sample, event, lead.state)
            lead.pending.append(index)
            if not decided.duplicate:
                lead.changed, lead.last_facts = True, decided.facts
    except Exception:  # the reference decides the lead from its stored state and says what failed
        _to_reference(lead, outputs)


def _merged(
    engine: Engine,
    records: Sequence[RecordLike],
    lead: _Lead,
    decided_at: float,
    drift_sample: int,
    outputs: list[_Output | None],
) -> _Item | None:
    """The lead's next event merged into its state with the core's functions (the first half of
    :func:`worker.core.decide`); a replay is decided by ``decide`` itself and yields no item."""
    index, event = lead.events[lead.next]
    lead.next += 1
    assert not isinstance(event, LeadErased | LeadMatched)  # noqa: S101  # such leads go to the reference
    try:
        record = records[index]
        position = _position(record)
        now = event.occurred_at.timestamp()
        state = lead.state
        if state is None:
            state = lead.state = new_state(lead.lead_id, now)
        digest = event_digest(event.event_id)
        if seen(state, digest) or redelivered(state, position):
            _, decided = decide(engine, state, event, decided_at, position)  # a replay: nothing changes
            outputs[index] = _rendered(engine, record, event.event_type, decided, drift_sample, event, state)
            lead.pending.append(index)
            return None
        previous_status: str = state["status"] or engine.ruleset.default_status
        changed = apply_event(state, event, digest, now, engine.dedupe_window)
        claims: list[str] = []
        duplicates = engine.ruleset.duplicates
        if duplicates is not None and (isinstance(event, LeadUpserted) or MATCH not in state):
            claims = claim_keys(duplicates, state)  # as the core claims them
        state["source"] = list(position)
        facts = build_facts(state, now, event, changed)
    except Exception:  # the reference decides the lead and says what failed
        _to_reference(lead, outputs)
        return None
    return _Item(lead, index, event, facts, previous_status, claims)


def _decide_round(
    engine: Engine,
    columns: _Columns,
    records: Sequence[RecordLike],
    items: list[_Item],
    decided_at: float,
    drift_sample: int,
    outputs: list[_Output | None],
) -> None:
    """Score, evaluate and decide one round's events: the model and the scoring rules as columns, the rest per lead
    by the ruleset's and the core's own code (the second half of :func:`worker.core.decide`)."""
    if not items:
        return
    ruleset = engine.ruleset
    facts = [item.facts for item in items]
    frame = Frame(facts)
    try:
        probabilities, contributions = columns.model.score(frame)
        for lead_facts, probability in zip(facts, probabilities, strict=True):
            lead_facts["score"] = probability
            for name, compute in ruleset.derived_facts:
                lead_facts[name] = compute(lead_facts)
        frame.forget(["score", *(name for name, _ in ruleset.derived_facts)])  # set since the model read them
        totals, matched = columns.rules.points(frame)
        outcomes = [finish(ruleset, f, t, m) for f, t, m in zip(facts, totals, matched, strict=True)]
        factors = columns.model.factors(contributions, frame, engine.top_factors)
    except Exception:  # the reference decides these leads and says what failed
        for item in items:
            _to_reference(item.lead, outputs)
        return
    default_status, statuses, routing = ruleset.default_status, ruleset.statuses, ruleset.routing
    for item, probability, (points, rule), matched_rules, lead_factors in zip(
        items, probabilities, outcomes, matched, factors, strict=True
    ):
        lead = item.lead
        state = lead.state
        assert state is not None  # noqa: S101  # _merged made it
        status: str = state["status"] or default_status  # a producer may have set it
        if rule is not None and rule.convert and held(state):  # a duplicate, or its claims unanswered: not yet
            rule = None
        action = "none"
        if rule is not None and not state["converted"]:
            if rule.convert:  # a conversion (an opportunity): the core decides this event from the merged state
                if routing is None:
                    _decide_item(engine, records, item, decided_at, drift_sample, outputs)
                else:  # with routing too: the reference decides the lead
                    _to_reference(lead, outputs)
                continue
            status = rule.status
            if status != item.previous_status:
                status_def = statuses.get(status)
                action = "disqualified" if status_def is not None and status_def.disqualified else "status_changed"
        elif status != item.previous_status:
            action = "status_changed"
        if action == "status_changed" and routing is not None and status in routing.lead_statuses:
            _to_reference(lead, outputs)  # the lead is routed: the reference decides it
            continue
        state["points"] = points
        state["score"] = probability
        state["status"] = status
        event = item.event
        try:
            now: float = item.facts["now"]  # type: ignore[assignment]  # build_facts sets it to a float
            left = _left_status(state, item.previous_status, status, now)
            decision = _decision(
                engine,
                Cause(lead.lead_id, event.event_id, event.occurred_at, "event"),
                decided_at,
                status,
                item.previous_status,
                points,
                probability,
                lead_factors,
                matched_rules,
                action,
            )
            decision["opportunity_id"] = state["opportunity_id"]
            decision["duplicate_of"] = state.get(DUPLICATE_OF)
            decided = Decided(decision, None, item.facts, claims=item.claims, left_status=left)
            record = records[item.index]
            outputs[item.index] = _rendered(engine, record, event.event_type, decided, drift_sample, event, state)
        except Exception:
            _to_reference(lead, outputs)
            continue
        lead.pending.append(item.index)
        lead.changed, lead.last_facts = True, item.facts


def _decide_item(
    engine: Engine,
    records: Sequence[RecordLike],
    item: _Item,
    decided_at: float,
    drift_sample: int,
    outputs: list[_Output | None],
) -> None:
    """The round's event decided by the core's own second half (:func:`worker.core._decided`: scoring, rules,
    conversion), from the state :func:`_merged` left and facts built again from it as ``decide`` builds them (the
    round's copy has its columns' results in it)."""
    lead, event = item.lead, item.event
    state = lead.state
    assert state is not None  # noqa: S101  # _merged made it
    try:
        now: float = item.facts["now"]  # type: ignore[assignment]  # build_facts sets it to a float
        facts = build_facts(state, now, event, item.facts[CHANGED_FACT])  # type: ignore[arg-type]  # what it changed
        cause = Cause(lead.lead_id, event.event_id, event.occurred_at, "event")
        decided = _decided(engine, state, facts, cause, decided_at, item.previous_status, wake=False)
        if item.claims:
            decided = decided._replace(claims=item.claims)
        outputs[item.index] = _rendered(
            engine, records[item.index], event.event_type, decided, drift_sample, event, state
        )
    except Exception:
        _to_reference(lead, outputs)
        return
    lead.pending.append(item.index)
    lead.changed, lead.last_facts = True, facts


def _to_reference(lead: _Lead, outputs: list[_Output | None]) -> None:
    """Hand the lead to the reference's per-lead path: what this engine set for it is dropped."""
    lead.reference = True
    for index in lead.pending:
        outputs[index] = None
    lead.pending.clear()


def _reference_lead(
    engine: Engine,
    records: Sequence[RecordLike],
    lead: _Lead,
    load_state: Callable[[str], bytes | None],
    cached: MutableMapping[str, LeadState],
    decided_at: float,
    drift_sample: int,
    outputs: list[_Output | None],
    failed: dict[int, EventError],
    result: BatchResult,
) -> None:
    """One lead decided as :func:`worker.batch.process_batch` decides it, from its state at the batch's start."""
    lead_id, events = lead.lead_id, lead.events
    state: LeadState | None
    if lead.next == 0:  # untouched: the state it started with
        state = lead.state
    else:
        try:
            state = _decoded(lead_id, load_state(lead_id))
        except Exception as exc:
            cached.pop(lead_id, None)  # the rounds changed the cached state
            for index, _ in events:
                outputs[index] = None
                failed[index] = _lead_error(lead_id, exc)
            return
    _decide_lead_into(
        engine, records, events, lead_id, state, load_state, cached, decided_at, drift_sample, outputs, failed, result
    )
