"""When time alone can change what a ruleset decides for a lead: its wake-up time.

A lead that sends no event keeps its facts, but some tests read the time: ``within_days``, ages
(``days_since_last_activity``, ``activity.<type>.days_since``, ``days_in_status``), windows
(``activity.<type>.count_in_days(N)``), ``now`` itself, and ``points`` when rules decay. The ruleset compiler keeps
those tests (its :class:`~worker.conditions.Clock` list); :func:`next_wake` finds, from a lead's facts at ``now``, the
first moment after ``now`` at which one of them gives another outcome. Until then, deciding the lead again gives
the same rule outcome; at that moment it may not. Pure: no clock but the ``now`` it is given.

How: each test gives the times at which its outcome can flip (an age's threshold: the time it counts from plus
the threshold; a window: the UTC midnights when a day of activity leaves it; decaying points: where their straight
line meets a threshold, or reaches 0), computed in closed form, then checked in ascending order against the test
itself (a float bisection near each one, a few calls): the wake-up time is the first float at which a test really
gives another outcome, so rounding can neither wake a lead a moment early (and find nothing) nor miss a threshold.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from worker.conditions import Clock, Facts, activity_part
from worker.lead.state import HISTORY_FACT, age_facts
from worker.rules._model import Ruleset

__all__ = ["next_wake"]

_DAY = 86400.0
_NUMBER: frozenset[type[float]] = frozenset({int, float})
_NEAR = 1e-3
"""Seconds around a computed edge where the test's own flip is looked for (the arithmetic is exact to 1e-6)."""
_NO_OVERRIDES: Facts = {}
_ROUNDING = 2e-4
"""Points are rounded to 4 decimals (the points at ``now`` too): a threshold on decaying points is met within this
many points of where their line meets it."""


def next_wake(ruleset: Ruleset, facts: Facts, now: float, overrides: Facts = _NO_OVERRIDES) -> float | None:
    """The first time after ``now`` at which a test of ``ruleset`` that reads the time gives another outcome for
    these ``facts`` (as evaluated at ``now``) with ``overrides`` over them, with no event; None when time alone
    changes nothing. When rules decay, ``facts`` must hold the points evaluated at ``now`` with the overrides."""
    clocks = ruleset.clocks
    if not clocks:
        return None
    planned = _PLANS.get(id(clocks))
    if planned is None or planned[0] is not clocks:
        planned = _PLANS[id(clocks)] = (clocks, *_plan(clocks))
    _, ages, others = planned
    best: float | None = None
    for clock, key, unit, thresholds in ages:  # the usual case (an age, or now, tested alone): no facts built
        since: Any = (overrides[key] if key in overrides else facts.get(key)) if key else 0.0
        if since.__class__ not in _NUMBER:
            continue
        at = _age_test(clock.test, since, unit)
        before = at(now)
        for threshold in thresholds:
            edge = since + threshold * unit
            if edge + _NEAR <= now or (best is not None and edge - _NEAR > best):
                continue
            flip = _first_flip(at, before, now, edge, _NEAR)
            if flip is not None and (best is None or flip < best):
                best = flip
    if not others:
        return best
    view = _At(facts, dict(overrides)) if overrides else facts  # what the edges are computed from
    slopes = ruleset.decay_slopes(view) if ruleset.decays else []
    candidates: list[tuple[float, float, Clock]] = []  # (edge, how near its flip is, the test)
    for clock in others:
        found: list[tuple[float, float]]
        if clock.field == "points":
            if not slopes:
                continue  # points change only where another test flips: that test wakes the lead
            found = list(_points_edges(clock, view, now, slopes))
        else:
            found = [(edge, _NEAR) for edge in _edges(clock, view, now)]
        candidates.extend((edge, near, clock) for edge, near in found if edge + near > now)  # `gt`: just after
    candidates.sort(key=lambda c: c[0] - c[1])  # by where each search starts: past the best flip, none can beat it
    befores: dict[int, bool] = {}
    for edge, near, clock in candidates:
        if best is not None and edge - near > best:
            break
        test_at = functools.partial(_test_at, ruleset, facts, overrides, clock)
        answer = befores.get(id(clock))
        if answer is None:
            answer = befores[id(clock)] = test_at(now)
        flip = _first_flip(test_at, answer, now, edge, near)
        if flip is not None and (best is None or flip < best):
            best = flip
    return best


_Age = tuple[Clock, str, float, tuple[float, ...]]
_PLANS: dict[int, tuple[tuple[Clock, ...], tuple[_Age, ...], tuple[Clock, ...]]] = {}
"""Each ruleset's clocks, split once (by the identity of its clocks; the entry keeps them, so the id is theirs)."""


def _plan(clocks: tuple[Clock, ...]) -> tuple[tuple[_Age, ...], tuple[Clock, ...]]:
    """A ruleset's clocks split: the tests of an age (or of ``now``) alone, with the fact the age counts from, its
    unit and the thresholds, and the others (windows, ``within_days``, points)."""
    if len(_PLANS) > 64:  # rulesets replaced many times: start again
        _PLANS.clear()
    ages: list[_Age] = []
    others = []
    for clock in clocks:
        origin = _origin(clock.field)
        if origin is not None and clock.test is not None:
            ages.append((clock, *origin, tuple(_numbers(clock.value))))
        else:
            others.append(clock)
    return tuple(ages), tuple(others)


def _age_test(test: Any, since: float, unit: float) -> Callable[[float], bool]:
    """The test of an age at time ``t``, the age computed as :func:`worker.lead.state.age_facts` does (for ``now``
    itself: ``since`` 0 and ``unit`` 1 give ``t``)."""

    def at(t: float) -> bool:
        return bool(test(max(0.0, (t - since) / unit)))

    return at


def _numbers(value: object) -> Iterator[float]:
    """The numbers in a test's prepared value: one, a (low, high) pair, or a set of values."""
    if value.__class__ in _NUMBER:
        yield float(value)
    elif isinstance(value, tuple | frozenset):
        yield from (float(v) for v in value if v.__class__ in _NUMBER)


@functools.lru_cache(maxsize=1024)
def _origin(name: str) -> tuple[str, float] | None:
    """The fact an age counts from and its unit in seconds (``("", 1.0)`` for ``now`` itself); None for a fact
    that is not an age."""
    if name == "now":
        return "", 1.0
    if name == "days_since_last_activity":
        return "last_activity_at", _DAY
    if name == "days_in_status":
        return "status_since", _DAY
    part = activity_part(name)
    if part is not None and part[1] == "days_since":
        return f"activity.{part[0]}.last_at", _DAY
    return None


def _edges(clock: Clock, facts: Facts, now: float) -> Iterator[float]:
    """When the fact ``clock`` reads crosses one of its thresholds (closed form, before checking)."""
    name, op = clock.field, clock.op
    if op in ("within_days", "not_within_days"):
        x: Any = facts.get(name)
        span: Any = clock.value  # seconds
        if name != "now" and x.__class__ in _NUMBER:
            yield x + span  # within while now <= x + span
        return
    origin = _origin(name)
    if origin is None:
        part = activity_part(name)
        if part is not None and part[1] == "count_in_days" and part[2] is not None:
            yield from _window_edges(facts, part[0], part[2], now)
        return
    key, unit = origin
    since: Any = facts.get(key) if key else 0.0
    if since.__class__ in _NUMBER:
        for threshold in _numbers(clock.value):
            yield since + threshold * unit


def _window_edges(facts: Facts, activity_type: str, days: int, now: float) -> Iterator[float]:
    """The UTC midnights at which a day of the type's activity leaves the N-day window (or a later day enters)."""
    history: Any = facts.get(HISTORY_FACT)
    buckets = history.get(activity_type) if isinstance(history, dict) else None
    today = int(now // _DAY)
    for day, _ in buckets or ():
        if day > today:
            yield day * _DAY
        yield (day + days) * _DAY


def _points_edges(
    clock: Clock, facts: Facts, now: float, slopes: list[tuple[float, float, float]]
) -> Iterator[tuple[float, float]]:
    """Where decaying points meet the test's thresholds, each with how near to it the test's flip is (points are
    rounded). The points follow a broken line: each decaying rule's share falls straight from its activity's time
    to where it reaches 0; between those bends, the slope is the sum of the shares falling then."""
    points: Any = facts.get("points")
    if points.__class__ not in _NUMBER:
        return
    thresholds = list(_numbers(clock.value))
    bends = sorted({t for start, end, _ in slopes for t in (start, end) if t > now})
    start, level = now, float(points)
    for end in [*bends, math.inf]:
        slope = sum(s for a, b, s in slopes if a <= start < b)
        if slope:
            near = max(_NEAR, _ROUNDING / abs(slope))
            for threshold in thresholds:
                meets = start + (threshold - level) / slope
                if start - near <= meets <= end + near:
                    yield meets, near
            level += slope * (end - start) if end < math.inf else 0.0
        start = end


class _At(Mapping[str, object]):
    """The facts at another time: ``changes`` (the time's facts, and the caller's overrides) over ``base``, read
    without copying ``base`` (a lead's facts are some 60 entries; a wake-up time takes a few reads)."""

    __slots__ = ("base", "changes")

    def __init__(self, base: Facts, changes: dict[str, object]) -> None:
        self.base = base
        self.changes = changes

    def get(self, key: str, default: Any = None) -> Any:
        changes = self.changes
        return changes[key] if key in changes else self.base.get(key, default)

    def __getitem__(self, key: str) -> object:
        changes = self.changes
        return changes[key] if key in changes else self.base[key]

    def __iter__(self) -> Iterator[str]:
        return iter({**self.base, **self.changes})

    def __len__(self) -> int:
        return len({**self.base, **self.changes})


def _test_at(ruleset: Ruleset, facts: Facts, overrides: Facts, clock: Clock, t: float) -> bool:
    """The test's outcome for these facts (with ``overrides``) at time ``t``, with no event."""
    if clock.field == "points":
        whole = {**facts, **overrides}
        age_facts(whole, t)
        ruleset.evaluate(whole)  # the derived facts and the (decayed) points, as deciding would
        return clock.condition(whole)
    changes = {"last_activity_at": facts.get("last_activity_at"), "status_since": facts.get("status_since")}
    changes.update(overrides)
    age_facts(changes, t)
    probe = _At(facts, changes)
    for name, compute in ruleset.derived_facts:
        if name == clock.field:
            changes[name] = compute(probe)
    return clock.condition(probe)


def _first_flip(at: Callable[[float], bool], before: bool, now: float, edge: float, near: float) -> float | None:
    """The first float after ``now`` at which the test ``at`` answers otherwise than ``before`` (its answer at
    ``now``), looked for near ``edge`` (within ``near``); None if there is none there. Most often the edge is exact,
    or the float after it (a strict comparison): two or three calls. Else a bisection between ``edge - near`` and
    ``edge + near`` finds it; when ``edge - near`` is already past the flip (the closed form erred), between
    ``now`` and ``edge + near``."""
    if edge > now:
        at_edge = at(edge)
        if at_edge != before:
            previous = math.nextafter(edge, -math.inf)
            if previous <= now or at(previous) == before:
                return edge  # exact: the test changes at the edge (gte, lt)
        else:
            after = math.nextafter(edge, math.inf)
            if at(after) != before:
                return after  # exact: the test changes just after the edge (gt, lte)
    low, high = max(now, edge - near), edge + near
    if at(high) == before:
        return None
    if low > now and at(low) != before:
        low = now
    while True:  # the test is `before` at low and not at high
        middle = low + (high - low) / 2
        if middle <= low or middle >= high:
            return high
        if at(middle) == before:
            low = middle
        else:
            high = middle
