"""assign(): weighted round robin (LeanData's behaviour), availability, caps, exclusions, overflow and state."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

from tests.unit.routing.helpers import HOUR, MONDAY_NOON, at, pool, run, weighted
from worker.routing import SKIP_REASONS, Candidate, Caps, Member, Target, assign, explain_assignment


def test_weights_200_100_100_split_60_leads_30_15_15() -> None:
    chosen, state = run(weighted(200, 100, 100), 60)
    assert Counter(chosen) == {"A": 30, "B": 15, "C": 15}
    assert {m: s["count"] for m, s in state["members"].items()} == {"A": 30, "B": 15, "C": 15}


def test_the_first_eight_leads_follow_the_lowest_pointer_with_ties_to_the_top() -> None:
    chosen, _ = run(weighted(200, 100, 100), 8)
    assert chosen == ["A", "B", "A", "C", "A", "B", "A", "C"]


def test_plain_round_robin_rotates_in_pool_order() -> None:
    chosen, _ = run(pool("A", "B", "C", strategy="round_robin"), 7)
    assert chosen == ["A", "B", "C", "A", "B", "C", "A"]


def test_ties_go_to_the_top_of_the_pool() -> None:
    chosen, _ = run(pool("Z", "Y", "X"), 3)
    assert chosen == ["Z", "Y", "X"]  # pool order, not alphabetical


def test_the_decision_carries_every_candidate_with_pointer_and_reason() -> None:
    p = pool(Member("A", 200), Member("B", 100, active=False), Member("C", 100))
    state, first = assign(p, None, "r1", MONDAY_NOON)
    assert first.member == "A"
    assert first.target == Target("user", "A")
    assert first.overflow is False
    assert first.candidates == (
        Candidate("A", 200, 0, 1 / 200, None),
        Candidate("B", 100, 0, 1 / 100, "switched_off"),
        Candidate("C", 100, 0, 1 / 100, None),
    )
    _, second = assign(p, state, "r2", MONDAY_NOON + 1)
    assert second.candidates[0] == Candidate("A", 200, 1, 2 / 200, None)
    assert second.member == "A"  # pointers tie at 0.01 (A: 2/200, C: 1/100): the top of the pool wins
    state, third = assign(p, state, "r3", MONDAY_NOON + 2)
    assert third.member == "C"  # A has had its 2 of 3
    second = third
    decision = second.as_dict()
    assert json.loads(json.dumps(decision)) == decision
    assert decision["target"] == {"user": "C"}
    assert decision["request_id"] == "r3"
    assert decision["candidates"][1] == {  # type: ignore[index]
        "member": "B",
        "weight": 100,
        "count": 0,
        "pointer": 0.01,
        "skipped": "switched_off",
    }


def test_a_daily_cap_skips_the_member_until_the_next_day_in_its_time_zone() -> None:
    capped = Member("A", 1, timezone="America/New_York", caps=Caps(per_day=2))
    p = pool(capped, "B")
    evening = at("2026-11-23T22:00", "America/New_York")  # 03:00 UTC on the 24th: still the 23rd in New York
    state = None
    got = []
    for i in range(5):
        state, decision = assign(p, state, f"r{i}", evening + i)
        got.append(decision.member)
        if decision.member == "B":
            assert decision.candidates[0].skipped in (None, "over_daily_cap")
    assert got == ["A", "B", "A", "B", "B"]
    _, decision = assign(p, state, "r5", evening + 5)
    assert decision.candidates[0].skipped == "over_daily_cap"
    after_midnight = at("2026-11-24T00:00:30", "America/New_York")  # a new day in New York (05:00 UTC)
    state, decision = assign(p, state, "r6", after_midnight)
    assert decision.candidates[0].skipped is None
    state, again = assign(p, state, "r7", after_midnight + 1)
    assert again.candidates[0].skipped is None
    assert "A" in (decision.member, again.member)
    assert state["members"]["A"]["day"] == "2026-11-24"


def test_a_rolling_window_cap() -> None:
    p = pool(Member("A", 1, caps=Caps(window_count=2, window_seconds=HOUR)), Member("B", 1))
    state = None
    got = []
    times = [0, 60, 120, 180, 240]  # A gets the 1st and 3rd, then has 2 in the last hour
    for i, t in enumerate(times):
        state, decision = assign(p, state, f"r{i}", MONDAY_NOON + t)
        got.append((decision.member, decision.candidates[0].skipped))
    assert got == [("A", None), ("B", None), ("A", None), ("B", "over_window_cap"), ("B", "over_window_cap")]
    _, decision = assign(p, state, "later", MONDAY_NOON + HOUR + 1)  # the first lead left the window
    assert decision.candidates[0].skipped is None


def test_out_of_office_members_are_skipped_and_not_flooded_when_back() -> None:
    start, end = MONDAY_NOON, MONDAY_NOON + 10 * HOUR
    p = pool(Member("A", 1, out_of_office=((start, end),)), "B", "C")
    state = None
    for i in range(6):
        state, decision = assign(p, state, f"r{i}", start + i)
        assert decision.candidates[0].skipped == "out_of_office"
        assert decision.member in ("B", "C")
    chosen = []
    for i in range(6):
        state, decision = assign(p, state, f"b{i}", end + i)
        chosen.append(decision.member)
    assert Counter(chosen) == {"A": 2, "B": 2, "C": 2}  # a fair share from now on, not six in a row


def test_working_hours_are_judged_in_each_members_time_zone() -> None:
    nine_to_five = (((9 * 60, 17 * 60),),) * 5 + ((), ())
    berlin = Member("BER", 1, timezone="Europe/Berlin", working_hours=nine_to_five)
    new_york = Member("NYC", 1, timezone="America/New_York", working_hours=nine_to_five)
    p = pool(berlin, new_york)
    reasons = {}
    for label, when in (
        ("berlin morning", at("2026-11-23T10:00", "Europe/Berlin")),  # 04:00 in New York
        ("overlap", at("2026-11-23T16:00", "Europe/Berlin")),  # 10:00 in New York
        ("new york afternoon", at("2026-11-23T15:00", "America/New_York")),  # 21:00 in Berlin
        ("saturday", at("2026-11-28T12:00", "Europe/Berlin")),
    ):
        _, decision = assign(p, None, label, when)
        reasons[label] = tuple(c.skipped for c in decision.candidates)
    assert reasons == {
        "berlin morning": (None, "outside_working_hours"),
        "overlap": (None, None),
        "new york afternoon": ("outside_working_hours", None),
        "saturday": ("outside_working_hours", "outside_working_hours"),
    }


def test_switched_off_members_get_nothing() -> None:
    chosen, state = run(pool("A", Member("B", 1, active=False), "C"), 6)
    assert Counter(chosen) == {"A": 3, "C": 3}
    assert state["members"]["B"]["count"] == 0


def test_excluded_members_are_already_tried() -> None:
    p = pool("A", "B", "C")
    _, decision = assign(p, None, "r1", MONDAY_NOON, exclude={"A"})
    assert decision.member == "B"
    assert decision.candidates[0].skipped == "already_tried"


def test_when_everyone_is_skipped_the_lead_overflows_and_no_count_changes() -> None:
    p = pool(Member("A", 1, active=False), "B")
    state, _ = assign(p, None, "r0", MONDAY_NOON)
    before = json.loads(json.dumps(state))
    state, decision = assign(p, state, "r1", MONDAY_NOON + 1, exclude=["B"])
    assert (decision.member, decision.overflow, decision.target) == (None, True, Target("queue", "Overflow"))
    assert [c.skipped for c in decision.candidates] == ["switched_off", "already_tried"]
    assert state == before


def test_the_skip_reasons_are_checked_in_order() -> None:
    everything_wrong = Member(
        "A",
        1,
        active=False,
        out_of_office=((MONDAY_NOON - 1, MONDAY_NOON + 1),),
        working_hours=((),) * 7,
    )
    _, decision = assign(pool(everything_wrong), None, "r", MONDAY_NOON, exclude=["A"])
    assert decision.candidates[0].skipped == SKIP_REASONS[0] == "switched_off"
    _, decision = assign(pool(replace(everything_wrong, active=True)), None, "r", MONDAY_NOON, exclude=["A"])
    assert decision.candidates[0].skipped == "out_of_office"
    _, decision = assign(pool(replace(everything_wrong, active=True, out_of_office=())), None, "r", MONDAY_NOON)
    assert decision.candidates[0].skipped == "outside_working_hours"


def test_members_added_removed_and_reweighted_between_calls() -> None:
    chosen, state = run(weighted(1, 1), 10)
    assert Counter(chosen) == {"A": 5, "B": 5}
    grown = pool(Member("A", 1), Member("B", 1), Member("C", 1))  # C joins: starts fresh, gets a third, not a flood
    chosen, state = run(grown, 9, state=state)
    assert Counter(chosen) == {"A": 3, "B": 3, "C": 3}
    assert state["members"]["C"]["count"] == 3
    shrunk = pool(Member("C", 1), Member("A", 3))  # B leaves, A triples its weight
    chosen, state = run(shrunk, 40, state=state)
    assert set(state["members"]) == {"C", "A"}
    assert Counter(chosen) == {"A": 30, "C": 10}


def test_state_round_trips_through_json_without_changing_results() -> None:
    p = pool(
        Member("A", 200, timezone="Europe/Berlin", caps=Caps(per_day=50, window_count=10, window_seconds=HOUR)),
        Member("B", 100),
        Member("C", 100, caps=Caps(per_day=3)),
    )
    live = None
    stored = None
    for i in range(40):
        now = MONDAY_NOON + i * 97.5
        live, kept = assign(p, live, f"r{i}", now)
        restored, again = assign(p, stored, f"r{i}", now)
        stored = json.loads(json.dumps(restored))
        assert again == kept
    assert stored == live


def test_the_same_inputs_give_the_same_result() -> None:
    p = weighted(3, 5, 7)
    _, state = run(p, 11)
    copy = json.loads(json.dumps(state))
    _, first = assign(p, state, "x", MONDAY_NOON + 100, exclude=["B"])
    _, second = assign(p, copy, "x", MONDAY_NOON + 100, exclude=["B"])
    assert first == second


def test_a_broken_state_starts_fresh_instead_of_failing() -> None:
    p = pool("A", "B")
    for broken in ({"v": 99}, {"v": 1, "members": {"A": {"count": "x"}}}, {"v": 1, "members": []}):
        state, decision = assign(p, broken, "r", MONDAY_NOON)
        assert decision.member == "A"
        assert state["members"]["A"]["count"] == 1


def test_explain_names_every_member_reason_pointer_and_result() -> None:
    p = pool(Member("A", 200), Member("B", 100, active=False), Member("C", 100, caps=Caps(per_day=1)))
    state, _ = assign(p, None, "r0", MONDAY_NOON)
    state, _ = assign(p, state, "r1", MONDAY_NOON + 1)
    state, _ = assign(p, state, "r2", MONDAY_NOON + 2)  # C's one lead of the day
    _, decision = assign(p, state, "r3", MONDAY_NOON + 3)
    lines = explain_assignment(decision.as_dict()).splitlines()
    assert lines[0] == "pool 'p' (weighted_round_robin), request 'r3' at 2026-11-23T12:00:03Z"
    chosen = "chosen (lowest pointer among those within their share)"
    assert lines[1] == f"  A: weight 200, 2 leads so far, pointer 0.0150 - {chosen}"
    assert lines[2] == "  B: weight 100, 0 leads so far, pointer 0.0100 - skipped: switched off (active: false)"
    assert lines[3] == "  C: weight 100, 1 leads so far, pointer 0.0200 - skipped: reached the daily cap"
    assert lines[4] == "result: assigned to user 'A'"
    _, overflowed = assign(pool(Member("A", 1, active=False)), None, "r", MONDAY_NOON)
    assert explain_assignment(overflowed.as_dict()).endswith(
        "every member was skipped; the lead overflows to queue 'Overflow'"
    )


def test_explain_reads_a_decision_record_without_strategy_or_epoch_time() -> None:
    _, decision = assign(pool("A", Member("B", 1, active=False)), None, "r1", MONDAY_NOON)
    record = {k: v for k, v in decision.as_dict().items() if k not in ("strategy", "at")}
    record["decided_at"] = "2026-11-23T12:00:00+00:00"
    lines = explain_assignment(record).splitlines()
    assert lines[0] == "pool 'p', request 'r1' at 2026-11-23T12:00:00+00:00"
    assert [line.split(":")[0].strip() for line in lines[1:3]] == ["A", "B"]
    assert lines[2].endswith("skipped: switched off (active: false)")
    assert lines[3] == "result: assigned to user 'A'"
