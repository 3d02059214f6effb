"""The columnar engine's whole-batch mode: every event of the batch scored and evaluated in one block of columns.

An event's facts may depend on its lead's previous decision; then each event must wait for the one before (the
per-event core decides such engines). They do not when nothing the model, the scoring rules or the qualification
rules read is written by a decision (status, points of an earlier event, score of an earlier event, conversion,
time in status): then each event's facts follow from the merges alone, and the whole batch can be decided at once,
in three steps:

1. **merge**: each lead's events are merged into its state in order by the core's own :func:`apply_event`; what
   each merge changed (the paths it returns) is noted per event for the facts the engine reads, so each fact's
   column is the lead's value at the batch's start carried forward, changed where an event changed it (numpy's
   running maximum over the rows where a value was set), with no facts dict per event;
2. **columns**: the model, the plain scoring rules and the qualification rules run once over all the batch's
   events (a test once per distinct value of its fact, a condition of several facts once per distinct combination
   of them; ``points`` and ``score`` are the event's own, as the reference sets them before qualifying);
3. **decide**: each lead's events go in order through the core's status logic (previous status, the first
   qualification rule that matches, status changes, time in status), cheap per event; the decision is the core's
   own. A replay is decided from the state as the reference's replay is.

What this mode does not take goes elsewhere, whole lead by whole lead, before anything is merged: an engine whose
rules or model read anything else (derived facts such as windows, decay, ``changed``, ``within_days``, a
``duplicates:`` section, a feature that reads two facts) is not taken at all; a lead whose stored state belongs
to the match step (a duplicate, claims), or whose batch has an upsert that sets ``status`` itself, goes to the
reference's per-lead path. An event that converts its lead is decided by the core itself
(:func:`worker.core.decide`: the opportunity and its fields) from the lead's state as it stood before the event,
rebuilt from the stored state and the events before it with the decisions' fields as this mode left them; the lead
then goes on in the block, converted. A lead that is routed (a routed status, or a conversion whose owner routing
picks), or that fails, goes to the reference.

Conditions are evaluated without a facts dict per event: a one-fact test once per distinct value of its fact,
``all``/``any`` of such tests as masks and-ed or or-ed, anything else once per distinct combination of the facts it
reads (the compiler notes them, and marks ``changed`` and ``within_days`` as reading ``now`` and what the event
changed, which this mode does not take).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from orjson import dumps

from worker.batch import _position, _rendered, _without_history
from worker.columnar._decode import FastActivity, reference_event
from worker.columnar._frame import factorise
from worker.columnar._model import ModelColumns
from worker.columnar._rules import RuleColumns, group_mask
from worker.core import Cause, Decided, Engine, _decided_at_text, _decision, _left_status, decide
from worker.lead.events import LeadUpserted
from worker.lead.ids import decision_id
from worker.lead.state import (
    _DAY,
    PROFILE_FIELDS,
    LeadState,
    apply_event,
    build_facts,
    event_digest,
    new_state,
    redelivered,
    seen,
)
from worker.rules import QualificationRule
from worker.rules.duplicates import DUPLICATE_OF, MATCH, held

__all__ = ["WholePlan", "whole_plan"]

Codes = npt.NDArray[np.intp]
_Column = tuple[Codes, list[object], list[int]]
_DAYS_SINCE = "days_since_last_activity"
_LAST = "last_activity_at"
_EVENT_PATHS = ("event.type", "event.activity_type")
_PROFILE = frozenset(PROFILE_FIELDS) - {"status"}
_OWN = ("points", "score")  # the event's own: set before the qualification rules read them
_RADIX_LIMIT = 2**62


def _merged_path(path: str) -> bool:
    """Whether ``path`` is a fact that only merging events changes, and that :func:`apply_event` reports when it
    does (so its column follows from the merges)."""
    if path in _PROFILE or path.startswith("custom.") or path in ("activity.total", _LAST):
        return True
    parts = path.split(".")
    return len(parts) == 3 and parts[0] == "activity" and parts[2] in ("count", "last_at")


@dataclass(frozen=True, slots=True)
class _Qualify:
    """One qualification rule as this mode evaluates it."""

    rule: QualificationRule
    guard: str | None
    reads: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WholePlan:
    """What an engine's whole-batch mode reads: the merged facts, and whether the time since the last activity and
    the event's type are read too."""

    paths: tuple[str, ...]
    days_since: bool
    event_paths: tuple[str, ...]
    qualify: tuple[_Qualify, ...]
    slots: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "slots", {path: i for i, path in enumerate(self.paths)})


def whole_plan(engine: Engine, model: ModelColumns, rules: RuleColumns) -> WholePlan | None:
    """The engine's whole-batch plan, or None when its rules or model read what a decision writes (or anything
    this mode does not compute)."""
    ruleset = engine.ruleset
    if ruleset.duplicates is not None or ruleset.derived_facts or ruleset.decays:
        return None
    reads: set[str] = set()
    for part in model.parts:
        if part.direct:
            return None
        reads.add(part.path)
    for rule in rules.rules:
        if rule.per is not None and rule.condition is None:
            reads.add(rule.per)
        elif rule.per is None and rule.condition is not None:
            if rule.guard is not None and rule.guard not in rule.reads:
                return None
            reads.update(rule.reads)
        else:
            return None
    qualify = []
    for check in ruleset.qualification_rules:
        guard = None if check.guard in _OWN or check.guard == "activity.total" else check.guard
        if guard is not None and guard not in check.reads:
            return None
        qualify.append(_Qualify(check, guard, tuple(sorted(check.reads))))
        reads.update(p for p in check.reads if p not in _OWN)
    days_since = _DAYS_SINCE in reads
    event_paths = tuple(p for p in _EVENT_PATHS if p in reads)
    reads -= {_DAYS_SINCE, *_EVENT_PATHS}
    if days_since:
        reads.add(_LAST)
    if not all(_merged_path(path) for path in reads):
        return None
    return WholePlan(tuple(sorted(reads)), days_since, event_paths, tuple(qualify))


def takes(lead_state: LeadState | None, events: Iterable[tuple[int, object]]) -> bool:
    """Whether this mode takes a lead: not one the match step holds (a duplicate, or claims), and no upsert of the
    batch sets its status (the status is then the producer's, not the previous decision's)."""
    if lead_state is not None and (lead_state.get(DUPLICATE_OF) is not None or MATCH in lead_state):
        return False
    return not any(isinstance(event, LeadUpserted) and "status" in event.lead.model_fields_set for _, event in events)


class _Columns:
    """The batch's columns as they are built while merging: each lead's values at the batch's start (at its first
    row), and per fact the rows whose event changed it, with the new value."""

    def __init__(self, plan: WholePlan) -> None:
        count = len(plan.paths)
        self.paths = plan.paths
        self.start_rows: list[int] = []
        self.starts: list[list[object]] = []
        self.rows: list[list[int]] = [[] for _ in range(count)]
        self.values: list[list[object]] = [[] for _ in range(count)]

    def columns(self, n: int) -> list[_Column]:
        """Each fact's codes for all ``n`` rows, its distinct values and the first row of each: the value at the
        lead's start carried forward, changed where an event changed it."""
        if not self.paths:
            return []
        at_start = list(zip(*self.starts, strict=True)) if self.starts else [() for _ in self.paths]
        start_rows = np.asarray(self.start_rows, dtype=np.intp)
        everywhere = np.arange(n, dtype=np.intp)
        out = []
        for slot, starts in enumerate(at_start):
            rows = self.rows[slot]
            codes, values, _ = factorise([*starts, *self.values[slot]])
            entry = np.full(n, -1, dtype=np.intp)  # the entry that set each row's value (starts, then changes)
            entry[start_rows] = np.arange(len(starts), dtype=np.intp)
            entry[np.asarray(rows, dtype=np.intp)] = np.arange(len(starts), len(starts) + len(rows), dtype=np.intp)
            set_rows = np.flatnonzero(entry >= 0)
            surviving = codes[entry[set_rows]]  # the codes that rows hold, in row order
            used, first = np.unique(surviving, return_index=True)
            compact = np.full(len(values), -1, dtype=np.intp)
            compact[used] = np.arange(len(used), dtype=np.intp)
            last_set = np.where(entry >= 0, everywhere, 0)
            np.maximum.accumulate(last_set, out=last_set)
            column = compact[codes[entry[last_set]]]
            out.append((column, [values[c] for c in used.tolist()], set_rows[first].tolist()))
        return out


class _Frame:
    """The batch's facts as columns (what :class:`ModelColumns` and :class:`RuleColumns` read of a frame)."""

    __slots__ = ("_columns", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self._columns: dict[str, _Column] = {}

    @property
    def facts(self) -> _Rows:
        """The rows as facts dicts, made on demand: a view kept on the frame would make a cycle (frame, view,
        frame) that only the garbage collector frees, holding the batch's columns until it runs."""
        return _Rows(self)

    def __len__(self) -> int:
        return self.n

    def codes(self, path: str) -> _Column:
        return self._columns[path]

    def set(self, path: str, column: _Column) -> None:
        self._columns[path] = column

    def set_values(self, path: str, values: Sequence[object]) -> None:
        """A column of numbers given row by row (each row its own value, factorised by numpy)."""
        array = np.asarray(values, dtype=np.float64)
        _, first, codes = np.unique(array, return_index=True, return_inverse=True)
        firsts = first.tolist()
        self._columns[path] = (codes.reshape(-1).astype(np.intp), [values[k] for k in firsts], firsts)

    def condition_mask(
        self, condition: Callable[[Any], bool], guard: str | None, reads: Sequence[str], rows: Codes | None = None
    ) -> npt.NDArray[np.bool_]:
        """Whether ``condition`` (reading the facts ``reads``; False where ``guard`` is missing) holds at each of
        ``rows`` (or every row): worked out once per distinct combination of the facts it reads."""
        at = np.arange(self.n, dtype=np.intp) if rows is None else rows
        if not reads:
            return np.full(len(at), bool(condition({})), dtype=bool)
        key = np.zeros(len(at), dtype=np.int64)
        size = 1
        for path in reads:
            codes, values, _ = self._columns[path]
            width = max(len(values), 1)
            if size * width >= _RADIX_LIMIT:  # the combined number would overflow: number the combinations anew
                _, key = np.unique(key, return_inverse=True)
                key = key.reshape(-1).astype(np.int64)
                size = int(key.max()) + 1 if len(key) else 1
            key = key * width + codes[at]
            size *= width
        _, representative, inverse = np.unique(key, return_index=True, return_inverse=True)
        results = []
        for k in at[representative].tolist():
            facts = self.row(k, reads)
            results.append((guard is None or facts.get(guard) is not None) and bool(condition(facts)))
        return np.array(results, dtype=bool)[inverse.reshape(-1)]

    def row(self, k: int, paths: Iterable[str] | None = None) -> dict[str, object]:
        """Row ``k``'s facts (of ``paths``, or all), for what only a function of the facts can work out."""
        columns = self._columns
        out = {}
        for path in columns if paths is None else paths:
            codes, values, _ = columns[path]
            out[path] = values[codes[k]]
        return out


class _Rows(Sequence[dict[str, object]]):
    """The frame's rows as facts dicts, built on demand (for the values a part's own function must read)."""

    def __init__(self, frame: _Frame) -> None:
        self.frame = frame

    def __len__(self) -> int:
        return self.frame.n

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self.frame.row(i) for i in range(*k.indices(self.frame.n))]
        return self.frame.row(int(k))


_Row = tuple[int, int, float]
"""One event of a lead in this mode: its place among the lead's events, its row (-1 for a replay), its time."""


@dataclass(slots=True)
class WholeLead:
    """A lead taken by this mode, as the merge left it: its events' rows, and the facts of those whose facts are
    needed as the reference builds them (the drift sample's, and the last one's: the wake-up time is from them)."""

    lead: Any  # the engine's _Lead
    rows: list[_Row]
    facts: dict[int, dict[str, object]]


def merge(
    engine: Engine,
    plan: WholePlan,
    records: Sequence[Any],
    leads: Sequence[Any],
    drift_sample: int,
    to_reference: Callable[[Any], None],
) -> tuple[list[WholeLead], _Columns, list[float], list[list[object]]]:
    """Step 1: every lead's events merged in order; the columns' changes noted. A lead that raises goes to the
    reference."""
    columns = _Columns(plan)
    slots = plan.slots
    start_rows, starts, change_rows, change_values = columns.start_rows, columns.starts, columns.rows, columns.values
    nows: list[float] = []
    event_values: list[list[object]] = [[] for _ in plan.event_paths]
    taken: list[WholeLead] = []
    window = engine.dedupe_window
    event_paths = plan.event_paths
    paths = plan.paths
    for lead in leads:
        lead.next = len(lead.events)  # the state changes from here on: the reference reloads it if it must decide it
        rows: list[_Row] = []
        facts: dict[int, dict[str, object]] = {}
        try:
            state = lead.state
            started = False
            last = None
            for at, (index, event) in enumerate(lead.events):
                record = records[index]
                position = _position(record)
                now = event.occurred_at.timestamp()
                if state is None:
                    state = lead.state = new_state(lead.lead_id, now)
                digest = event_digest(event.event_id)
                if seen(state, digest) or redelivered(state, position):
                    rows.append((at, -1, now))
                    continue
                row = len(nows)
                if not started:
                    get = state.get
                    start_rows.append(row)
                    starts.append([*map(get, paths)])  # every fact's value at the batch's start
                    started = True
                changed = apply_event(state, event, digest, now, window)
                state["source"] = list(position)
                for path in changed:
                    slot = slots.get(path)
                    if slot is not None:
                        change_rows[slot].append(row)
                        change_values[slot].append(state.get(path))
                nows.append(now)
                if event_paths:
                    for values, path in zip(event_values, event_paths, strict=True):
                        activity = getattr(event, "activity", None)
                        values.append(event.event_type if path == "event.type" else getattr(activity, "type", None))
                rows.append((at, row, now))
                if drift_sample and record.offset % drift_sample == 0:
                    facts[row] = _facts(state, now, event, changed)
                last = (row, now, event, changed)
            if last is not None and last[0] not in facts:  # the last one's facts: the wake-up time is from them
                row, now, event, changed = last
                facts[row] = _facts(state, now, event, changed)
        except Exception:  # the reference decides the lead and says what failed
            to_reference(lead)
            continue
        taken.append(WholeLead(lead, rows, facts))
    return taken, columns, nows, event_values


def _facts(state: LeadState, now: float, event: Any, changed: Any) -> dict[str, object]:
    """:func:`build_facts`, for a :class:`FastActivity` too (which build_facts does not know for an activity)."""
    facts = build_facts(state, now, event, changed)
    if event.__class__ is FastActivity:
        facts["event.activity_type"] = event.activity.type
    return facts


def frame_of(plan: WholePlan, columns: _Columns, nows: list[float], event_values: list[list[object]]) -> _Frame:
    """Step 2's frame: every fact's column over the batch's rows."""
    n = len(nows)
    frame = _Frame(n)
    for path, column in zip(plan.paths, columns.columns(n), strict=True):
        frame.set(path, column)
    if plan.days_since:
        codes, values, _ = frame.codes(_LAST)
        if any(v is not None and v.__class__ is not float for v in values):
            msg = "last_activity_at holds a value that is no time"
            raise TypeError(msg)
        last = np.array([np.nan if v is None else v for v in values], dtype=np.float64)[codes]
        days = (np.asarray(nows, dtype=np.float64) - last) / _DAY
        days = np.where(days > 0.0, days, 0.0)  # max(0.0, days), as age_facts
        since: list[object] = days.tolist()
        for k in np.flatnonzero(np.isnan(last)).tolist():
            since[k] = None
        frame.set(_DAYS_SINCE, (np.arange(n, dtype=np.intp), since, list(range(n))))
    for path, values in zip(plan.event_paths, event_values, strict=True):
        frame.set(path, factorise(values))
    return frame


def qualified(plan: WholePlan, frame: _Frame, points: list[float], score: list[float]) -> list[int]:
    """Each row's first qualification rule that matches (its index in the plan), or -1: a rule's condition once per
    distinct combination of the facts it reads, over the rows no earlier rule took."""
    n = len(frame)
    first = np.full(n, -1, dtype=np.intp)
    if not plan.qualify or not n:
        return first.tolist()
    frame.set_values("points", points)
    frame.set_values("score", score)
    open_rows = np.arange(n, dtype=np.intp)
    for number, check in enumerate(plan.qualify):
        if not len(open_rows):
            break
        matched = _holds(check, frame, open_rows)
        first[open_rows[matched]] = number
        open_rows = open_rows[~matched]
    return first.tolist()


def _holds(check: _Qualify, frame: _Frame, rows: Codes) -> npt.NDArray[np.bool_]:
    """Whether the rule's condition holds at each of ``rows``."""
    rule = check.rule
    if rule.leaf is not None:
        path, test = rule.leaf
        codes, values, _ = frame.codes(path)
        results = np.array([value is not None and bool(test(value)) for value in values], dtype=bool)
        return results[codes[rows]]
    if rule.group is not None:
        return group_mask(rule.group, check.guard, frame)[rows]
    return frame.condition_mask(rule.condition, check.guard, check.reads, rows)


def factors(model: ModelColumns, frame: _Frame, contributions: npt.NDArray[np.float64], top: int) -> list[bytes]:
    """Each row's top factors as JSON, worded by the model's own labellers: once per distinct set of picks (a
    feature group and its fact's value each: a group's contribution is a function of that value alone), shared by
    the rows of that set."""
    n = len(frame)
    chosen = model.picks(contributions, top)
    if chosen is None:
        return [b"[]"] * n
    parts = model.parts
    columns = [frame.codes(part.path) for part in parts]
    width = max(len(values) for _, values, _ in columns) + 1
    codes = np.stack([column[0] for column in columns])  # feature group x row
    at = np.arange(n)[:, None]
    keys = chosen.astype(np.int64) * width + codes[chosen, at]  # (group, value) of each pick, as one number
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    label = model.labellers
    worded: dict[int, Any] = {}  # (group, value) -> its factor
    lists = []
    for k, keys_of in zip(first.tolist(), keys[first].tolist(), strict=True):
        made = []
        for pick, key in zip(chosen[k].tolist(), keys_of, strict=True):
            factor = worded.get(key)
            if factor is None:
                path = parts[pick].path
                column_codes, values, _ = columns[pick]
                factor = label[pick]({path: values[column_codes[k]]}, float(contributions[pick, k]))
                worded[key] = factor
            made.append(factor)
        lists.append(made)
    written = [dumps(made) for made in lists]
    return [written[i] for i in inverse.reshape(-1).tolist()]


@dataclass(slots=True)
class Verdicts:
    """Step 2's results, row by row (``factors``: each row's factors as JSON), and the JSON of what the batch's
    decisions share, written once (``written``: see :func:`_json`)."""

    points: list[float]
    score: list[float]
    matched: list[list[str]]
    first: list[int]
    factors: list[bytes]
    written: dict[object, bytes] = field(default_factory=dict)


def _json(written: dict[object, bytes], value: str | None) -> bytes:
    """``value`` as orjson writes it, once per batch (statuses, a lead's ids)."""
    out = written.get(value)
    if out is None:
        out = written[value] = dumps(value)
    return out


def decide_lead(
    engine: Engine,
    plan: WholePlan,
    records: Sequence[Any],
    taken: WholeLead,
    verdicts: Verdicts,
    decided_at: float,
    drift_sample: int,
    outputs: list[Any],
    stored: Callable[[], LeadState | None],
) -> None:
    """Step 3 for one lead: its events decided in order. An event that converts the lead is decided by the core
    itself (:func:`worker.core.decide`) from the lead's state as it stood before the event (``stored``: the state
    at the batch's start; see :func:`rebuilt`), and the conversion's fields carried over. Raises on what it cannot
    decide (a routed status or conversion), for the caller to hand the lead to the reference."""
    ruleset = engine.ruleset
    default_status, statuses, routing = ruleset.default_status, ruleset.statuses, ruleset.routing
    lead = taken.lead
    state = lead.state
    lead_id = lead.lead_id
    facts_of = taken.facts
    # the JSON every plain decision of the batch, or of the lead, shares (``_decision``'s fields, in its order)
    written = verdicts.written
    versions_part = written.get(_VERSIONS)
    if versions_part is None:
        versions_part = written[_VERSIONS] = b"".join(
            (
                b',"ruleset_version":',
                dumps(ruleset.version),
                b',"model_version":',
                dumps(engine.model.version),
                b',"status":',
            )
        )
    lead_part = b"".join(
        (
            b',"lead_id":',
            dumps(lead_id),
            b',"decided_at":',
            _json(written, _decided_at_text(decided_at)),
            b',"occurred_at":',
        )
    )
    all_points, all_scores, all_first, all_matched, all_factors_json = (
        verdicts.points,
        verdicts.score,
        verdicts.first,
        verdicts.matched,
        verdicts.factors,
    )
    pending = lead.pending
    for at, row, now in taken.rows:
        index, event = lead.events[at]
        record = records[index]
        previous_status: str = state["status"] or default_status
        if row < 0:  # a replay, decided as decide() decides one
            cause = Cause(lead_id, event.event_id, event.occurred_at, "event")
            last_score = state["score"] if state["score"] is not None else 0.0
            decision = _decision(
                engine, cause, decided_at, previous_status, previous_status, state["points"], last_score, [], [], "none"
            )
            decision["opportunity_id"] = state["opportunity_id"]
            decided = Decided(decision, None, duplicate=True)
            outputs[index] = _rendered(engine, record, event.event_type, decided, drift_sample)
            lead.pending.append(index)
            continue
        points, probability = all_points[row], all_scores[row]
        number = all_first[row]
        rule = None if number < 0 else plan.qualify[number].rule
        matched = all_matched[row]
        if rule is not None:
            matched = [*matched, rule.id]
            if rule.convert and held(state):
                rule = None
        status = previous_status
        action = "none"
        if rule is not None and not state["converted"]:
            if rule.convert:  # the core decides the conversion, from the state as it stood before the event
                if routing is not None:
                    msg = "routed"
                    raise _Routed(msg)
                before = rebuilt(engine, records, taken, at, stored())
                read: Any = reference_event(record, event, engine.max_event_bytes)  # the core reads pydantic's
                after, decided = decide(engine, before, read, decided_at, _position(record), wake=False)
                for name in _DECIDED:
                    state[name] = after[name]
                outputs[index] = _rendered(engine, record, read.event_type, decided, drift_sample, read, state)
                lead.pending.append(index)
                lead.changed = True
                if row in facts_of:
                    lead.last_facts = decided.facts
                continue
            status = rule.status
            if status != previous_status:
                status_def = statuses.get(status)
                action = "disqualified" if status_def is not None and status_def.disqualified else "status_changed"
        if action == "status_changed" and routing is not None and status in routing.lead_statuses:
            msg = "routed"
            raise _Routed(msg)
        facts = facts_of.get(row)
        if facts is not None:  # as the reference built them: the decision's fields as they stood before it
            raw_status = state["status"]
            since = state.get("status_since")
        state["points"] = points
        state["score"] = probability
        state["status"] = status
        left = _left_status(state, previous_status, status, now)
        if facts is not None:
            facts["status"] = raw_status
            if since is not None or "status_since" in facts:
                facts["status_since"] = since
            facts["days_in_status"] = None if since is None else max(0.0, (now - since) / _DAY)
            facts["points"] = points
            facts["score"] = probability
            facts["converted"] = state["converted"]  # a conversion earlier in the batch
            facts["opportunity_id"] = state["opportunity_id"]
            facts["converted_at"] = state["converted_at"]
            lead.last_facts = facts
        # core._decision's dict as orjson writes it, and _rendered's output, for a plain decision (no opportunity,
        # routing or match step): written here from the JSON of its parts (what the batch's decisions share
        # written once), in the contract's key order; the property test holds the two to the same bytes
        plain = all_matched[row]
        key = (id(plain), None if rule is None else rule.id)  # the row's list lives as long as the batch
        matched_json = written.get(key)
        if matched_json is None:
            matched_json = written[key] = dumps(matched)
        event_id = event.event_id
        written_decision = b"".join(
            (
                b'{"schema_version":1,"decision_id":"',
                decision_id(lead_id, event_id).encode(),  # hex digits and dashes
                b'","event_id":',
                dumps(event_id),
                lead_part,
                dumps(event.occurred_at),  # orjson writes it as _isoformat does (that is orjson's text)
                versions_part,
                _json(written, status),
                b',"previous_status":',
                _json(written, previous_status),
                b',"points":',
                dumps(points),
                b',"score":',
                dumps(probability),
                b',"factors":',
                all_factors_json[row],
                b',"matched_rules":',
                matched_json,
                b',"action":',
                _json(written, action),
                b',"opportunity_id":',
                _json(written, state["opportunity_id"]),
                b',"duplicate_of":',
                _json(written, state.get(DUPLICATE_OF)),
                b',"trigger":"event"}',
            )
        )
        sampled = (
            _without_history(facts)
            if facts is not None and drift_sample and record.offset % drift_sample == 0
            else None
        )
        outputs[index] = (
            written_decision,
            probability,
            sampled,
            None,
            None,
            None,
            event.event_type,
            status,
            action,
            None,
            left,
        )
        pending.append(index)
        lead.changed = True


_VERSIONS = ("versions",)
"""The key of the ruleset's and model's versions' JSON among a batch's written parts (:attr:`Verdicts.written`)."""

_DECIDED = ("points", "score", "status", "status_since", "converted", "opportunity_id", "converted_at")
"""What a decision writes in the lead's state (the wake-up time aside: a batch sets it after the lead's last event)."""


class _Routed(Exception):
    """A lead's status is routed: the reference decides it."""


def rebuilt(engine: Engine, records: Sequence[Any], taken: WholeLead, stop: int, stored: LeadState | None) -> LeadState:
    """The lead's state as the reference holds it before its event at ``stop``: the stored state (``stored``) with
    the events before it merged again, and the decisions' fields as step 3 left them."""
    lead = taken.lead
    decided = lead.state
    state = stored
    window = engine.dedupe_window
    for at, row, now in taken.rows:
        if at >= stop:
            break
        index, event = lead.events[at]
        record = records[index]
        if state is None:
            state = new_state(lead.lead_id, now)
        if row < 0:
            continue
        apply_event(state, event, event_digest(event.event_id), now, window)
        state["source"] = list(_position(record))
    if state is None:
        msg = "no state to go on from"
        raise AssertionError(msg)
    for name in ("points", "score", "status"):
        state[name] = decided[name]
    if "status_since" in decided:
        state["status_since"] = decided["status_since"]
    else:
        state.pop("status_since", None)
    return state
