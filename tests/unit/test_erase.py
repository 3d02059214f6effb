"""Forgetting a lead in the core: ``lead.erased`` drops the state, sends an audit record without personal data,
and the lead's later events start from nothing (docs/PRIVACY.md)."""

from __future__ import annotations

import orjson
import pytest

from tests.builders import activity, upsert
from worker.batch import Record, process_batch
from worker.core import Engine
from worker.exceptions import EventError
from worker.lead import ids
from worker.lead.events import LeadActivity, LeadErased, LeadErasure, LeadUpserted
from worker.lead.parse import parse_event
from worker.routing.sla import erased_notice, sla_batch, sla_pending
from worker.rules import parse_ruleset
from worker.scoring import default_model_path, load_model

RULES = """
version: "erase-1"
scoring:
  - id: demo
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 50
  - id: no-email
    when: {field: has_opted_out_of_email, op: eq, value: true}
    points: -5
  - id: no-calls
    when: {field: do_not_call, op: eq, value: true}
    points: -7
qualification:
  - id: hot
    when: {field: points, op: gte, value: 40}
    status: Qualified
    convert: true
"""
EMAIL = "ada.osei@northwind.example"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(parse_ruleset(RULES, "erase.yaml"), load_model(default_model_path()))


def _erased(event_id: str = "x1", lead_id: str = "L1") -> bytes:
    return orjson.dumps(
        {
            "schema_version": 1,
            "event_type": "lead.erased",
            "event_id": event_id,
            "occurred_at": "2026-11-20T10:00:00Z",
            "lead_id": lead_id,
        }
    )


def _bytes(event: LeadUpserted | LeadActivity) -> bytes:
    return event.model_dump_json(exclude_unset=True).encode()  # an absent field stays unchanged


def _record(offset: int, value: bytes, key: bytes = b"L1") -> Record:
    return Record(key, value, "leads", 0, offset, timestamp=1_800_000_000.0 + offset)


def _converted(engine: Engine, store: dict[str, bytes | None]) -> None:
    records = [
        _record(0, _bytes(upsert("e1", company="Northwind", email=EMAIL, first_name="Ada"))),
        _record(1, _bytes(activity("e2", "demo_request"))),
    ]
    result = process_batch(engine, records, store.get, 1.0)
    assert [orjson.loads(v)["action"] for _, v in result.decisions] == ["none", "converted"]
    store.update(result.states)


def test_an_erased_lead_loses_its_state_and_gets_one_audit_record_without_personal_data(engine: Engine) -> None:
    store: dict[str, bytes | None] = {}
    _converted(engine, store)
    result = process_batch(engine, [_record(2, _erased())], store.get, 2_000_000_000.0)
    assert result.erased == ["L1"]
    assert result.states == {}
    # for the steps that hold its opportunity (docs/PRIVACY.md), with where the erasure was read
    assert result.erased_opportunities == [(ids.opportunity_id("L1"), ("leads", 0, 2, 1_800_000_002.0))]
    assert (result.opportunities, result.routing_decisions, result.dead_letters) == ([], [], [])
    [(key, value)] = result.decisions
    assert key == b"L1"
    audit = LeadErasure.model_validate_json(value)
    assert orjson.loads(value) == {
        "schema_version": 1,
        "event_type": "lead.erased",
        "lead_id": "L1",
        "event_id": "x1",
        "erased_at": "2033-05-18T03:33:20+00:00",
    }
    assert audit.lead_id == "L1"
    assert EMAIL.encode() not in value
    assert b"Northwind" not in value
    assert result.events_by_type["lead.erased"] == 1
    assert sum(result.decisions_by.values()) == 0  # an erasure decides no status


def test_later_events_of_an_erased_lead_start_from_nothing(engine: Engine) -> None:
    store: dict[str, bytes | None] = {}
    _converted(engine, store)
    erased = process_batch(engine, [_record(2, _erased())], store.get, 2.0)
    for lead_id in erased.erased:
        store[lead_id] = None
    again = process_batch(engine, [_record(3, _bytes(upsert("e3", company="Fresh")))], store.get, 3.0)
    state = orjson.loads(again.states["L1"])
    assert state["events"] == 1
    assert (state["converted"], state["opportunity_id"]) == (False, None)
    assert {"email", "first_name", "company"} - set(state) == {"email", "first_name"}
    assert again.leads_created[None] == 1  # counted as a new lead


def test_an_erasure_within_a_batch_forgets_what_came_before_it(engine: Engine) -> None:
    records = [
        _record(0, _bytes(upsert("e1", company="Northwind", email=EMAIL))),
        _record(1, _erased()),
        _record(2, _bytes(upsert("e3", company="Fresh"))),
    ]
    result = process_batch(engine, records, {}.get, 1.0)
    assert result.erased == []  # the lead ends the batch with a new state, stored over the old one
    state = orjson.loads(result.states["L1"])
    assert (state["events"], state.get("email"), state["company"]) == (1, None, "Fresh")
    assert [orjson.loads(v).get("event_type") for _, v in result.decisions] == [None, "lead.erased", None]


def test_erasing_twice_or_a_lead_never_seen_is_harmless(engine: Engine) -> None:
    store: dict[str, bytes | None] = {}
    never = process_batch(engine, [_record(0, _erased())], store.get, 1.0)
    assert (never.erased, len(never.decisions)) == (["L1"], 1)  # idempotent: nothing left to delete
    # its would-be opportunity is forgotten all the same (its id depends on the lead id alone): nothing there
    assert never.erased_opportunities == [(ids.opportunity_id("L1"), ("leads", 0, 0, 1_800_000_000.0))]
    _converted(engine, store)
    first = process_batch(engine, [_record(5, _erased())], store.get, 2.0)
    store["L1"] = None
    second = process_batch(engine, [_record(6, _erased("x2"))], store.get, 3.0)
    assert (first.erased, first.states) == (second.erased, second.states) == (["L1"], {})


def test_a_redelivered_erasure_does_not_erase_the_state_its_later_events_made(engine: Engine) -> None:
    store: dict[str, bytes | None] = {}
    records = [_record(0, _bytes(upsert("e1", company="Old"))), _record(1, _erased())]
    first = process_batch(engine, records, store.get, 1.0)
    assert first.erased == ["L1"]
    store["L1"] = None
    later = process_batch(engine, [_record(2, _bytes(upsert("e3", company="New")))], store.get, 2.0)
    store.update(later.states)
    replayed = process_batch(engine, [_record(1, _erased())], store.get, 3.0)  # Kafka delivers it again
    assert (replayed.erased, replayed.decisions, replayed.duplicates) == ([], [], 1)


def test_the_erasure_event_is_parsed_and_refused_with_extra_fields() -> None:
    event = parse_event(b"L1", _erased())
    assert isinstance(event, LeadErased)
    with_fields = orjson.loads(_erased())
    with_fields["lead"] = {"email": EMAIL}
    with pytest.raises(EventError) as caught:
        parse_event(b"L1", orjson.dumps(with_fields))
    assert caught.value.reason == "schema_violation"


def test_opt_outs_are_lead_fields_that_rules_read(engine: Engine) -> None:
    records = [_record(0, _bytes(upsert("e1", has_opted_out_of_email=True, do_not_call=True)))]
    result = process_batch(engine, records, {}.get, 1.0)
    decision = orjson.loads(result.decisions[0][1])
    assert decision["points"] == -12
    assert decision["matched_rules"] == ["no-email", "no-calls"]
    state = orjson.loads(result.states["L1"])
    assert (state["has_opted_out_of_email"], state["do_not_call"]) == (True, True)
    cleared = process_batch(engine, [_record(1, _bytes(upsert("e2", do_not_call=False)))], result.states.get, 2.0)
    assert orjson.loads(cleared.decisions[0][1])["matched_rules"] == ["no-email"]


def test_a_rule_comparing_an_opt_out_with_text_is_refused() -> None:
    bad = RULES.replace("op: eq, value: true}\n    points: -5", 'op: eq, value: "yes"}\n    points: -5')
    with pytest.raises(Exception, match="has_opted_out_of_email"):
        parse_ruleset(bad, "bad.yaml")


def test_an_erased_opportunity_loses_its_sla_state_and_its_clock() -> None:
    assigned = {
        "kind": "assigned",
        "opportunity_id": "opp-1",
        "attempt": 1,
        "pool": "ae",
        "member": "ann",
        "deadline": 1_900_000_000.0,
        "tried": ["ann"],
        "opportunity": {"opportunity_id": "opp-1", "contact": {"email": EMAIL}},
        "route": {},
    }
    stored: dict[str, bytes | None] = {}
    first, clocks = sla_batch([_record(0, orjson.dumps(assigned), b"opp-1")], stored.get)
    assert sla_pending(clocks["opp-1"])
    stored.update(first.states)
    key, notice = erased_notice("opp-1")
    erased, clocks = sla_batch([_record(1, notice, key)], stored.get)
    assert (erased.states, erased.erased, clocks) == ({"opp-1": None}, {"opp-1"}, {})
