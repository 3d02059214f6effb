"""The columnar batch engine: the same :class:`~worker.batch.BatchResult` as :func:`worker.batch.process_batch`,
with a whole batch decided in one block over columns where that pays.

How a batch is decided:

1. a batch under ``WHOLE_FROM`` events, or any batch of an engine whose rules or model read what a decision writes
   (windowed counts, decay, ``days_in_status``, ``changed``, ``within_days``, a ``duplicates:`` section...), is
   decided by the reference itself (:func:`~worker.batch.process_batch`): there it is the faster of the two;
2. otherwise the records are parsed and grouped by lead as the reference does it (its own helpers), and the leads
   are decided in one block for the whole batch (:mod:`worker.columnar._whole`): every lead's events merged in
   order, the model, the scoring rules and the qualification rules run once over the batch's columns, and each
   lead's decisions made in order by the core's status logic (a conversion by :func:`worker.core.decide` itself);
3. a lead the block does not take (an erasure or a match step's answer among its events, a state the match step
   holds, an upsert that sets its status), a lead whose conversion ``routing:`` assigns or whose status it routes,
   and a lead that raises anything or whose state would grow over the limit, is decided from its state at the
   batch's start by the reference's per-lead path. What the reference does for those leads is what this engine
   does.

The rounds that decided the rest before (each lead's *k*-th event in round *k*, over columns) were slower than the
reference at every batch size and on every ruleset measured, and were taken out (docs/PERFORMANCE.md, tenth pass).

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
    _serialised,
    process_batch,
)
from worker.columnar._decode import fast_parsed, reference_events
from worker.columnar._model import ModelColumns
from worker.columnar._rules import RuleColumns
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
from worker.core import Engine, set_wake
from worker.exceptions import EventError
from worker.lead.events import LeadErased, LeadMatched
from worker.lead.state import LeadState

__all__ = ["WHOLE_FROM", "process_columnar"]


@dataclass(slots=True)
class _Lead:
    """One lead of the batch: its events, its state, and whether the reference decides it."""

    lead_id: str
    events: list[tuple[int, _Event]]
    state: LeadState | None
    new: bool
    next: int = 0
    changed: bool = False
    reference: bool = False  # decided by the reference's per-lead path (at the end of the batch)
    pending: list[int] = field(default_factory=list)  # records whose outputs this engine has set
    last_facts: dict[str, object] | None = None  # of its last decision: the wake-up time is worked out once, from it


class _Columns:
    """The column forms of one engine's model and ruleset (built once per engine)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.model = ModelColumns(engine.model)
        self.rules = RuleColumns(engine.ruleset)
        self.whole = whole_plan(engine, self.model, self.rules)


_BUILT: dict[int, _Columns] = {}
WHOLE_FROM = 5000
"""From this many events of the leads it takes, a batch is decided in one block (:mod:`worker.columnar._whole`).
A smaller batch, or one of an engine that the block cannot decide, goes to the reference (:func:`process_batch`):
numpy's fixed cost per column is then spread over too few events, and the rounds (since removed) were slower than
the reference (2026-12-07, the engines timed in turns: the block 0.79x the reference at 100 events a batch, 0.87x
at 500, 0.90x at 2,000, 0.98-0.99x at 5,000, 1.04x at 7,500, 1.07-1.09x at 10,000; the rounds 0.94x, 0.94x, 0.75x,
and 0.72-0.75x on 10,000-event batches of rulesets with a window or ``within_days``. With msgspec's decoder,
2026-12-08: 0.68x at 100, 0.78x at 500, 0.90x at 2,000, 0.95x at 5,000, 1.05x at 10,000; docs/PERFORMANCE.md)."""


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
    whole_from: int | None = None,
) -> BatchResult:
    """:func:`worker.batch.process_batch`, decided in one block over columns where that pays: same arguments, same
    result. ``whole_from`` overrides ``WHOLE_FROM`` (0: the block whenever the engine allows it)."""
    least = WHOLE_FROM if whole_from is None else whole_from
    columns = _columns_for(engine)
    plan = columns.whole
    if plan is None or len(records) < least:
        return process_batch(engine, records, load_state, decided_at, cache, drift_sample)
    with _collector_paused():
        return _process(engine, columns, plan, records, load_state, decided_at, cache, drift_sample, least)


def _process(
    engine: Engine,
    columns: _Columns,
    plan: WholePlan,
    records: Sequence[RecordLike],
    load_state: Callable[[str], bytes | None],
    decided_at: float,
    cache: MutableMapping[str, LeadState] | None,
    drift_sample: int,
    whole_from: int,
) -> BatchResult:
    result = BatchResult()
    cached = cache if cache is not None else {}
    outputs: list[_Output | None] = [None] * len(records)
    failed: dict[int, EventError] = {}
    leads: list[_Lead] = []
    for lead_id, events, state in _leads(engine, records, load_state, cached, failed, fast_parsed):
        lead = _Lead(lead_id, events, state, state is None)
        lead.reference = any(isinstance(event, LeadErased | LeadMatched) for _, event in events)
        leads.append(lead)

    block: list[WholeLead] = []
    taken = [lead for lead in leads if not lead.reference and takes(lead.state, lead.events)]
    if taken and sum(len(lead.events) for lead in taken) >= whole_from:
        block = _decide_whole(engine, columns, plan, records, taken, load_state, decided_at, drift_sample, outputs)
    for lead in leads:
        if lead.next < len(lead.events):  # not decided in the block: the reference decides it
            lead.reference = True

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
        probabilities, contributions = columns.model.score(frame)
        totals, matched = columns.rules.points(frame)
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
    lead_id = lead.lead_id
    events = reference_events(records, lead.events, engine.max_event_bytes, failed)  # as pydantic reads them
    state: LeadState | None
    if lead.next == 0:  # untouched: the state it started with
        state = lead.state
    else:
        try:
            state = _decoded(lead_id, load_state(lead_id))
        except Exception as exc:
            cached.pop(lead_id, None)  # the block changed the cached state
            for index, _ in events:
                outputs[index] = None
                failed[index] = _lead_error(lead_id, exc)
            return
    _decide_lead_into(
        engine, records, events, lead_id, state, load_state, cached, decided_at, drift_sample, outputs, failed, result
    )
