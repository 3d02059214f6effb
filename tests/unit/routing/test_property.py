"""Properties of weighted round robin: never a whole lead from the target share; JSON state; deterministic."""

from __future__ import annotations

import json
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.routing.helpers import MONDAY_NOON, weighted
from worker.routing import assign

weights = st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(weights=weights, leads=st.integers(min_value=1, max_value=300))
def test_every_count_stays_within_one_lead_of_its_share(weights: list[int], leads: int) -> None:
    pool = weighted(*weights)
    total = sum(weights)
    state = None
    for n in range(1, leads + 1):
        state, _ = assign(pool, state, f"r{n}", MONDAY_NOON + n)
        for member, weight in zip(pool.members, weights, strict=True):
            target = n * weight / total
            assert abs(state["members"][member.id]["count"] - target) < 1, (n, member.id, target)


@settings(max_examples=50, deadline=None)
@given(
    weights=weights,
    leads=st.integers(min_value=1, max_value=60),
    excluded=st.sets(st.sampled_from("ABCDEFGH"), max_size=3),
)
def test_state_is_plain_json_and_results_are_deterministic(weights: list[int], leads: int, excluded: set[str]) -> None:
    pool = weighted(*weights)
    first = second = None
    for n in range(leads):
        first, a = assign(pool, first, f"r{n}", MONDAY_NOON + n, exclude=excluded)
        second, b = assign(pool, second, f"r{n}", MONDAY_NOON + n, exclude=excluded)
        assert a == b
        assert json.loads(json.dumps(first)) == first
        decision = a.as_dict()
        assert json.loads(json.dumps(decision)) == decision
        assert len(a.candidates) == len(weights)
        if a.member is not None:
            assert a.member not in excluded
        else:
            assert all(m.id in excluded for m in pool.members)
    assert first == second


def _reference(weights: list[int], leads: int) -> list[int]:
    """The quota method exactly as specified, in exact fractions: ``count``, ``due``, ``after = due + w / W``."""
    count = [0] * len(weights)
    due = [Fraction(0)] * len(weights)
    total = sum(weights)
    chosen = []
    for _ in range(leads):
        after = [due[i] + Fraction(w, total) for i, w in enumerate(weights)]
        eligible = [i for i in range(len(weights)) if count[i] < after[i]] or list(range(len(weights)))
        best = min(eligible, key=lambda i: (Fraction(count[i] + 1, weights[i]), i))
        due = after
        count[best] += 1
        chosen.append(best)
    return chosen


@settings(max_examples=100, deadline=None)
@given(weights=weights, leads=st.integers(min_value=1, max_value=200))
def test_assign_makes_the_same_choices_as_the_exact_quota_method(weights: list[int], leads: int) -> None:
    pool = weighted(*weights)
    state = None
    chosen = []
    for n in range(leads):
        state, decision = assign(pool, state, f"r{n}", MONDAY_NOON + n)
        chosen.append(next(i for i, m in enumerate(pool.members) if m.id == decision.member))
    assert chosen == _reference(weights, leads)


def test_a_long_run_does_not_drift() -> None:
    weights = [3, 7, 11, 13]
    pool = weighted(*weights)
    state = None
    for n in range(1, 20_001):
        state, _ = assign(pool, state, f"r{n}", MONDAY_NOON + n)
    assert state is not None
    for member, weight in zip(pool.members, weights, strict=True):
        assert abs(state["members"][member.id]["count"] - 20_000 * weight / sum(weights)) < 1
        assert abs(state["members"][member.id]["lag"]) < 1  # the stored number stays small
