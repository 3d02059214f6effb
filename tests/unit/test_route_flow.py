"""The routing glue between stages, as plain functions: what the lead worker, the pool owner and the SLA clock emit."""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

import orjson
import pytest

from tests.builders import activity, upsert
from tests.routed_rules import CONVERTS_ON_DEMO
from worker.batch import Record, process_batch
from worker.core import Engine, decide
from worker.exceptions import EventError, RulesetError
from worker.routing import Routing, Target
from worker.routing.flow import route_batch
from worker.routing.sla import accepted_notice, sla_batch, sla_breaches, sla_pending
from worker.rules import parse_ruleset
from worker.scoring import default_model_path, load_model

RULES = """
version: "1"
scoring:
  - id: demo
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 50
qualification:
  - id: direct
    when: {all: [{field: points, op: gte, value: 50}, {field: country, op: eq, value: France}]}
    status: Qualified
    convert: true
    opportunity: {queue: Paris}
  - id: hot
    when: {field: points, op: gte, value: 50}
    status: Qualified
    convert: true
routing:
  default: {queue: Inbound}
  rules:
    - id: vip
      when: {field: company, op: eq, value: VIP}
      to: {user: 005-VIP}
    - id: pool
      when: {field: points, op: gte, value: 0}
      to: {pool: ae}
  pools:
    - name: ae
      strategy: weighted_round_robin
      overflow: {queue: Overflow}
      sla: {accept_within_minutes: 10%(then)s}
      members:
        - {id: ann, weight: 200}
        - {id: bob, weight: 100}
        - {id: cy, weight: 100}
"""

NOW = 1_795_000_000.0  # a Monday, 2026-11-16T10:13:20Z


class Msg(NamedTuple):
    key: bytes | None
    value: bytes | None
    topic: str = "route-requests"
    partition: int = 0
    offset: int = 0


def _engine(then: str = "") -> Engine:
    return Engine(parse_ruleset(RULES % {"then": then}), load_model(default_model_path()))


def _routing(engine: Engine) -> Routing:
    assert engine.ruleset.routing is not None
    return engine.ruleset.routing


def _convert(engine: Engine, lead_id: str, **fields: Any) -> Any:
    state, _ = decide(engine, None, upsert(f"{lead_id}-u", lead_id=lead_id, **fields), NOW)
    return decide(engine, state, activity(f"{lead_id}-d", "demo_request", lead_id=lead_id), NOW)[1]


def _requests(engine: Engine, n: int) -> list[Msg]:
    out = []
    for i in range(n):
        decided = _convert(engine, f"L{i}", company=f"Co {i}")
        assert decided.route_request is not None
        out.append(Msg(decided.route_request.pool.encode(), orjson.dumps(decided.route_request.message), offset=i))
    return out


class Tables:
    """The pool owner's two tables, in memory."""

    def __init__(self) -> None:
        self.pools: dict[str, bytes] = {}
        self.done: dict[tuple[str, str], bytes] = {}

    def run(self, engine: Engine, requests: list[Msg], now: float = NOW) -> Any:
        ruleset = engine.ruleset
        out = route_batch(
            ruleset.routing,
            requests,
            self.pools.get,
            lambda request_id, pool: self.done.get((request_id, pool)),
            now,
            ruleset.version,
            Target("queue", "Fallback"),
        )
        self.pools.update(out.pool_states)
        self.done.update(out.done)
        return out


def _owners(out: Any) -> list[str | None]:
    return [orjson.loads(v)["owner_id"] for _, v in out.opportunities]


def test_a_user_target_is_final_at_once_with_its_routing_decision() -> None:
    decided = _convert(_engine(), "V1", company="VIP")
    assert decided.route_request is None
    assert decided.opportunity["owner_id"] == "005-VIP"
    assert decided.opportunity["routing"]["via"] == "rule"
    assert decided.opportunity["routing"]["ref"] == "vip"
    assert decided.routed["target"] == {"user": "005-VIP"}
    assert decided.routed["routing_id"] == decided.opportunity["routing"]["routing_id"]


def test_a_converting_rule_s_own_queue_wins_over_routing() -> None:
    decided = _convert(_engine(), "F1", country="France")
    assert (decided.opportunity["queue"], decided.route_request, decided.routed) == ("Paris", None, None)


def test_a_pool_target_waits_for_the_pool_owner_and_nothing_is_emitted_yet() -> None:
    engine = _engine()
    records = [
        Record(b"P1", orjson.dumps(upsert("u", lead_id="P1").model_dump(mode="json")), "leads", 0, 0, NOW - 2),
        Record(b"P1", orjson.dumps(activity("d", "demo_request", lead_id="P1").model_dump(mode="json")), "leads", 0, 1),
    ]
    result = process_batch(engine, records, lambda _lead: None, NOW)
    assert result.opportunities == []
    assert [key for key, _ in result.route_requests] == [b"ae"]
    request = orjson.loads(result.route_requests[0][1])
    assert (request["kind"], request["attempt"], request["pool"]) == ("route", 1, "ae")
    assert request["request_id"] == request["opportunity"]["opportunity_id"] + "#1"


def test_the_pool_owner_splits_200_100_100_and_a_replayed_request_advances_nothing() -> None:
    engine, tables = _engine(), Tables()
    requests = _requests(engine, 8)
    first = tables.run(engine, requests[:5])
    assert _owners(first) == ["ann", "bob", "ann", "cy", "ann"]
    # the last two requests again (a crash before their offsets were committed), then the rest
    again = tables.run(engine, requests[3:])
    assert _owners(again) == ["cy", "ann", "bob", "ann", "cy"]
    assert again.replayed == 2
    assert again.opportunities[:2] == first.opportunities[3:]  # byte for byte the same records
    assert again.assignments == Counter({("ae", "ann"): 1, ("ae", "bob"): 1, ("ae", "cy"): 1})


def test_the_same_request_twice_in_one_batch_is_answered_once() -> None:
    engine, tables = _engine(), Tables()
    requests = _requests(engine, 2)
    out = tables.run(engine, [requests[0], requests[0], requests[1]])
    assert _owners(out) == ["ann", "ann", "bob"]
    assert out.replayed == 1


def test_a_routing_decision_lists_every_candidate_and_the_opportunity_carries_a_summary() -> None:
    engine, tables = _engine(), Tables()
    out = tables.run(engine, _requests(engine, 1))
    decision = orjson.loads(out.routing_decisions[0][1])
    opportunity = orjson.loads(out.opportunities[0][1])
    assert [(c["member"], c["weight"], c["pointer"]) for c in decision["candidates"]] == [
        ("ann", 200, 0.005),
        ("bob", 100, 0.01),
        ("cy", 100, 0.01),
    ]
    assert (decision["pool"], decision["member"], decision["via"], decision["ref"]) == ("ae", "ann", "rule", "pool")
    assert opportunity["routing"]["member"] == "ann"
    assert opportunity["event_type"] == "opportunity.created"


def test_a_pool_removed_by_a_reload_sends_its_requests_to_the_default_target() -> None:
    engine, tables = _engine(), Tables()
    requests = _requests(engine, 1)
    without = Engine(parse_ruleset('version: "2"\nrouting:\n  default: {queue: Triage}\n'), engine.model)
    out = tables.run(without, requests)
    opportunity = orjson.loads(out.opportunities[0][1])
    assert (opportunity["owner_id"], opportunity["queue"]) == (None, "Triage")
    assert "'ae' is gone" in orjson.loads(out.routing_decisions[0][1])["ref"]


def test_an_unreadable_request_is_a_dead_letter_and_the_others_go_on() -> None:
    engine, tables = _engine(), Tables()
    out = tables.run(engine, [Msg(b"ae", b"{not json"), *_requests(engine, 1)])
    assert [e.reason for _, e in out.dead_letters] == ["not_json"]
    assert _owners(out) == ["ann"]


def _sla_records(out: Any) -> list[Msg]:
    return [Msg(k, v, "sla", 0, i) for i, (k, v) in enumerate(out.sla_notices)]


def test_an_assignment_starts_an_sla_clock_that_acceptance_stops() -> None:
    engine, tables = _engine(), Tables()
    out = tables.run(engine, _requests(engine, 2))
    stored: dict[str, bytes] = {}
    sla, states = sla_batch(_sla_records(out), stored.get)
    assert all(sla_pending(s) for s in states.values())
    stored.update(sla.states)
    first = next(iter(states))
    assert [d[1]["request_id"] for d in sla_breaches(states, NOW + 599)] == []
    key, value = accepted_notice(
        b"ignored", orjson.dumps({"event_type": "opportunity.accepted", "opportunity_id": first})
    )
    sla, states = sla_batch([Msg(key, value, "sla")], stored.get)
    assert not sla_pending(states[first])
    assert sla.accepted == 1


def test_a_breach_asks_the_pool_for_the_next_member_then_the_overflow() -> None:
    engine, tables = _engine(), Tables()
    out = tables.run(engine, _requests(engine, 1))
    stored: dict[str, bytes] = {}
    owners = ["ann"]
    for attempt in (2, 3, 4):
        sla, states = sla_batch(_sla_records(out), stored.get)
        stored.update(sla.states)
        ((pool, request, notice),) = sla_breaches(states, NOW + 601 * attempt)
        assert (pool, request["attempt"], notice["attempt"]) == ("ae", attempt, attempt - 1)
        sla, _ = sla_batch([Msg(notice["opportunity_id"].encode(), orjson.dumps(notice), "sla")], stored.get)
        stored.update(sla.states)
        assert sla_breaches({k: orjson.loads(v) for k, v in stored.items()}, NOW + 10_000) == []
        out = tables.run(engine, [Msg(b"ae", orjson.dumps(request))], now=NOW + 601 * attempt)
        opportunity = orjson.loads(out.opportunities[0][1])
        assert opportunity["event_type"] == "opportunity.reassigned"
        owners.append(opportunity["owner_id"] or opportunity["queue"])
        if opportunity["queue"] == "Overflow":
            assert out.sla_notices == []  # nobody left: the clock stops
            break
    assert owners == ["ann", "bob", "cy", "Overflow"]
    assert out.reassignments == Counter({("ae", "overflow"): 1})


def test_an_escalating_sla_sends_the_breach_to_its_target() -> None:
    engine, tables = _engine(", then: {escalate: {user: MGR}}"), Tables()
    out = tables.run(engine, _requests(engine, 1))
    _sla, states = sla_batch(_sla_records(out), {}.get)
    ((_pool, request, _notice),) = sla_breaches(states, NOW + 601)
    out = tables.run(engine, [Msg(b"ae", orjson.dumps(request))])
    decision = orjson.loads(out.routing_decisions[0][1])
    assert (decision["target"], decision["reason"], decision["pool"]) == ({"user": "MGR"}, "sla_breach", "ae")
    assert out.sla_notices == []
    assert out.reassignments == Counter({("ae", "escalated"): 1})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"nope", "not_json"),
        (b"[1]", "not_an_object"),
        (b'{"event_type": "opportunity.won", "opportunity_id": "o"}', "unknown_event_type"),
        (b'{"event_type": "opportunity.accepted"}', "schema_violation"),
    ],
)
def test_bad_feedback_is_refused_with_its_reason(value: bytes, reason: str) -> None:
    with pytest.raises(EventError) as caught:
        accepted_notice(b"k", value)
    assert caught.value.reason == reason


LEAD_ROUTING = """
version: "1"
scoring:
  - id: visits
    when: {field: activity.page_view.count, op: gte, value: 1}
    points: 10
    per: activity.page_view.count
qualification:
  - id: warm
    when: {field: points, op: gte, value: 20}
    status: Contacted
routing:
  default: {queue: Inbound}
  lead_statuses: [Contacted]
  rules:
    - id: sdr-pool
      when: {field: points, op: gte, value: 0}
      to: {pool: sdr}
  pools:
    - name: sdr
      members: [{id: sam}, {id: sue}]
"""


def test_a_lead_entering_a_routed_status_is_routed_once_through_its_pool() -> None:
    engine = Engine(parse_ruleset(LEAD_ROUTING), load_model(default_model_path()))
    tables, requests = Tables(), []
    for lead_id in ("A", "B"):
        state = None
        for i in range(3):  # 10, 20, 30 points: Contacted from the second view on
            state, decided = decide(engine, state, activity(f"{lead_id}{i}", "page_view", lead_id=lead_id), NOW)
            if decided.route_request is not None:
                requests.append(Msg(b"sdr", orjson.dumps(decided.route_request.message)))
    assert len(requests) == 2  # one per lead: only entering the status routes it
    out = tables.run(engine, [*requests, requests[0]])
    decisions = [orjson.loads(v) for _, v in out.routing_decisions]
    assert [(d["subject"], d["lead_id"], d["member"]) for d in decisions] == [
        ("lead", "A", "sam"),
        ("lead", "B", "sue"),
        ("lead", "A", "sam"),
    ]
    assert decisions[0]["opportunity_id"] is None
    assert [k for k, _ in out.routing_decisions] == [b"A", b"B", b"A"]
    assert out.opportunities == []
    assert out.sla_notices == []


def test_lead_statuses_must_be_statuses_of_the_ruleset() -> None:
    with pytest.raises(RulesetError) as caught:
        parse_ruleset(LEAD_ROUTING.replace("lead_statuses: [Contacted]", "lead_statuses: [Contacte]"))
    assert "lead_statuses: 'Contacte' is not a status of this ruleset" in str(caught.value)
    assert "did you mean 'Contacted'" in str(caught.value)


CHAINED = (
    'version: "1"'
    + CONVERTS_ON_DEMO
    + """
routing:
  default: {pool: backup}
  rules:
    - id: all
      when: {field: points, op: gte, value: 0}
      to: {pool: ae}
  pools:
    - name: ae
      overflow: {pool: backup}
      members: [{id: ann, active: false}]
    - name: backup
      overflow: {queue: Last}
      members: [{id: zed}]
"""
)


def test_an_overflow_to_another_pool_is_handed_on_and_assigned_there() -> None:
    engine, tables = Engine(parse_ruleset(CHAINED), load_model(default_model_path())), Tables()
    (request,) = _requests(engine, 1)
    first = tables.run(engine, [request])
    assert first.opportunities == []  # not placed yet: the backup pool's owner places it
    ((key, forward),) = first.forwards
    assert key == b"backup"
    hop = orjson.loads(first.routing_decisions[0][1])
    assert (hop["pool"], hop["overflow"], hop["target"]) == ("ae", True, {"pool": "backup"})
    second = tables.run(engine, [Msg(key, forward)])
    assert _owners(second) == ["zed"]
    final = orjson.loads(second.routing_decisions[0][1])
    assert final["pool"] == "backup"
    assert final["routing_id"] != hop["routing_id"]  # one decision per pool, both kept by consumers
    again = tables.run(engine, [request, Msg(key, forward)])  # both replayed: answered as before
    assert again.replayed == 2
    assert again.forwards == first.forwards
    assert again.opportunities == second.opportunities


def test_a_removed_pool_hands_its_requests_to_a_default_pool() -> None:
    engine, tables = Engine(parse_ruleset(CHAINED), load_model(default_model_path())), Tables()
    (request,) = _requests(engine, 1)
    without_ae = CHAINED.replace("to: {pool: ae}", "to: {pool: backup}").split("    - name: ae")[0]
    without_ae += "    - name: backup\n      overflow: {queue: Last}\n      members: [{id: zed}]\n"
    out = tables.run(Engine(parse_ruleset(without_ae), engine.model), [request])
    assert [key for key, _ in out.forwards] == [b"backup"]


def test_a_stopped_sla_clock_keeps_only_what_stops_it() -> None:
    engine, tables = _engine(), Tables()
    out = tables.run(engine, _requests(engine, 1))
    stored: dict[str, bytes] = {}
    sla, states = sla_batch(_sla_records(out), stored.get)
    stored.update(sla.states)
    ((opportunity_id, running),) = states.items()
    assert len(stored[opportunity_id]) > 1000  # the opportunity rides along, to be reassigned
    key, value = accepted_notice(
        b"", orjson.dumps({"event_type": "opportunity.accepted", "opportunity_id": opportunity_id})
    )
    sla, states = sla_batch([Msg(key, value, "sla"), *_sla_records(out)], stored.get)  # a late re-sent notice too
    assert not sla_pending(states[opportunity_id])
    assert len(sla.states[opportunity_id]) < 200
    assert running["member"] == "ann"
