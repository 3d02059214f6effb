"""The columnar engine against the reference: the same BatchResult, field by field and byte for byte.

Generated streams of several interleaved leads (upserts and activities, replays, erasures, the match step's
answers, hostile records), cut into batches, decided from stored states (or none; some stored under the default
ruleset with a ``duplicates:`` section, so duplicates and pending claims meet a ruleset without one) and with or
without the state cache, under generated rulesets (every operator of the rule language in scoring and qualification
rules, ``per`` and ``max``, decay, windows, statuses that change and convert, with or without a ``duplicates:``
section) and the default ruleset and model, with and without one; and the training generator's events under the
default ruleset and model. The property runs 150 examples in ``make test`` and ``LEADFLOW_COLUMNAR_EXAMPLES`` (3,000)
in ``make fuzz``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import gc
import itertools
import os
import random
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import worker.columnar._engine as columnar_engine
from tests.hostile import event, hostile_records
from tests.routed_rules import routed
from tests.unit.rules.test_property import FIELDS, conditions
from worker.batch import BatchResult, Record, process_batch, process_wakeups
from worker.columnar import batch_engine, process_columnar
from worker.columnar._frame import factorise
from worker.core import Engine
from worker.rules import default_ruleset_path, load_ruleset, parse_ruleset
from worker.rules.duplicates import DuplicateRules
from worker.scoring import Model, default_model_path, load_model
from worker.scoring.training import generate

MODEL = load_model(default_model_path())
DEFAULT = Engine(load_ruleset(default_ruleset_path()), MODEL)
_MATCH_RULES = [[["email"]], [["email"], ["name", "company"]], [["email_domain", "last_name"]]]
DEFAULT_DUPLICATES = Engine(
    parse_ruleset(
        default_ruleset_path().read_text() + yaml.safe_dump({"duplicates": {"match": _MATCH_RULES[1]}}), "<dup>"
    ),
    MODEL,
)
ROUTED = Engine(parse_ruleset(routed("        - {id: sam}\n        - {id: sue}\n"), "<routed>"), MODEL)
"""A demo request converts the lead, and routing picks its owner: such conversions go to the reference."""
_POINTS_FEATURE = {
    "name": "points_so_far",
    "kind": "numeric",
    "path": "points",
    "label": "points so far",
    "transform": "log1p",
    "clip": [0.0, 1000.0],
    "missing": 0.0,
    "missing_indicator": False,
    "mean": [1.0],
    "scale": [2.0],
    "coef": [0.7],
}
POINTS_READ = Engine(
    DEFAULT.ruleset,
    Model.from_dict(MODEL.to_dict() | {"features": [*MODEL.to_dict()["features"], _POINTS_FEATURE]}, source="<pts>"),
)
"""The default ruleset, with a model that also reads ``points``: the points of the lead's previous decision, which
the engine must show it (not the event's own, which the rules add up after the model has scored)."""
DECIDED_AT = 1_800_000_000.0
NOW = 1_800_000_000.0
DAY = 86400.0
EXAMPLES = int(os.environ.get("LEADFLOW_COLUMNAR_EXAMPLES", "150"))


def _compare(
    engine: Engine,
    batches: list[list[Record]],
    stored: dict[str, bytes],
    use_cache: bool,
    wake_until: float | None = None,
    whole_from: int | None = 0,
) -> None:
    """Decide the batches with both engines, each from its own copy of the stored states and cache; every
    BatchResult, and the cache after each batch, must be equal. ``whole_from`` 0: the whole batch in one block
    where the engine allows it (None: the engine's default, under which a batch goes to the reference).
    ``wake_until``: after each batch, the leads whose wake-up time has come by then are decided by time (by the
    reference's ``process_wakeups``, whichever engine decides events), so the next batch meets what time changed."""
    runs: list[list[tuple[BatchResult, dict[str, Any] | None]]] = []
    columnar = functools.partial(process_columnar, whole_from=whole_from)
    for decide in (process_batch, columnar):
        store = dict(stored)
        cache: dict[str, Any] | None = {} if use_cache else None
        out = []
        for batch in batches:
            result = decide(engine, batch, store.get, DECIDED_AT, cache, drift_sample=3)
            store.update(result.states)
            for lead_id in result.erased:
                store.pop(lead_id, None)
            out.append((result, None if cache is None else orjson.loads(orjson.dumps(cache))))
            if wake_until is not None:
                waking = sorted(lead for lead, wake in result.wakes.items() if wake is not None)
                woken = process_wakeups(engine, waking, store.get, wake_until, DECIDED_AT, cache)
                store.update(woken.states)
                out.append((woken, None if cache is None else orjson.loads(orjson.dumps(cache))))
        runs.append(out)
    for number, ((expected, expected_cache), (got, got_cache)) in enumerate(zip(*runs, strict=True)):
        for spec in dataclasses.fields(BatchResult):
            if spec.name == "in_block":  # how the columnar engine decided them: 0 from the reference
                continue
            want, have = getattr(expected, spec.name), getattr(got, spec.name)
            if spec.name == "dead_letters":
                want = [(r.offset, e.reason, str(e)) for r, e in want]
                have = [(r.offset, e.reason, str(e)) for r, e in have]
            elif spec.name == "states":
                assert list(have) == list(want), f"batch {number}: the states' leads or their order"
            assert have == want, f"batch {number}: {spec.name} differs"
        assert got_cache == expected_cache, f"batch {number}: the state cache differs"


# --- generated rulesets ------------------------------------------------------------------------------------------

_points = st.one_of(st.integers(-20, 40).filter(bool), st.sampled_from([2.5, -0.75, 0.1, 1e-3]))
_scoring = st.one_of(
    st.tuples(conditions, _points).map(lambda p: {"when": p[0], "points": p[1]}),
    st.tuples(st.deferred(lambda: _clock), _points).map(lambda p: {"when": p[0], "points": p[1]}),
    st.tuples(_points, st.sampled_from([None, 5, 7.5])).map(
        lambda p: {"per": "activity.demo_request.count", "points": p[0]} | ({"max": p[1]} if p[1] else {})
    ),
    st.tuples(conditions, _points, st.sampled_from([30, 7])).map(
        lambda p: {
            "when": {"all": [p[0], {"field": "activity.page_view.count", "op": "gte", "value": 1}]},
            "points": p[1],
            "decay": {"percent": 50, "days": p[2]},
        }
    ),
)
_clock = st.tuples(
    st.sampled_from(["days_in_status", "days_since_last_activity", "activity.page_view.days_since"]),
    st.sampled_from(["gte", "lt"]),
    st.sampled_from([0.5, 3, 20]),
).map(lambda p: {"field": p[0], "op": p[1], "value": p[2]})
"""A test that time alone can flip (the lead gets a wake-up time)."""
_gates = st.one_of(
    conditions,
    _clock,
    st.tuples(st.sampled_from(["points", "score"]), st.sampled_from(["gte", "lt"]), st.sampled_from([0, 0.3, 5])).map(
        lambda p: {"field": p[0], "op": p[1], "value": p[2]}
    ),
)
_statuses = st.sampled_from(["Contacted", "Unqualified", "Qualified", "Open"])
_qualification = st.tuples(_gates, _statuses).map(
    lambda p: {"when": p[0], "status": p[1]} | ({"convert": True} if p[1] == "Qualified" else {})
)
# What the whole-batch block can take: no decay, no time in status (a generated condition may still read a window,
# ``changed`` or ``within_days``: such an engine goes to the reference, see _blockable)
_block_scoring = st.one_of(_scoring.filter(lambda rule: "decay" not in rule and "days_in_status" not in str(rule)))
_block_qualification = st.tuples(_gates.filter(lambda gate: "days_in_status" not in str(gate)), _statuses).map(
    lambda p: {"when": p[0], "status": p[1]} | ({"convert": True} if p[1] == "Qualified" else {})
)


def _blockable(engine: Engine) -> bool:
    return columnar_engine._columns_for(engine).whole is not None


@st.composite
def rulesets(draw: st.DrawFn, blockable: bool = False) -> Engine:
    """A generated ruleset with the default model; ``blockable``: of the kinds the whole-batch block can take."""
    scoring = draw(st.lists(_block_scoring if blockable else _scoring, min_size=1, max_size=6))
    qualification = draw(st.lists(_block_qualification if blockable else _qualification, max_size=3))
    doc = {
        "version": "1",
        "fields": FIELDS,
        "conversion": {"queue": "Inbound"},
        "scoring": [{"id": f"s{i}", **rule} for i, rule in enumerate(scoring)],
        "qualification": [{"id": f"q{i}", **rule} for i, rule in enumerate(qualification)],
    }
    if not blockable and draw(st.booleans()):
        doc["duplicates"] = {"match": draw(st.sampled_from(_MATCH_RULES))} | draw(
            st.sampled_from([{}, {"free_email": "match"}])
        )
    return Engine(parse_ruleset(yaml.safe_dump(doc), "<generated>"), MODEL)


# --- generated streams ------------------------------------------------------------------------------------------

_LEADS = ["L1", "L2", "L3", "L4"]
_TEXTS = ["Acme", "acme", "aB-", "ß", "", "Beta Corp", "VP Sales"]
_text = st.sampled_from(_TEXTS)
_EMAILS = ["jo@gmail.com", "jo@acme.com", "A.B@mail.acme.com"]
_FIRST_NAMES = ["Jo", "Zoë"]
_LAST_NAMES = ["Doe", "O'Neil"]


def _match_keys() -> list[str]:
    """Every key the generated leads can claim under the generated match rules (and one nobody claims): the keys
    of the match step's generated answers, most of which answer a claim."""
    keys = {"f" * 32}
    for rules, free_email in itertools.product(_MATCH_RULES, ("skip", "match")):
        compiled = DuplicateRules(tuple(tuple(parts) for parts in rules), free_email=free_email)  # type: ignore[arg-type]
        for email, first, last, company in itertools.product(_EMAILS, _FIRST_NAMES, _LAST_NAMES, _TEXTS):
            keys.update(compiled.keys({"email": email, "first_name": first, "last_name": last, "company": company}))
    return sorted(keys)


_answers = st.tuples(st.sampled_from(_match_keys()), st.sampled_from(_LEADS), st.integers(0, 1))
_lead_fields = st.fixed_dictionaries(
    {},
    optional={
        "company": st.none() | _text,
        "title": st.none() | _text,
        "email": st.none() | st.sampled_from(_EMAILS),
        "first_name": st.none() | st.sampled_from(_FIRST_NAMES),
        "last_name": st.none() | st.sampled_from(_LAST_NAMES),
        "website": st.none() | st.sampled_from(["https://www.acme.com/x", "acme.co.uk", "web"]),
        "number_of_employees": st.none() | st.integers(0, 2000),
        "annual_revenue": st.none() | st.sampled_from([0.0, 1e7, 2.5e8, 123456.5]),
        "lead_source": st.none() | st.sampled_from(["Web", "Partner", "Purchased List", "Other"]),
        "industry": st.none() | st.sampled_from(["Software", "Retail"]),
        "status": st.none() | st.sampled_from(["Open", "Contacted", "Working"]),
        "custom": st.dictionaries(
            st.sampled_from(["n", "t", "b", "at"]),
            st.none() | st.integers(-3, 3) | st.floats(-5, 50) | st.booleans() | _text | st.just(-0.0),
            max_size=3,
        ),
    },
)
_activity = st.fixed_dictionaries(
    {"type": st.sampled_from(["demo_request", "page_view", "email_click", "meeting", "unsubscribe"])},
    optional={"count": st.integers(1, 4)},
)


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[bytes | None, bytes | None]]:
    """Records of a few interleaved leads: valid events at times around NOW (some late, some replayed), erasures,
    hostile records."""
    out: list[tuple[bytes | None, bytes | None]] = []
    hostile = iter(hostile_records(random.Random(draw(st.integers(0, 2**32))), 40))  # one for each record at most
    for _ in range(draw(st.integers(1, 40))):
        roll = draw(st.integers(0, 21))
        lead = draw(st.sampled_from(_LEADS))
        when = dt.datetime.fromtimestamp(NOW + draw(st.integers(-120, 30)) * DAY / 4, dt.UTC).isoformat()
        event_id = draw(st.sampled_from(["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9"])) + lead
        if roll < 2:
            _, key, value = next(hostile)
            out.append((key, value))
        elif roll < 4 and out:
            out.append(draw(st.sampled_from(out)))  # the same record again
        elif roll < 5:
            out.append((lead.encode(), orjson.dumps(event(lead, "x" + event_id, "lead.erased", when))))
        elif roll < 10:
            body = event(lead, event_id, "lead.upserted", when, lead=draw(_lead_fields))
            out.append((lead.encode(), orjson.dumps(body)))
        elif roll >= 20:  # the match step's answer to one of the lead's claims (or to none)
            key, survivor, partition = draw(_answers)
            body = event(lead, "m" + event_id, "lead.matched", when)
            del body["activity"]
            body |= {"match_key": key, "survivor_id": survivor, "survivor_partition": partition}
            out.append((lead.encode(), orjson.dumps(body)))
        else:
            body = event(lead, event_id, "lead.activity", when, activity=draw(_activity))
            out.append((lead.encode(), orjson.dumps(body)))
    return out


def _records(stream: list[tuple[bytes | None, bytes | None]], start: int = 0) -> list[Record]:
    return [Record(key, value, "leads", 0, start + i, 1_700_000_000.0 + i) for i, (key, value) in enumerate(stream)]


def _cut(records: list[Record], cuts: list[int]) -> list[list[Record]]:
    points = sorted({c % len(records) for c in cuts} - {0}) if records else []
    edges = [0, *points, len(records)]
    return [records[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    engine=st.one_of(
        rulesets(),
        rulesets(blockable=True).filter(_blockable),  # the block's own share: most generated rulesets go elsewhere
        st.sampled_from([DEFAULT, DEFAULT_DUPLICATES, POINTS_READ, ROUTED]),
    ),
    before_duplicates=st.sampled_from([False, False, True]),  # a name, not the engine: its repr is 30 kB
    before=streams(),
    stream=streams(),
    cuts=st.lists(st.integers(1, 40), max_size=4),
    use_cache=st.booleans(),
    wake_days=st.sampled_from([None, 0, 10, 60]),
    whole_from=st.sampled_from([0, 0, 0, None]),  # None: the worker's way (these small batches: the reference)
)
def test_columnar_equals_the_reference(
    engine: Engine,
    before_duplicates: bool,
    before: list[tuple[bytes | None, bytes | None]],
    stream: list[tuple[bytes | None, bytes | None]],
    cuts: list[int],
    use_cache: bool,
    wake_days: int | None,
    whole_from: int | None,
) -> None:
    stored: dict[str, bytes] = {}  # states stored by the reference from an earlier stream (maybe another ruleset's)
    for record in _records(before, 1000):
        before_engine = DEFAULT_DUPLICATES if before_duplicates else engine
        stored.update(process_batch(before_engine, [record], stored.get, DECIDED_AT - 1).states)
    wake_until = None if wake_days is None else NOW + wake_days * DAY
    batches = _cut(_records(stream, 5000), cuts)
    _compare(engine, batches, stored, use_cache, wake_until, whole_from)


@pytest.mark.parametrize(
    ("leads", "batch", "whole_from"),
    [(40, 10_000, 0), (40, 10_000, None), (120, 500, 0), (150, 2_000, 0)],
)
def test_columnar_equals_the_reference_on_the_training_generator(
    leads: int, batch: int, whole_from: int | None
) -> None:
    data = generate(leads, seed=7, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6)
    records = _records([(e["lead_id"].encode(), orjson.dumps(e)) for e in data.events])
    batches = [records[i : i + batch] for i in range(0, len(records), batch)]
    for engine in (DEFAULT, ROUTED, POINTS_READ):
        _compare(engine, batches, {}, use_cache=True, whole_from=whole_from)
        converted = sum(_conversions(process_columnar(engine, b, {}.get, DECIDED_AT)) for b in batches[:1])
        assert converted  # conversions happen (in the columns, or by the reference's path when routing picks owners)


def _conversions(result: BatchResult) -> int:
    """Leads converted in the batch: opportunities sent, or waiting for routing to pick their owner."""
    return len(result.opportunities) + len(result.route_requests)


def test_a_break_in_the_columns_is_caught() -> None:
    """The comparison fails when the columnar engine differs (a test that cannot fail is a defect)."""
    records = _records([(b"L1", orjson.dumps(event("L1", "e1", "lead.activity", activity={"type": "meeting"})))])
    good = process_columnar(DEFAULT, records, {}.get, DECIDED_AT, whole_from=0)
    assert good.decisions == process_batch(DEFAULT, records, {}.get, DECIDED_AT).decisions
    shifted = process_columnar(DEFAULT, records, {}.get, DECIDED_AT + 1, whole_from=0)
    assert shifted.decisions != good.decisions


def test_the_engine_is_selected_by_name() -> None:
    assert batch_engine("reference") is process_batch
    assert batch_engine("columnar") is process_columnar


@pytest.mark.parametrize("engine", [DEFAULT, ROUTED], ids=["default", "routed"])
def test_most_leads_are_decided_in_columns(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    """The fallback is for the rare lead: an engine that silently sent every lead to the reference would pass the
    equivalence tests and be no columnar engine at all. Conversions are made in the block (by the core from the
    state as it stood); only a conversion that routing assigns falls back to the reference's per-lead path."""
    data = generate(60, seed=7, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6)
    records = _records([(e["lead_id"].encode(), orjson.dumps(e)) for e in data.events])
    fallen: list[str] = []
    reference_lead = columnar_engine._reference_lead

    def counted(engine: Engine, records: Any, lead: Any, *rest: Any) -> None:
        fallen.append(lead.lead_id)
        reference_lead(engine, records, lead, *rest)

    monkeypatch.setattr(columnar_engine, "_reference_lead", counted)
    result = process_columnar(engine, records, {}.get, DECIDED_AT, whole_from=0)
    leads = {r.key for r in records}
    assert len(fallen) < len(leads) / 3, (len(fallen), len(leads))
    assert _conversions(result)  # a routed conversion goes to the reference, so the fallback is exercised
    assert bool(fallen) == (engine is ROUTED), fallen
    # the block's events are counted, the reference's not
    assert result.in_block == sum(1 for r in records if r.key is not None and r.key.decode() not in fallen)


def test_what_the_block_does_not_take_the_reference_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch under WHOLE_FROM events, or of an engine whose rules read what a decision writes, is decided by the
    reference itself (faster there than the block); from WHOLE_FROM events on, an engine the block takes gets it."""
    data = generate(60, seed=7, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6)
    records = _records([(e["lead_id"].encode(), orjson.dumps(e)) for e in data.events])
    calls: collections.Counter[str] = collections.Counter()
    for name in ("process_batch", "decide_lead"):
        original = getattr(columnar_engine, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(columnar_engine, name, counted)
    assert len(records) < columnar_engine.WHOLE_FROM
    assert process_columnar(DEFAULT, records, {}.get, DECIDED_AT).in_block == 0
    assert calls == {"process_batch": 1}, calls
    calls.clear()
    process_columnar(POINTS_READ, records, {}.get, DECIDED_AT, whole_from=0)
    assert calls == {"process_batch": 1}, calls
    calls.clear()
    monkeypatch.setattr(columnar_engine, "WHOLE_FROM", len(records))
    process_columnar(DEFAULT, records, {}.get, DECIDED_AT)
    assert calls == {"decide_lead": len({r.key for r in records})}, calls


def test_the_whole_batch_mode_is_taken_where_nothing_reads_a_decision() -> None:
    """The default ruleset and model read nothing a decision writes: one block for the whole batch. A model that
    reads the previous decision's points, a ``duplicates:`` section or windowed counts go to the reference."""
    windowed = parse_ruleset(
        "version: '1'\nscoring:\n  - id: busy\n"
        "    when: {field: activity.page_view.count_in_days(7), op: gte, value: 2}\n    points: 5\n",
        "<windowed>",
    )
    changed = parse_ruleset(
        "version: '1'\nscoring:\n  - id: moved\n    when: {field: email, op: changed}\n    points: 5\n", "<changed>"
    )
    assert columnar_engine._columns_for(DEFAULT).whole is not None
    assert columnar_engine._columns_for(ROUTED).whole is not None
    for engine in (POINTS_READ, DEFAULT_DUPLICATES, Engine(windowed, MODEL), Engine(changed, MODEL)):
        assert columnar_engine._columns_for(engine).whole is None


def test_most_events_are_decided_in_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the whole-batch mode every lead is merged and decided in one block, conversions included (by the core from
    the state rebuilt as it stood before the event): none goes to the reference."""
    data = generate(60, seed=7, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6)
    records = _records([(e["lead_id"].encode(), orjson.dumps(e)) for e in data.events])
    calls: collections.Counter[str] = collections.Counter()
    for name in ("decide_lead", "_reference_lead"):
        original = getattr(columnar_engine, name)

        def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(columnar_engine, name, counted)
    got = process_columnar(DEFAULT, records, {}.get, DECIDED_AT, whole_from=len(records))
    want = process_batch(DEFAULT, records, {}.get, DECIDED_AT)
    assert got.decisions == want.decisions
    assert got.opportunities == want.opportunities
    assert got.states == want.states
    assert want.opportunities  # conversions happen, in the block
    assert calls == {"decide_lead": len({r.key for r in records})}, calls
    assert got.in_block == len(records)  # what leadflow_events_in_block_total counts


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_waits_for_the_batch_and_is_left_as_it_was(enabled: bool) -> None:
    """The cyclic garbage collector does not run while a batch is decided (it would walk every event of a block,
    all alive until the batch ends), and is on again after it, also when deciding raised; a process that turned it
    off (LEADFLOW_GC_THRESHOLD=0 with it off) finds it off."""
    upsert = event("L1", "e1", lead={"title": "VP Sales"})
    seen = []

    def load_state(lead_id: str) -> bytes | None:
        seen.append(gc.isenabled())
        return None

    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        process_columnar(DEFAULT, _records([(b"L1", orjson.dumps(upsert))]), load_state, DECIDED_AT, whole_from=0)
        assert seen == [False]
        assert gc.isenabled() is enabled

        def broken(lead_id: str) -> bytes | None:
            raise KeyboardInterrupt  # nothing the engine catches: it leaves process_columnar

        with pytest.raises(KeyboardInterrupt):
            process_columnar(DEFAULT, _records([(b"L1", orjson.dumps(upsert))]), broken, DECIDED_AT, whole_from=0)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_a_batch_leaves_no_garbage_for_the_collector() -> None:
    """With the collector held off during a batch, whatever a batch leaves in a reference cycle stays until the
    collector's next run: a cycle through a batch's frame once held every batch's columns, 290 MiB more at the peak
    of a backtest of 10^6 events. A batch of valid events must leave none."""
    data = generate(60, seed=7, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6)
    records = _records([(e["lead_id"].encode(), orjson.dumps(e)) for e in data.events])
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        result = process_columnar(DEFAULT, records, {}.get, DECIDED_AT, drift_sample=3, whole_from=0)
        assert len(result.decisions) == len(records)
        del result
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()


def test_a_replay_in_the_block_is_decided_from_the_state_as_it_stood() -> None:
    """A replay among a lead's events in one block gets the decision of the state as its predecessors left it (the
    previous decision's status, points and score), as the reference's replay does."""
    upsert = event("L1", "e1", lead={"title": "VP Sales", "number_of_employees": 500, "lead_source": "Web"})
    meeting = event("L1", "e2", "lead.activity", "2026-11-02T10:00:00Z", activity={"type": "meeting"})
    demo = event("L1", "e3", "lead.activity", "2026-11-02T11:00:00Z", activity={"type": "page_view"})
    stream = [(b"L1", orjson.dumps(e)) for e in (upsert, meeting, upsert, demo, meeting)]
    _compare(DEFAULT, [_records(stream)], {}, use_cache=True, whole_from=0)
    replayed = process_columnar(DEFAULT, _records(stream), {}.get, DECIDED_AT, whole_from=0)
    assert replayed.duplicates == 2


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-3, 3),
            st.sampled_from([0.0, -0.0, 1.0, 2.5]),
            st.sampled_from(["a", "b", ""]),
        ),
        max_size=40,
    ),
    st.integers(0, 2),
)
def test_factorise_tells_values_apart_by_type_and_sign(column: list[object], kinds: int) -> None:
    """Each place's code points at a value of the same type and value (``True`` is not ``1``, ``-0.0`` not ``0.0``),
    and each distinct value's first place is where it first appears: whichever way the column is factorised."""
    if kinds == 1:
        column = [v for v in column if v is None or isinstance(v, str)]  # one plain type: the dict's way
    elif kinds == 2:
        column = [v for v in column if v is None or type(v) is int]
    codes, uniques, first = factorise(column)
    assert len(codes) == len(column)
    for k, value in enumerate(column):
        got = uniques[codes[k]]
        assert type(got) is type(value)
        assert repr(got) == repr(value)
    assert len({repr((type(u), u)) for u in uniques}) == len(uniques)
    for code, at in enumerate(first):
        assert codes[at] == code
        assert all(codes[k] != code for k in range(at))


@pytest.mark.parametrize(("field", "value"), [("event.type", "lead.activity"), ("event.activity_type", "meeting")])
def test_the_block_reads_the_event_and_the_days_since_the_last_activity(field: str, value: str) -> None:
    """Rules on the event's own type and on the days since the last activity (a column worked out from the times)
    are decided in the block, and as the reference decides them."""
    text = f"""version: '1'
scoring:
  - id: act
    when: {{field: {field}, op: eq, value: {value}}}
    points: 5
  - id: quiet
    when: {{field: days_since_last_activity, op: gte, value: 3}}
    points: -2
qualification:
  - id: busy
    status: Contacted
    when: {{all: [{{field: points, op: gte, value: 10}}, {{field: {field}, op: eq, value: {value}}}]}}
"""
    engine = Engine(parse_ruleset(text, "<event>"), MODEL)
    plan = columnar_engine._columns_for(engine).whole
    assert plan is not None
    assert plan.event_paths == (field,)
    assert plan.days_since
    data = generate(60, seed=3, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=4)
    records = _records([(e["lead_id"].encode(), orjson.dumps(e)) for e in data.events])
    _compare(engine, [records[i : i + 700] for i in range(0, len(records), 700)], {}, use_cache=True, whole_from=0)


@st.composite
def _activity_streams(draw: st.DrawFn) -> list[Record]:
    """Records of leads whose events are all lead activities (msgspec's fast path reads them), mostly in order, and
    what a merge must get right: an event id given again, a record delivered again or from another partition,
    offsets out of order, days that go back; over 200 days, so that the per-day history drops its oldest days."""
    out: list[Record] = []
    offset = 5000
    clock = NOW - 200 * DAY
    for _ in range(draw(st.integers(1, 30))):
        lead = draw(st.sampled_from(_LEADS[:3]))
        clock += draw(st.sampled_from([0.0, 1.0, DAY / 3, DAY, 40 * DAY, 95 * DAY]))
        when = clock - draw(st.sampled_from([0.0] * 8 + [DAY, 100 * DAY]))  # now and then a late one
        event_id = f"{draw(st.integers(0, 40))}{lead}"
        body = event(lead, event_id, "lead.activity", dt.datetime.fromtimestamp(when, dt.UTC).isoformat())
        body["activity"] = draw(_activity)
        partition = draw(st.sampled_from([0] * 12 + [1]))
        offset += draw(st.sampled_from([1] * 12 + [0, -3]))
        out.append(Record(lead.encode(), orjson.dumps(body), "leads", partition, offset, 1_700_000_000.0 + offset))
        if draw(st.integers(0, 15)) == 0:
            out.append(draw(st.sampled_from(out)))  # delivered again
    return out


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    engine=st.one_of(rulesets(blockable=True).filter(_blockable), st.sampled_from([DEFAULT, POINTS_READ])),
    before=_activity_streams(),
    stream=_activity_streams(),
    cuts=st.lists(st.integers(1, 40), max_size=3),
    use_cache=st.booleans(),
)
def test_leads_of_activities_alone_are_merged_as_the_reference_merges_them(
    engine: Engine, before: list[Record], stream: list[Record], cuts: list[int], use_cache: bool
) -> None:
    stored: dict[str, bytes] = {}
    for batch in _cut(before, cuts):
        stored.update(process_batch(engine, batch, stored.get, DECIDED_AT - 1).states)
    later = [record._replace(offset=record.offset + 1000) for record in stream]
    _compare(engine, _cut(later, cuts), stored, use_cache, whole_from=0)
