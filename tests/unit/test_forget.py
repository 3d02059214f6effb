"""Forgetting a converted lead downstream of the lead step (docs/PRIVACY.md): the ``erased`` notice deletes the
pools' answers, drops the lead's requests still on their way, stops the SLA clock and deletes the pipeline's row;
each leaves alone what the lead's events after the erasure made, so a redelivered notice erases nothing new."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.builders import activity, upsert
from worker.batch import Record, process_batch
from worker.core import Engine
from worker.lead import ids
from worker.opportunities import Pipeline, pipeline_batch
from worker.routing import Target
from worker.routing.flow import RouteBatch, answer_keys, route_batch
from worker.routing.sla import erased_notice, later_than_erasure, sla_batch, sla_pending
from worker.rules import parse_ruleset
from worker.scoring import default_model_path, load_model
from worker.tools.forecast import fold_opportunities

RULES = """
version: "forget-1"
scoring:
  - id: demo
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 50
qualification:
  - id: hot
    when: {field: points, op: gte, value: 50}
    status: Qualified
    convert: true
routing:
  default: {queue: Inbound}
  rules:
    - id: pool
      when: {field: points, op: gte, value: 0}
      to: {pool: ae}
  pools:
    - name: ae
      strategy: round_robin
      overflow: {pool: backup}
      sla: {accept_within_minutes: 10}
      members:
        - {id: ann}
    - name: backup
      strategy: round_robin
      members:
        - {id: cy}
"""
EMAIL = "ada.osei@forget.example"
NOW = 1_795_000_000.0


class Msg(NamedTuple):
    key: bytes | None
    value: bytes | None
    topic: str = "route-requests"
    partition: int = 0
    offset: int = 0


def _engine() -> Engine:
    return Engine(parse_ruleset(RULES, "forget.yaml"), load_model(default_model_path()))


def _lead_record(offset: int, value: bytes, lead_id: str = "L1") -> Record:
    return Record(lead_id.encode(), value, "leads", 0, offset, timestamp=NOW + offset)


def _event_bytes(event: Any) -> bytes:
    return event.model_dump_json(exclude_unset=True).encode()


def _erasure(event_id: str, lead_id: str = "L1") -> bytes:
    return orjson.dumps(
        {
            "schema_version": 1,
            "event_type": "lead.erased",
            "event_id": event_id,
            "occurred_at": "2026-11-20T10:00:00Z",
            "lead_id": lead_id,
        }
    )


class Leads:
    """The lead step over one partition of the leads topic: records at increasing offsets, the states in memory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.states: dict[str, bytes | None] = {}
        self.offset = 0

    def send(self, *values: bytes, lead_id: str = "L1") -> Any:
        records = []
        for value in values:
            records.append(_lead_record(self.offset, value, lead_id))
            self.offset += 1
        result = process_batch(self.engine, records, self.states.get, NOW)
        self.states.update(result.states)
        for erased in result.erased:
            self.states[erased] = None
        return result

    def convert(self, lead_id: str = "L1", n: int = 0) -> Any:
        return self.send(
            _event_bytes(upsert(f"{lead_id}-u{n}", lead_id=lead_id, company="Forget", email=EMAIL, first_name="Ada")),
            _event_bytes(activity(f"{lead_id}-d{n}", "demo_request", lead_id=lead_id)),
            lead_id=lead_id,
        )


class Pools:
    """The pool owner over the requests topic (one partition per pool, as the stage stores them), in memory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pools: dict[str, bytes] = {}
        self.done: dict[tuple[bytes, int], bytes] = {}  # (key, partition) → value, as the route-done table
        self.erased: dict[str, list[Any]] = {}
        self.offsets: dict[int, int] = {}

    def records(self, messages: list[tuple[bytes, bytes, int]]) -> list[Msg]:
        out = []
        for key, value, partition in messages:
            offset = self.offsets.get(partition, 0)
            self.offsets[partition] = offset + 1
            out.append(Msg(key, value, partition=partition, offset=offset))
        return out

    def run(self, records: list[Msg]) -> RouteBatch:
        partition_of = {m.key: m.partition for m in records if m.key is not None}
        ruleset = self.engine.ruleset
        out = route_batch(
            ruleset.routing,
            records,
            self.pools.get,
            lambda request_id, pool: self.done.get((f"{request_id}@{pool}".encode(), partition_of[pool.encode()])),
            NOW,
            ruleset.version,
            Target("queue", "Fallback"),
            lambda opportunity_id, partition: self.done.get((opportunity_id.encode(), partition)),
            self.erased,
        )
        self.pools.update(out.pool_states)
        self.erased.update(out.erasures)
        for (request_id, pool), value in out.done.items():
            self.done[f"{request_id}@{pool}".encode(), partition_of[pool.encode()]] = value
        for key, partition in out.forgotten:
            self.done.pop((key, partition), None)
        for (opportunity_id, partition), index in out.indexes.items():
            if index is None:
                self.done.pop((opportunity_id.encode(), partition), None)
            else:
                self.done[opportunity_id.encode(), partition] = orjson.dumps(index)
        return out


def _requests(result: Any, partition: int = 0) -> list[tuple[bytes, bytes, int]]:
    return [(key, value, partition) for key, value in result.route_requests]


def _notices(result: Any, partitions: int = 1) -> list[tuple[bytes, bytes, int]]:
    return [(*erased_notice(o, position), p) for o, position in result.erased_opportunities for p in range(partitions)]


def _holding(done: dict[tuple[bytes, int], bytes]) -> list[bytes]:
    return [key for (key, _), value in done.items() if EMAIL.encode() in value]


def test_a_request_carries_its_origin_and_an_erasure_names_where_it_was_read() -> None:
    leads = Leads(_engine())
    converted = leads.convert()
    [(_, request)] = converted.route_requests
    assert orjson.loads(request)["origin"] == ["leads", 0, 1, NOW + 1]
    erased = leads.send(_erasure("x1"))
    [(opportunity_id, position)] = erased.erased_opportunities
    assert (opportunity_id, position) == (ids.opportunity_id("L1"), ("leads", 0, 2, NOW + 2))
    key, notice = erased_notice(opportunity_id, position)
    assert key == opportunity_id.encode()
    assert orjson.loads(notice) == {"kind": "erased", "opportunity_id": opportunity_id, "position": [*position]}
    assert EMAIL.encode() not in notice


def test_an_erasure_deletes_the_opportunity_s_answers_and_index_but_no_other_s() -> None:
    engine = _engine()
    leads, pools = Leads(engine), Pools(engine)
    ours, other = leads.convert(), leads.convert("L2")
    routed = pools.run(pools.records(_requests(ours) + _requests(other)))
    assert len(routed.opportunities) == 2
    opportunity_id = ids.opportunity_id("L1")
    assert answer_keys(pools.done[opportunity_id.encode(), 0]) == {f"{opportunity_id}#1@ae": ["leads", 0, 1, NOW + 1]}
    assert len(_holding(pools.done)) == 2

    erased = pools.run(pools.records(_notices(leads.send(_erasure("x1")), partitions=3)))
    assert erased.forgotten == [(f"{opportunity_id}#1@ae".encode(), 0)]
    assert erased.indexes == {(opportunity_id, 0): None}  # partitions 1 and 2 held nothing of it: no writes
    assert erased.retracted == [(opportunity_id, ["leads", 0, 4, NOW + 4])]  # what its answer sent, sent again
    assert (erased.opportunities, erased.routing_decisions, erased.sla_notices) == ([], [], [])
    assert _holding(pools.done) == [f"{ids.opportunity_id('L2')}#1@ae".encode()]  # the other lead's answer stays
    again = pools.run(pools.records(_notices(leads.send(_erasure("x2")), partitions=3)))  # erased twice
    assert (again.forgotten, again.indexes, again.retracted, again.dead_letters) == ([], {}, [], [])


def test_a_request_waiting_behind_its_erasure_or_coming_after_it_is_never_assigned() -> None:
    engine = _engine()
    leads, pools = Leads(engine), Pools(engine)
    converted = leads.convert()
    erasure = _notices(leads.send(_erasure("x1")))
    waiting = pools.run(pools.records(_requests(converted) + erasure))  # the pool's worker was behind
    assert (waiting.dropped, waiting.opportunities, waiting.done, waiting.sla_notices) == (1, [], {}, [])
    assert (waiting.forgotten, waiting.retracted) == ([], [])  # nothing was answered: nothing to take back
    assert pools.pools == {}  # no pointer moved
    # a request of the erased lead that comes later (an SLA reassignment, a hand-on from another pool) is dropped
    late = {**orjson.loads(converted.route_requests[0][1]), "kind": "reassign", "attempt": 2, "exclude": ["ann"]}
    after = pools.run(pools.records([(b"ae", orjson.dumps(late), 0)]))
    assert (after.dropped, after.opportunities, after.done) == (1, [], {})
    # the lead sent again after its erasure converts again (the same opportunity id): routed as a new lead
    again = pools.run(pools.records(_requests(leads.convert(n=1))))
    assert (again.dropped, [orjson.loads(v)["owner_id"] for _, v in again.opportunities]) == (0, ["ann"])


def test_a_redelivered_erasure_leaves_what_the_lead_s_later_events_made() -> None:
    engine = _engine()
    leads, pools = Leads(engine), Pools(engine)
    pools.run(pools.records(_requests(leads.convert())))
    erasure = _notices(leads.send(_erasure("x1")))
    pools.run(pools.records(erasure))
    assert _holding(pools.done) == []
    pools.run(pools.records(_requests(leads.convert(n=1))))  # sent again and converted again
    assert len(_holding(pools.done)) == 1
    replayed = pools.run(pools.records(erasure))  # Kafka delivers the erasure again
    assert (replayed.forgotten, replayed.indexes) == ([], {})
    assert len(_holding(pools.done)) == 1


def test_an_overflow_handed_on_after_the_erasure_is_dropped_at_the_next_pool() -> None:
    engine = _engine()
    leads, pools = Leads(engine), Pools(engine)
    converted = leads.convert()
    request = orjson.loads(converted.route_requests[0][1])
    erasure = _notices(leads.send(_erasure("x1")), partitions=2)
    pools.run(pools.records([erasure[1]]))  # the backup pool's partition reads the erasure first
    handed_on = {**request, "pool": "backup", "hops": 1}
    out = pools.run(pools.records([(b"backup", orjson.dumps(handed_on), 1)]))
    assert (out.dropped, out.opportunities) == (1, [])


def _assigned(opportunity_id: str, origin: list[Any] | None) -> bytes:
    return orjson.dumps(
        {
            "kind": "assigned",
            "opportunity_id": opportunity_id,
            "attempt": 1,
            "pool": "ae",
            "member": "ann",
            "deadline": NOW + 600,
            "tried": ["ann"],
            "opportunity": {"opportunity_id": opportunity_id, "contact": {"email": EMAIL}},
            "route": {},
            "origin": origin,
        }
    )


def test_the_sla_clock_keeps_a_clock_started_after_the_erasure_it_is_told_again() -> None:
    stored: dict[str, bytes | None] = {}
    key, notice = erased_notice("opp-1", ("leads", 0, 5, NOW + 5))
    first, _ = sla_batch([Msg(key, _assigned("opp-1", ["leads", 0, 1, NOW + 1]), "sla", 0, 0)], stored.get)
    stored.update(first.states)
    erased, clocks = sla_batch([Msg(key, notice, "sla", 0, 1)], stored.get)
    assert (erased.states, clocks) == ({"opp-1": None}, {})
    stored.update(erased.states)
    later, _ = sla_batch([Msg(key, _assigned("opp-1", ["leads", 0, 7, NOW + 7]), "sla", 0, 2)], stored.get)
    stored.update(later.states)
    replayed, clocks = sla_batch([Msg(key, notice, "sla", 0, 1)], stored.get)
    assert (replayed.erased, replayed.states, clocks) == (set(), {}, {})  # nothing changes: the new clock runs on
    assert sla_pending(orjson.loads(stored["opp-1"] or b"{}"))


def _created(opportunity_id: str) -> bytes:
    return orjson.dumps(
        {
            "event_type": "opportunity.created",
            "opportunity_id": opportunity_id,
            "lead_id": "L1",
            "stage_name": "Prospecting",
            "probability": 10,
            "forecast_category": "Pipeline",
            "close_date": "2026-12-31",
            "converted_at": "2026-11-16T10:13:20Z",
            "amount": 1000.0,
            "lead_source": "Web",
            "score": 0.5,
            "contact": {"email": EMAIL},
        }
    )


def test_the_pipeline_deletes_an_erased_opportunity_s_row_once_and_its_sums() -> None:
    engine = _engine()
    stored: dict[str, bytes | None] = {}
    key, notice = erased_notice("opp-1", ("leads", 0, 5, NOW + 5))
    created = pipeline_batch([Msg(key, _created("opp-1"), "pipeline", 0, 0)], stored.get, engine.ruleset.stages)
    stored.update(created.states)
    sums = Pipeline()
    for before, after in created.changes:
        sums.change(before, after)
    assert sums.cells
    erased = pipeline_batch([Msg(key, notice, "pipeline", 0, 1)], stored.get, engine.ruleset.stages)
    assert erased.states == {"opp-1": None}
    for before, after in erased.changes:
        sums.change(before, after)
    assert (sums.cells, sums.outcomes) == ({}, {})
    stored.update(erased.states)
    recreated = pipeline_batch([Msg(key, _created("opp-1"), "pipeline", 0, 2)], stored.get, engine.ruleset.stages)
    stored.update(recreated.states)
    replayed = pipeline_batch([Msg(key, notice, "pipeline", 0, 1)], stored.get, engine.ruleset.stages)
    assert (replayed.states, replayed.replayed) == ({}, 1)  # the row made after it stays


def test_an_erasure_and_a_creation_in_one_pipeline_batch_leave_the_new_row() -> None:
    engine = _engine()
    key, notice = erased_notice("opp-1", ("leads", 0, 5, NOW + 5))
    records = [Msg(key, _created("opp-1"), "pipeline", 0, 0), Msg(key, notice, "pipeline", 0, 1)]
    records.append(Msg(key, _created("opp-1"), "pipeline", 0, 2))
    out = pipeline_batch(records, {}.get, engine.ruleset.stages)
    assert orjson.loads(out.states["opp-1"] or b"{}")["offset"] == 2


_POSITIONS = st.tuples(st.sampled_from(["leads", "leads-v2"]), st.integers(0, 2), st.integers(0, 50)).flatmap(
    lambda t: st.tuples(st.just(list(t)), st.none() | st.floats(0, 1e10)).map(lambda p: [*p[0], p[1]])
)


@settings(max_examples=300)
@given(_POSITIONS, _POSITIONS)
def test_only_a_later_offset_of_the_same_partition_is_newer_than_an_erasure(
    origin: list[Any], erasure: list[Any]
) -> None:
    newer = later_than_erasure(origin, erasure)
    assert newer == (origin[:2] == erasure[:2] and origin[2] > erasure[2])  # timestamps never keep anything
    assert not later_than_erasure(None, erasure)  # written before positions were kept: erased
    assert not later_than_erasure(origin, None)
    assert not later_than_erasure(origin[:3], erasure)  # not a position


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["convert", "erase", "split"]), min_size=1, max_size=12))
def test_however_the_requests_are_batched_no_answer_outlives_its_erasure(steps: list[str]) -> None:
    engine = _engine()
    leads, pools = Leads(engine), Pools(engine)
    pending: list[tuple[bytes, bytes, int]] = []
    converted = erased_last = False
    for n, step in enumerate(steps):
        if step == "convert" and not converted:
            pending += _requests(leads.convert(n=n))
            converted, erased_last = True, False
        elif step == "erase":
            result = leads.send(_erasure(f"x{n}"))
            pending += _notices(result)
            converted, erased_last = False, erased_last or bool(result.erased_opportunities)
        elif step == "split":
            pools.run(pools.records(pending))
            pending = []
    pools.run(pools.records(pending))
    if erased_last:
        assert _holding(pools.done) == []
    assert len(_holding(pools.done)) <= 1


def test_the_forecast_forgets_an_opportunity_whose_tombstone_is_on_the_opportunities_topic() -> None:
    engine = _engine()
    key = b"opp-1"
    created = [Msg(key, _created("opp-1"), "opportunities", 0, 0), Msg(b"opp-2", _created("opp-2"), "opportunities")]
    kept = fold_opportunities(created, [], engine.ruleset.stages)
    assert len(kept.states) == 2
    folded = fold_opportunities([*created, Msg(key, None, "opportunities", 0, 1)], [], engine.ruleset.stages)
    assert ([s["opportunity_id"] for s in folded.states], folded.dead_letters) == (["opp-2"], {})


def test_erasing_again_reaches_an_answer_a_restarted_pool_owner_made_after_the_first_erasure() -> None:
    engine = _engine()
    leads, pools = Leads(engine), Pools(engine)
    converted = leads.convert()
    pools.run(pools.records(_notices(leads.send(_erasure("x1")))))
    pools.erased.clear()  # the pool's owner restarted: its memory of erasures is gone
    late = {**orjson.loads(converted.route_requests[0][1]), "kind": "reassign", "attempt": 2, "exclude": []}
    assigned = pools.run(pools.records([(b"ae", orjson.dumps(late), 0)]))
    assert (assigned.dropped, len(_holding(pools.done))) == (0, 1)  # the known limit (docs/PRIVACY.md)
    again = leads.send(_erasure("x2"))  # the lead has no state left, and its opportunity is still named
    assert [o for o, _ in again.erased_opportunities] == [ids.opportunity_id("L1")]
    pools.run(pools.records(_notices(again)))
    assert _holding(pools.done) == []


def test_an_erasure_of_an_opportunity_never_seen_writes_nothing() -> None:
    engine = _engine()
    key, notice = erased_notice("opp-9", ("leads", 0, 5, NOW + 5))
    sla, clocks = sla_batch([Msg(key, notice, "sla", 0, 0)], {}.get)
    pipeline = pipeline_batch([Msg(key, notice, "pipeline", 0, 0)], {}.get, engine.ruleset.stages)
    pools = Pools(engine).run([Msg(key, notice)])
    assert (sla.states, sla.erased, clocks, pipeline.states, pipeline.changes) == ({}, set(), {}, {}, [])
    assert (pools.forgotten, pools.indexes, pools.retracted) == ([], {}, [])
    assert pools.erasures == {"opp-9": ["leads", 0, 5, NOW + 5]}  # remembered all the same


def test_a_pool_owner_remembers_the_later_of_two_erasures_whatever_order_it_reads_them_in() -> None:
    engine = _engine()
    pools = Pools(engine)
    _, older = erased_notice("opp-1", ("leads", 0, 5, NOW + 5))
    key, newer = erased_notice("opp-1", ("leads", 0, 9, NOW + 9))
    pools.run([Msg(key, newer, partition=0), Msg(key, older, partition=1)])
    pools.run([Msg(key, older, partition=2)])
    assert pools.erased == {"opp-1": ["leads", 0, 9, NOW + 9]}
