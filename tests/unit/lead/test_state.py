"""Merging events into a lead's state: partial updates, counters, replay detection, the facts view."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from tests.builders import T0, activity, upsert, v1_state
from worker.exceptions import StateError
from worker.lead.events import LeadActivity, LeadUpserted
from worker.lead.state import (
    HISTORY_DAYS,
    HISTORY_FACT,
    apply_event,
    build_facts,
    decode_state,
    event_digest,
    new_state,
    profile_of,
    seen,
    upgrade,
)


def apply(state: dict[str, object], event: LeadUpserted | LeadActivity, window: int = 64) -> None:
    apply_event(state, event, event_digest(event.event_id), event.occurred_at.timestamp(), window)


def test_absent_fields_are_kept_and_explicit_nulls_clear() -> None:
    state = new_state("L1", T0.timestamp())
    apply(state, upsert("e1", company="Acme", phone="+1 555", custom={"tier": "gold", "seats": 3}))
    apply(state, upsert("e2", phone=None, title="CTO", custom={"seats": None}))
    assert profile_of(state) == {"company": "Acme", "title": "CTO"}
    assert state["custom.tier"] == "gold"
    assert "phone" not in state
    assert "custom.seats" not in state


def test_a_producer_can_set_the_status() -> None:
    state = new_state("L1", T0.timestamp())
    apply(state, upsert("e1", status="Contacted"))
    assert state["status"] == "Contacted"
    assert "status" not in profile_of(state)


def test_activity_counts_add_up_and_remember_the_latest_time() -> None:
    state = new_state("L1", T0.timestamp())
    later = T0 + dt.timedelta(days=2)
    apply(state, activity("a1", "page_view", later, count=3))
    apply(state, activity("a2", "page_view", T0))  # late arrival: counted, but not "latest"
    apply(state, activity("a3", "demo_request", T0))
    assert state["activity.page_view.count"] == 4
    assert state["activity.page_view.last_at"] == later.timestamp()
    assert state["activity.total"] == 5
    assert state["last_activity_at"] == later.timestamp()


def test_replays_are_recognised_within_the_window() -> None:
    state = new_state("L1", T0.timestamp())
    for i in range(5):
        apply(state, activity(f"a{i}", "page_view"), window=3)
    assert seen(state, event_digest("a4"))
    assert seen(state, event_digest("a2"))
    assert not seen(state, event_digest("a1"))
    assert len(state["recent"].split()) == 3


def test_facts_are_the_flat_view_rules_and_the_model_read() -> None:
    state = new_state("L1", T0.timestamp())
    apply(state, upsert("e1", company="Acme", custom={"tier": "gold"}))
    event = activity("a1", "email_click", count=2)
    apply(state, event)
    now = (T0 + dt.timedelta(days=3)).timestamp()
    facts = build_facts(state, now, event)
    assert facts["company"] == "Acme"
    assert facts.get("email") is None
    assert facts["custom.tier"] == "gold"
    assert facts["activity.email_click.count"] == 2
    assert facts["activity.total"] == 2
    assert facts["days_since_last_activity"] == 3.0
    assert facts["event.type"] == "lead.activity"
    assert facts["event.activity_type"] == "email_click"
    assert facts["now"] == now


def test_an_event_reports_what_it_changed() -> None:
    state = new_state("L1", T0.timestamp())
    first = apply_event(state, upsert("e1", company="Acme", custom={"tier": "gold"}), "d1", T0.timestamp(), 64)
    assert first == {"company", "custom.tier"}
    same = upsert("e2", company="Acme", title="CTO", custom={"tier": "gold"})
    assert apply_event(state, same, "d2", T0.timestamp(), 64) == {"title"}  # the same value changes nothing
    cleared = upsert("e3", company=None, status="Contacted", custom={"tier": None})
    assert apply_event(state, cleared, "d3", T0.timestamp(), 64) == {"company", "status", "custom.tier"}
    kind_only = upsert("e4", custom={"seats": 1})
    apply_event(state, kind_only, "d4", T0.timestamp(), 64)
    assert apply_event(state, upsert("e5", custom={"seats": True}), "d5", T0.timestamp(), 64) == {"custom.seats"}


def test_an_activity_changes_its_counter_and_the_times_it_moves() -> None:
    state = new_state("L1", T0.timestamp())
    later = T0 + dt.timedelta(days=1)
    assert apply_event(state, activity("a1", "page_view", later), "d1", later.timestamp(), 64) == {
        "activity.page_view.count",
        "activity.page_view.last_at",
        "activity.total",
        "last_activity_at",
    }
    late = apply_event(state, activity("a2", "page_view", T0), "d2", T0.timestamp(), 64)
    assert late == {"activity.page_view.count", "activity.total"}  # an older event moves no time


def test_facts_carry_what_changed_for_the_changed_operator() -> None:
    state = new_state("L1", T0.timestamp())
    event = upsert("e1", email="jo@acme.com")
    changed = apply_event(state, event, "d1", T0.timestamp(), 64)
    assert build_facts(state, T0.timestamp(), event, changed)["event.changed"] == {"email"}
    assert build_facts(state, T0.timestamp(), event)["event.changed"] == frozenset()


def day(when: dt.datetime) -> int:
    return int(when.timestamp() // 86400)


def test_history_counts_per_day_and_drops_days_beyond_the_kept_history() -> None:
    state = new_state("L1", T0.timestamp())
    apply(state, activity("a1", "page_view", T0, count=2))
    apply(state, activity("a2", "page_view", T0 + dt.timedelta(hours=1)))
    apply(state, activity("a3", "page_view", T0 + dt.timedelta(days=1)))
    apply(state, activity("a4", "page_view", T0 - dt.timedelta(days=3)))  # late, within the history: inserted
    assert state[HISTORY_FACT]["page_view"] == [[day(T0) - 3, 1], [day(T0), 3], [day(T0) + 1, 1]]
    apply(state, activity("a5", "page_view", T0 + dt.timedelta(days=HISTORY_DAYS)))  # the last 90 days are kept
    assert state[HISTORY_FACT]["page_view"] == [[day(T0) + 1, 1], [day(T0) + HISTORY_DAYS, 1]]
    apply(state, activity("a6", "page_view", T0 - dt.timedelta(days=10)))  # older than the history: not kept
    assert len(state[HISTORY_FACT]["page_view"]) == 2
    assert state["activity.page_view.count"] == 7  # the all-time counter still counts every activity


V1 = v1_state(  # a state as leadflow stored it before layout version 2 (nested maps)
    profile={"company": "Acme", "title": "CTO", "state": "CA"},
    custom={"tier": "gold"},
    activity={"page_view": [3, 1_700_086_400.0], "demo_request": [1, 1_700_000_000.0]},
    history={"page_view": [[19676, 2], [19677, 1]], "demo_request": [[19675, 1]]},
    last_activity_at=1_700_086_400.0,
    status="Working",
    points=35.0,
    score=0.42,
    recent=" 0123456789ab 0123456789ac",
    events=5,
    first_seen_at=1_699_900_000.0,
    updated_at=1_700_086_400.0,
)


def test_a_version_1_state_reads_as_the_same_facts() -> None:
    state = decode_state(orjson.dumps(V1))
    assert state["v"] == 2
    assert profile_of(state) == {"company": "Acme", "title": "CTO", "state": "CA"}
    facts = build_facts(state, 1_700_090_000.0, None)
    assert facts["custom.tier"] == "gold"
    assert facts["activity.page_view.count"] == 3
    assert facts["activity.demo_request.last_at"] == 1_700_000_000.0
    assert facts["activity.total"] == 4
    assert facts[HISTORY_FACT] == V1["history"]
    assert (facts["status"], facts["points"], facts["score"]) == ("Working", 35.0, 0.42)
    assert seen(state, "0123456789ac")  # replays stay recognised across the upgrade
    assert state["events"] == 5
    assert state["first_seen_at"] == 1_699_900_000.0


def test_a_version_1_state_without_history_loads_and_starts_one() -> None:
    old = {k: v for k, v in V1.items() if k != "history"}  # stored before the history existed (still "v": 1)
    state = upgrade(old)
    assert build_facts(state, T0.timestamp(), None)[HISTORY_FACT] == {}
    apply(state, activity("a2", "demo_request"))
    assert state[HISTORY_FACT] == {"demo_request": [[day(T0), 1]]}
    assert state["activity.demo_request.count"] == 2


def test_a_state_this_version_cannot_read_says_so() -> None:
    with pytest.raises(StateError, match=r"lead 'L1' has layout version 3; this leadflow reads versions 1 and 2"):
        decode_state(orjson.dumps({**V1, "v": 3}))
    with pytest.raises(StateError, match="not a leadflow lead state"):
        decode_state(b"[1, 2]")


def test_a_state_round_trips_through_its_json() -> None:
    state = new_state("L1", T0.timestamp())
    apply(state, upsert("e1", company="Acme", custom={"tier": "gold"}))
    apply(state, activity("a1", "page_view", count=2))
    assert decode_state(orjson.dumps(state)) == state
