"""One person under two lead ids, through the pure core: the lead step's claims, the match step's answers, and back.

The worker does the same with the internal match topic between the two steps (tests/integration/test_duplicates.py);
here the records are handed over by hand, so every step is a plain function call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.routed_rules import CONVERTS_ON_DEMO
from worker.batch import BatchResult, Record, process_batch
from worker.core import Engine
from worker.rules import parse_ruleset
from worker.rules.duplicates import match_batch
from worker.scoring import default_model_path, load_model

DUPLICATES = """
duplicates:
  match:
    - [email]
    - [email_domain, name, company]
"""


@pytest.fixture(scope="module")
def engine() -> Engine:
    ruleset = parse_ruleset(f'version: "d-1"\n{CONVERTS_ON_DEMO}{DUPLICATES}')
    return Engine(ruleset, load_model(default_model_path()))


def _upsert(lead_id: str, event_id: str, **lead: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_type": "lead.upserted",
        "event_id": event_id,
        "occurred_at": "2026-11-02T09:00:00Z",
        "lead_id": lead_id,
        "lead": lead,
    }


def _activity(lead_id: str, event_id: str, kind: str, at: str = "2026-11-03T10:00:00Z") -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_type": "lead.activity",
        "event_id": event_id,
        "occurred_at": at,
        "lead_id": lead_id,
        "activity": {"type": kind, "count": 1},
    }


class World:
    """Two partitions of leads, the lead states and the match table, moved by hand."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.states: dict[str, bytes] = {}
        self.table: dict[str, bytes] = {}
        self.offsets = [0, 0]
        self.decisions: list[dict[str, Any]] = []

    def leads(self, partition: int, values: list[dict[str, Any]] | list[tuple[bytes, bytes]]) -> BatchResult:
        records = []
        for item in values:
            key, value = (item["lead_id"].encode(), orjson.dumps(item)) if isinstance(item, dict) else item
            records.append(Record(key, value, "leads", partition, self.offsets[partition], 1.0))
            self.offsets[partition] += 1
        load: Callable[[str], bytes | None] = self.states.get
        result = process_batch(self.engine, records, load, 1_794_130_400.0)
        assert not result.dead_letters, result.dead_letters
        self.states.update(result.states)
        self.decisions += [orjson.loads(v) for _, v in result.decisions]
        return result

    def match(self, result: BatchResult) -> list[tuple[int, bytes, bytes]]:
        out = match_batch(result.match_requests, self.table.get, 2)
        for key, value in out.entries.items():
            if value is None:
                self.table.pop(key, None)
            else:
                self.table[key] = value
        return out.answers

    def deliver(self, answers: list[tuple[int, bytes, bytes]]) -> list[BatchResult]:
        results = []
        for partition in (0, 1):
            mine = [(k, v) for p, k, v in answers if p == partition]
            if mine:
                results.append(self.leads(partition, mine))
        return results


def test_one_person_converts_once_and_the_later_lead_is_merged_into_the_first(engine: Engine) -> None:
    world = World(engine)
    ada = {"email": "Ada.Osei@Northwind.example", "first_name": "Ada", "last_name": "Osei", "company": "Northwind"}
    first = world.leads(0, [_upsert("A", "a1", **ada), _activity("A", "a2", "demo_request")])
    assert len(first.match_requests) == 2  # the email rule and the domain + name + company rule
    assert first.opportunities == []  # qualified by the rules, but held until its claims are answered
    assert [d["action"] for d in world.decisions] == ["none", "none"]

    second = world.leads(1, [_upsert("B", "b1", **{**ada, "email": "ADA.OSEI@northwind.example "})])
    answers = world.match(first) + world.match(second)
    assert [(p, k) for p, k, _ in answers] == [(0, b"A"), (0, b"A"), (1, b"B"), (1, b"B")]

    answered = world.deliver(answers)
    a_done, b_done = answered
    assert len(a_done.opportunities) == 1  # A survives both keys: it converts now, once
    assert [d["action"] for d in world.decisions[-5:-3]] == ["none", "converted"]
    merged = [orjson.loads(v) for _, v in b_done.decisions]
    assert merged[0]["action"] == "merged"
    assert merged[0]["duplicate_of"] == "A"
    assert merged[1] == {
        "schema_version": 1,
        "event_type": "lead.merged",
        "lead_id": "B",
        "survivor_id": "A",
        "event_id": merged[0]["event_id"],
        "merged_at": "2026-11-08T09:33:20+00:00",
    }
    assert b_done.merged == 1
    assert b_done.forwards == []  # B had no engagement yet
    assert merged[2]["action"] == "none"  # the second key's answer: a duplicate already

    # B's later engagement counts on A, on A's partition, under a derived event id; B never converts
    later = world.leads(1, [_activity("B", "b2", "demo_request"), _activity("B", "b3", "page_view")])
    assert later.opportunities == []
    assert all(orjson.loads(v)["duplicate_of"] == "A" for _, v in later.decisions)
    assert [(p, k) for p, k, _ in later.forwards] == [(0, b"A"), (0, b"A")]
    forwarded = [orjson.loads(v) for _, _, v in later.forwards]
    assert [f["activity"]["type"] for f in forwarded] == ["demo_request", "page_view"]
    assert all(f["lead_id"] == "A" and f["event_id"].startswith("fwd-") for f in forwarded)
    on_a = world.leads(0, [(k, v) for _, k, v in later.forwards])
    assert on_a.opportunities == []  # A converted already: at most once
    state_a = orjson.loads(world.states["A"])
    assert state_a["activity.demo_request.count"] == 2
    assert state_a["activity.page_view.count"] == 1

    # replays change nothing: the same answers, the same forwarded events
    again = world.deliver(answers)
    assert all(r.decisions == [] and r.forwards == [] for r in again)
    assert world.leads(0, [(k, v) for _, k, v in later.forwards]).decisions == []


def test_engagement_before_the_merge_moves_to_the_survivor_with_the_merge(engine: Engine) -> None:
    world = World(engine)
    first = world.leads(0, [_upsert("A", "a1", email="bo@acme.example")])
    second = world.leads(1, [_upsert("B", "b1", email="bo@acme.example"), _activity("B", "b2", "webinar_attended")])
    answers = world.match(first) + world.match(second)
    (_, b_done) = world.deliver(answers)
    (partition, key, value) = b_done.forwards[0]
    assert (partition, key) == (0, b"A")
    moved = orjson.loads(value)
    assert moved["activity"]["type"] == "webinar_attended"
    assert moved["activity"]["count"] == 1
    assert moved["event_id"].startswith("merge-")


def test_a_forged_answer_for_a_key_the_lead_never_claimed_is_ignored(engine: Engine) -> None:
    world = World(engine)
    world.leads(0, [_upsert("A", "a1", email="cy@acme.example"), _activity("A", "a2", "demo_request")])
    forged = {
        "schema_version": 1,
        "event_type": "lead.matched",
        "event_id": "forged",
        "occurred_at": "2026-11-02T09:00:00Z",
        "lead_id": "A",
        "match_key": "f" * 32,
        "survivor_id": "Z",
        "survivor_partition": 1,
    }
    result = world.leads(0, [forged])
    assert result.decisions == []
    assert result.duplicates == 1
    assert "duplicate_of" not in orjson.loads(world.states["A"])


def test_an_erased_lead_releases_its_keys_so_the_next_claimant_survives(engine: Engine) -> None:
    world = World(engine)
    world.match(world.leads(0, [_upsert("A", "a1", email="di@acme.example")]))
    erased = {
        "schema_version": 1,
        "event_type": "lead.erased",
        "event_id": "a-x",
        "occurred_at": "2026-11-04T09:00:00Z",
        "lead_id": "A",
    }
    released = world.leads(0, [erased])
    assert [orjson.loads(v)["lead_id"] for _, v in released.match_requests] == ["A"]
    assert b"di@acme" not in b"".join(v for _, v in released.match_requests)
    world.match(released)
    assert world.table == {}
    answers = world.match(world.leads(1, [_upsert("B", "b1", email="di@acme.example")]))
    assert orjson.loads(answers[0][2])["survivor_id"] == "B"


def test_without_a_duplicates_section_nothing_is_claimed_or_held() -> None:
    ruleset = parse_ruleset(f'version: "d-0"\n{CONVERTS_ON_DEMO}')
    world = World(Engine(ruleset, load_model(default_model_path())))
    result = world.leads(0, [_upsert("A", "a1", email="e@x.example"), _activity("A", "a2", "demo_request")])
    assert result.match_requests == []
    assert len(result.opportunities) == 1
    assert world.decisions[-1]["duplicate_of"] is None


def test_a_duplicate_of_a_duplicate_passes_its_engagement_on_to_the_survivor(engine: Engine) -> None:
    world = World(engine)
    person = {"first_name": "Eve", "last_name": "Ng"}
    world.deliver(world.match(world.leads(0, [_upsert("A", "a1", email="eve@one.example")])))
    world.deliver(world.match(world.leads(1, [_upsert("B", "b1", email="eve@one.example")])))
    # B, a duplicate of A, gets a company: a new key, which it claims first
    world.deliver(world.match(world.leads(1, [_upsert("B", "b2", **person, company="Two Ltd")])))
    c = world.leads(0, [_upsert("C", "c1", email="e.ng@one.example", **person, company="TWO")])
    (c_done,) = world.deliver(world.match(c))
    merged = [orjson.loads(v) for _, v in c_done.decisions if b'"lead.merged"' in v]
    assert [m["survivor_id"] for m in merged] == ["B"]  # its email is its own; its name and company are B's
    later = world.leads(0, [_activity("C", "c2", "meeting")])
    (on_b,) = [world.leads(p, [(k, v)]) for p, k, v in later.forwards]
    assert [(p, k) for p, k, _ in on_b.forwards] == [(0, b"A")]  # B passes it on
    world.leads(0, [(k, v) for _, k, v in on_b.forwards])
    assert orjson.loads(world.states["A"])["activity.meeting.count"] == 1


def test_an_answer_for_a_lead_never_seen_leaves_nothing_stored_or_cached(engine: Engine) -> None:
    # a worker keeps decoded states in a cache between batches: a lead known only from the cache would count its
    # days in status from the stray answer on, and a restarted worker (which has only what was stored) would not
    answer = {
        "schema_version": 1,
        "event_type": "lead.matched",
        "event_id": "stray",
        "occurred_at": "2026-11-02T09:00:00Z",
        "lead_id": "N",
        "match_key": "e" * 32,
        "survivor_id": "Z",
        "survivor_partition": 1,
    }
    cache: dict[str, Any] = {}
    result = process_batch(engine, [Record(b"N", orjson.dumps(answer), "leads", 0, 0, 1.0)], {}.get, 1.0, cache=cache)
    assert (result.decisions, result.states, result.duplicates) == ([], {}, 1)
    assert cache == {}
