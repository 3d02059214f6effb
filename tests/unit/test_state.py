"""Merging events into a lead's state: partial updates, counters, replay detection, the facts view."""

from __future__ import annotations

import datetime as dt

from tests.builders import T0, activity, upsert
from worker.events import LeadActivity, LeadUpserted
from worker.state import apply_event, build_facts, event_digest, new_state, seen


def apply(state: dict[str, object], event: LeadUpserted | LeadActivity, window: int = 64) -> None:
    apply_event(state, event, event_digest(event.event_id), event.occurred_at.timestamp(), window)


def test_absent_fields_are_kept_and_explicit_nulls_clear() -> None:
    state = new_state("L1", T0.timestamp())
    apply(state, upsert("e1", company="Acme", phone="+1 555", custom={"tier": "gold", "seats": 3}))
    apply(state, upsert("e2", phone=None, title="CTO", custom={"seats": None}))
    assert state["profile"] == {"company": "Acme", "title": "CTO"}
    assert state["custom"] == {"tier": "gold"}


def test_a_producer_can_set_the_status() -> None:
    state = new_state("L1", T0.timestamp())
    apply(state, upsert("e1", status="Contacted"))
    assert state["status"] == "Contacted"
    assert "status" not in state["profile"]


def test_activity_counts_add_up_and_remember_the_latest_time() -> None:
    state = new_state("L1", T0.timestamp())
    later = T0 + dt.timedelta(days=2)
    apply(state, activity("a1", "page_view", later, count=3))
    apply(state, activity("a2", "page_view", T0))  # late arrival: counted, but not "latest"
    apply(state, activity("a3", "demo_request", T0))
    assert state["activity"]["page_view"] == [4, later.timestamp()]
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
    assert facts["email"] is None
    assert facts["custom.tier"] == "gold"
    assert facts["activity.email_click.count"] == 2
    assert facts["activity.total"] == 2
    assert facts["days_since_last_activity"] == 3.0
    assert facts["event.type"] == "lead.activity"
    assert facts["event.activity_type"] == "email_click"
    assert facts["now"] == now
