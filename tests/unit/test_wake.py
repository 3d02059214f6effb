"""Time that passes: a lead's wake-up time, and the decisions that time triggers, in the pure core."""

from __future__ import annotations

import copy
import datetime as dt
import math

import hypothesis
import hypothesis.strategies as hst
import orjson
import pytest

from tests.builders import T0, activity, upsert
from worker.batch import Record, process_batch, process_wakeups
from worker.core import Engine, decide, decide_time
from worker.lead.events import Decision
from worker.lead.state import HISTORY_FACT, LeadState, build_facts, new_state
from worker.rules import Ruleset, next_wake, parse_ruleset
from worker.scoring import default_model_path, load_model

DAY = 86400.0
RECYCLING = """
version: "wake-1"
statuses:
  - {name: Open}
  - {name: Working}
  - {name: Nurture}
  - {name: Cold, disqualified: true}
  - {name: Qualified, converted: true}
scoring:
  - id: demo
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 40
  - id: gone-quiet
    when: {field: days_since_last_activity, op: gt, value: 90}
    points: -15
qualification:
  - id: cold
    when: {field: days_since_last_activity, op: gt, value: 60}
    status: Cold
  - id: quiet
    when: {field: days_since_last_activity, op: gt, value: 30}
    status: Nurture
  - id: hot
    when: {field: activity.demo_request.count_in_days(7), op: gte, value: 2}
    status: Qualified
    convert: true
  - id: working
    when: {field: points, op: gte, value: 40}
    status: Working
"""


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(parse_ruleset(RECYCLING, "wake.yaml"), load_model(default_model_path()))


def _decided_lead(engine: Engine) -> LeadState:
    state, _ = decide(engine, None, upsert("u1", company="Acme"), 1.0)
    state, decided = decide(engine, state, activity("a1", "demo_request"), 1.0)
    assert decided.decision["status"] == "Working"
    return state


def test_a_quiet_lead_wakes_just_past_the_threshold_and_is_recycled(engine: Engine) -> None:
    state = _decided_lead(engine)
    last = T0.timestamp()
    assert state["wake_at"] == math.nextafter(last + 30 * DAY, math.inf)  # `gt 30`: the first moment past 30 days
    events, recent, last_at = state["events"], state["recent"], state["last_activity_at"]

    state, decided = decide_time(engine, state, 2.0)

    decision = decided.decision
    assert (decision["trigger"], decision["action"]) == ("time", "status_changed")
    assert (decision["previous_status"], decision["status"], decision["matched_rules"][-1]) == (
        "Working",
        "Nurture",
        "quiet",
    )
    assert (
        decision["occurred_at"]
        == dt.datetime.fromtimestamp(math.nextafter(last + 30 * DAY, math.inf), dt.UTC).isoformat()
    )
    Decision.model_validate(decision)
    assert (state["events"], state["recent"], state["last_activity_at"]) == (events, recent, last_at)  # no engagement
    assert state["status_since"] == math.nextafter(last + 30 * DAY, math.inf)
    assert decided.left_status is not None
    assert decided.left_status[0] == "Working"
    assert decided.left_status[1] == pytest.approx(30 * DAY)
    assert state["wake_at"] == math.nextafter(last + 60 * DAY, math.inf)  # the next threshold: cold


def test_a_time_decision_is_the_same_from_the_same_state(engine: Engine) -> None:
    state = _decided_lead(engine)
    _, first = decide_time(engine, copy.deepcopy(state), 2.0)
    _, second = decide_time(engine, copy.deepcopy(state), 2.0)
    assert orjson.dumps(first.decision) == orjson.dumps(second.decision)
    _, later = decide(engine, copy.deepcopy(state), activity("a2", "page_view", T0 + dt.timedelta(days=1)), 2.0)
    assert later.decision["decision_id"] != first.decision["decision_id"]
    assert later.decision["trigger"] == "event"


def test_an_event_before_the_wake_up_time_moves_it(engine: Engine) -> None:
    state = _decided_lead(engine)
    state, decided = decide(engine, state, activity("a2", "page_view", T0 + dt.timedelta(days=20)), 1.0)
    assert decided.decision["status"] == "Working"
    assert state["wake_at"] == math.nextafter((T0 + dt.timedelta(days=20)).timestamp() + 30 * DAY, math.inf)


def test_a_converted_lead_has_no_wake_up_time(engine: Engine) -> None:
    state = _decided_lead(engine)
    state, decided = decide(engine, state, activity("a2", "demo_request", T0 + dt.timedelta(hours=1)), 1.0)
    assert decided.decision["action"] == "converted"
    assert "wake_at" not in state  # none: the key is absent


def test_a_window_wakes_the_lead_at_the_midnight_it_changes() -> None:
    ruleset = parse_ruleset(
        """
version: "1"
qualification:
  - id: busy
    when: {field: activity.page_view.count_in_days(2), op: gte, value: 3}
    status: Contacted
"""
    )
    engine = Engine(ruleset, load_model(default_model_path()))
    state, _ = decide(engine, None, activity("a1", "page_view", T0, count=3), 1.0)
    state, _ = decide(engine, state, activity("a2", "page_view", T0 + dt.timedelta(days=1), count=1), 1.0)
    assert state["status"] == "Contacted"
    day0 = int(T0.timestamp() // DAY)
    assert state["wake_at"] == (day0 + 2) * DAY  # the 3 views of day 0 leave the 2-day window: 1 left
    state, decided = decide_time(engine, state, 1.0)
    assert decided.decision["status"] == "Contacted"  # no rule sets another status: it stays
    assert "wake_at" not in state  # nothing in the window can fall below 3 any more


def test_decayed_points_wake_the_lead_where_they_fall_below_a_threshold() -> None:
    ruleset = parse_ruleset(
        """
version: "1"
decay: {percent: 50, days: 30}
scoring:
  - id: demo
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 40
qualification:
  - id: warm
    when: {field: points, op: gte, value: 30}
    status: Contacted
"""
    )
    engine = Engine(ruleset, load_model(default_model_path()))
    state, decided = decide(engine, None, activity("a1", "demo_request"), 1.0)
    assert decided.decision["status"] == "Contacted"
    wake = state["wake_at"]
    # 40 x (1 - 0.5 x 15/30) = 30 at 15 days; points are rounded to 4 decimals, so they read below 30 only once
    # below 29.99995: 0.00005 / (40 x 0.5 / 30 days) = 6.48 s later
    assert wake == pytest.approx(T0.timestamp() + 15 * DAY + 6.48, abs=0.01)
    facts = build_facts(state, math.nextafter(wake, -math.inf), None)
    assert ruleset.evaluate(facts).points >= 30
    facts = build_facts(state, wake, None)
    assert ruleset.evaluate(facts).points < 30


def test_the_time_in_status_is_a_fact_rules_read() -> None:
    ruleset = parse_ruleset(
        """
version: "1"
statuses: [{name: Open}, {name: Working}]
qualification:
  - id: stuck
    when:
      all:
        - {field: status, op: eq, value: Working}
        - {field: days_in_status, op: gte, value: 14}
    status: Open
"""
    )
    engine = Engine(ruleset, load_model(default_model_path()))
    state, _ = decide(engine, None, upsert("u1", status="Working"), 1.0)
    assert state["status_since"] == T0.timestamp()
    assert state["wake_at"] == T0.timestamp() + 14 * DAY  # `gte`: the moment 14 days are reached
    state, decided = decide_time(engine, state, 1.0)
    assert (decided.decision["status"], decided.decision["action"]) == ("Open", "status_changed")
    assert decided.left_status == ("Working", 14 * DAY)
    # the test of days_in_status passes again 14 days into Open (the wake-up time is from each test, not from whole
    # rules): then nothing changes, and nothing is sent
    assert state["wake_at"] == T0.timestamp() + 28 * DAY
    stored = orjson.dumps(state)
    result = process_wakeups(engine, ["L1"], lambda _lead: stored, T0.timestamp() + 29 * DAY, 1.0)
    assert not result.decisions
    assert orjson.loads(result.states["L1"])["status"] == "Open"


def _stored(engine: Engine) -> dict[str, bytes]:
    records = [
        Record(b"L1", orjson.dumps(upsert("u1", company="Acme").model_dump(mode="json")), "leads", 0, 0),
        Record(b"L1", orjson.dumps(activity("a1", "demo_request").model_dump(mode="json")), "leads", 0, 1),
        Record(b"L2", orjson.dumps(upsert("u2", lead_id="L2", company="Beta").model_dump(mode="json")), "leads", 0, 2),
    ]
    result = process_batch(engine, records, lambda _lead: None, 1.0)
    assert not result.dead_letters
    assert set(result.wakes) == {"L1", "L2"}
    return result.states


def test_a_batch_of_wake_ups_crosses_every_threshold_passed_once_and_again_the_same(engine: Engine) -> None:
    stored = _stored(engine)
    until = T0.timestamp() + 100 * DAY
    first = process_wakeups(engine, ["L1", "L2"], stored.get, until, 5.0)
    decisions = [orjson.loads(v) for _, v in first.decisions]
    assert [(d["lead_id"], d["previous_status"], d["status"]) for d in decisions] == [
        ("L1", "Working", "Nurture"),
        ("L1", "Nurture", "Cold"),
        ("L1", "Cold", "Cold"),  # past 90 days: the points fall by 15 (gone-quiet), the status stays
    ]
    assert [d["action"] for d in decisions] == ["status_changed", "disqualified", "none"]
    assert {d["trigger"] for d in decisions} == {"time"}
    assert len({d["decision_id"] for d in decisions}) == 3
    assert first.time_decisions == {"status_changed": 1, "disqualified": 1, "none": 1}
    assert first.decisions_by == {("Nurture", "status_changed"): 1, ("Cold", "disqualified"): 1, ("Cold", "none"): 1}
    assert not first.events_by_type
    assert [status for status, _ in first.time_in_status] == ["Working", "Nurture"]
    assert set(first.states) == {"L1"}  # L2 never had an activity: nothing for time to change
    assert first.wakes == {"L1": None, "L2": None}  # L2: as it was (none)
    again = process_wakeups(engine, ["L1", "L2"], stored.get, until, 5.0)  # a crash before the states were stored
    assert again.decisions == first.decisions
    after = process_wakeups(engine, ["L1"], first.states.get, until, 5.0)  # the states stored: nothing is due
    assert not after.decisions
    assert not after.states


def test_a_wake_up_not_yet_due_is_left_for_later(engine: Engine) -> None:
    stored = _stored(engine)
    result = process_wakeups(engine, ["L1"], stored.get, T0.timestamp() + 30 * DAY, 5.0)  # exactly 30 days: not gt
    assert not result.decisions
    assert not result.states


def test_a_lead_that_cannot_be_read_is_reported_and_the_others_go_on(engine: Engine) -> None:
    stored = {**_stored(engine), "L2": b"not json"}
    result = process_wakeups(engine, ["L2", "L1"], stored.get, T0.timestamp() + 40 * DAY, 5.0)
    assert [lead for lead, _ in result.wake_failures] == ["L2"]
    assert [orjson.loads(v)["status"] for _, v in result.decisions] == ["Nurture"]


# --- the property: between now and the wake-up time, time changes nothing; at it, something may ---------------

_TESTS = [
    "{field: days_since_last_activity, op: gt, value: %s}",
    "{field: days_since_last_activity, op: lte, value: %s}",
    "{field: activity.demo_request.days_since, op: gte, value: %s}",
    "{field: activity.page_view.days_since, op: between, value: [%s, %s]}",
    "{field: days_in_status, op: gte, value: %s}",
    "{field: activity.demo_request.last_at, op: within_days, value: %s}",
    "{field: last_activity_at, op: not_within_days, value: %s}",
    "{field: activity.page_view.count_in_days(%d), op: gte, value: %d}",
]


@hst.composite
def _rulesets(draw: hst.DrawFn) -> tuple[Ruleset, str]:
    rules = []
    for i in range(draw(hst.integers(1, 4))):
        kind = draw(hst.integers(0, len(_TESTS) - 1))
        days = draw(hst.floats(0, 120, allow_nan=False).map(lambda d: round(d, 3)))
        if kind == 3:
            test = _TESTS[kind] % (days, days + draw(hst.integers(0, 30)))
        elif kind == 7:
            test = _TESTS[kind] % (draw(hst.integers(1, 90)), draw(hst.integers(1, 6)))
        else:
            test = _TESTS[kind] % days
        status = draw(hst.sampled_from(["Open", "Contacted", "Unqualified"]))
        rules.append(f"  - id: r{i}\n    when: {test}\n    status: {status}\n")
    decay = draw(hst.booleans())
    text = 'version: "p"\n'
    if decay:
        text += "decay: {percent: 50, days: 30}\n"
    text += (
        "scoring:\n  - id: demo\n    when: {field: activity.demo_request.count, op: gte, value: 1}\n    points: 40\n"
    )
    text += "  - id: views\n    per: activity.page_view.count\n    points: 3\n"
    threshold = draw(hst.integers(1, 80))
    text += (
        f"qualification:\n  - id: points\n    when: {{field: points, op: lt, value: {threshold}}}\n    status: Open\n"
    )
    text += "".join(rules)
    return parse_ruleset(text), text


_START = 1_790_000_000.0


@hst.composite
def _states(draw: hst.DrawFn) -> tuple[LeadState, float]:
    state = new_state("L1", _START)
    state["status_since"] = _START + draw(hst.floats(0, 50 * DAY))
    history: dict[str, list[list[int]]] = {}
    for kind in ("demo_request", "page_view"):
        times = sorted(draw(hst.lists(hst.floats(0, 60 * DAY), max_size=4)))
        if not times:
            continue
        days: dict[int, int] = {}
        for offset in times:
            days[int((_START + offset) // DAY)] = days.get(int((_START + offset) // DAY), 0) + 1
        history[kind] = [[day, count] for day, count in sorted(days.items())]
        state[f"activity.{kind}.count"] = len(times)
        state[f"activity.{kind}.last_at"] = _START + times[-1]
        state["activity.total"] += len(times)
        last = state["last_activity_at"]
        state["last_activity_at"] = max(last or 0.0, _START + times[-1])
    state[HISTORY_FACT] = history
    now = _START + 60 * DAY + draw(hst.floats(0, 30 * DAY))
    return state, now


def _outcome(ruleset: Ruleset, state: LeadState, at: float) -> tuple[object, ...]:
    facts = build_facts(state, at, None)
    outcome = ruleset.evaluate(facts)
    qualified = None if outcome.qualification is None else outcome.qualification.id
    return (qualified, *(clock.condition(facts) for clock in ruleset.clocks))


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(_rulesets(), _states(), hst.floats(0, 1))
def test_nothing_time_can_change_is_missed_before_the_wake_up_time(
    ruleset_text: tuple[Ruleset, str], state_now: tuple[LeadState, float], fraction: float
) -> None:
    ruleset, _ = ruleset_text
    state, now = state_now
    facts = build_facts(state, now, None)
    ruleset.evaluate(facts)
    wake = next_wake(ruleset, facts, now)
    before = _outcome(ruleset, state, now)
    if wake is None:
        for later in (now + 365 * DAY, now + fraction * 400 * DAY):  # nothing left to change: far later neither
            assert _outcome(ruleset, state, later)[1:] == before[1:] or ruleset.decays
        return
    assert wake > now
    just_before = math.nextafter(wake, -math.inf)
    for t in (now + fraction * (wake - now), just_before):
        if now <= t < wake:
            assert _outcome(ruleset, state, t) == before, f"changed at {t} before the wake-up time {wake}"
    assert _outcome(ruleset, state, wake)[1:] != before[1:]  # at the wake-up time a test gives another answer
