"""One person under two lead ids on a real broker: the leads live on different partitions, their claims meet at the
match step (the internal match topic, keyed by the match key), and the answers come back on each lead's own
partition. One converts; the other is merged into it, and its engagement counts there; the same after a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import murmur2

from tests.integration.conftest import Flow, activity, upsert, write_rules
from tests.routed_rules import CONVERTS_ON_DEMO
from worker.tools.broker import free_port

pytestmark = pytest.mark.integration

RULES = f"""version: "dup-1"
{CONVERTS_ON_DEMO}
duplicates:
  match:
    - [email]
    - [email_domain, name, company]
"""
ADA = {"first_name": "Ada", "last_name": "Osei", "company": "Northwind GmbH"}


def _partition(lead_id: str, partitions: int) -> int:
    return (murmur2(lead_id.encode()) & 0x7FFFFFFF) % partitions


def _ids_on_two_partitions(partitions: int) -> tuple[str, str, str]:
    """Three lead ids: the first on one partition, the two others on another one."""
    first = "dup-A"
    others = [f"dup-{i}" for i in range(200) if _partition(f"dup-{i}", partitions) != _partition(first, partitions)]
    return first, others[0], others[1]


def _wait(flow: Flow, what: str, found: Callable[[list[dict[str, Any]]], bool], timeout: float = 90) -> list[Any]:
    """The decisions topic's records (as JSON) once ``found`` holds for them."""
    deadline = time.monotonic() + timeout
    while True:
        records = [o.json for o in flow.read(flow.settings.topic_decisions, 0)]
        if found(records):
            return records
        if time.monotonic() > deadline:
            keys = ("lead_id", "event_id", "action", "event_type")
            shown = "\n".join(str({k: d.get(k) for k in keys}) for d in records)
            raise AssertionError(f"{what} never came; decisions:\n{shown}\n{flow.log()[-3000:]}")
        try:
            flow.read(flow.settings.topic_decisions, len(records) + 1, timeout=1.0)
        except AssertionError:
            continue  # nothing new within a second; the deadline above decides when to give up


def _of(records: list[dict[str, Any]], lead_id: str, event_id: str | None = None) -> list[dict[str, Any]]:
    return [r for r in records if r["lead_id"] == lead_id and (event_id is None or r["event_id"] == event_id)]


def test_a_person_under_two_lead_ids_converts_once_and_the_duplicate_counts_on_the_survivor(
    flow: Flow, tmp_path: Path
) -> None:
    s = flow.settings
    a, b, c = _ids_on_two_partitions(s.partitions)
    worker = flow.start_worker(LEADFLOW_RULES=str(write_rules(tmp_path, RULES)))
    flow.produce([upsert(a, "a-1", email="Ada.Osei@northwind.example", **ADA), activity(a, "a-2", "demo_request")])
    records = _wait(flow, "A's conversion", lambda r: any(d.get("action") == "converted" for d in _of(r, a)))
    assert [d["action"] for d in _of(records, a) if d["event_id"] in ("a-1", "a-2")] == ["none", "none"]  # held
    converted = next(d for d in _of(records, a) if d.get("action") == "converted")
    assert converted["event_id"].startswith("match-")  # converted when its claims were answered

    # the same person again, on another partition, with an address spelled differently, and engaged
    flow.produce(
        [
            upsert(b, "b-1", email=" ADA.OSEI@Northwind.Example", **ADA),
            activity(b, "b-2", "webinar_attended"),
            activity(b, "b-3", "demo_request"),
        ]
    )
    records = _wait(flow, "B's lead.merged", lambda r: any(d.get("event_type") == "lead.merged" for d in r))
    merged = next(d for d in records if d.get("event_type") == "lead.merged")
    assert (merged["lead_id"], merged["survivor_id"]) == (b, a)
    assert set(merged) == {"schema_version", "event_type", "lead_id", "survivor_id", "event_id", "merged_at"}
    merging = _of(records, b, merged["event_id"])[0]
    assert (merging["action"], merging["duplicate_of"]) == ("merged", a)
    # B's engagement arrives on A (forwarded to A's partition) under derived event ids
    records = _wait(
        flow,
        "B's engagement on A",
        lambda r: len([d for d in _of(r, a) if d["event_id"].startswith("merge-")]) == 2,
    )
    on_a = [d for d in _of(records, a) if d["event_id"].startswith("merge-")]
    assert all(d["action"] == "none" for d in on_a)  # A converted already
    assert flow.metric("leadflow_leads_merged_total") == 1.0

    # a restart: the match table comes back from its changelog; a third lead id of the same person, and more of B
    flow.stop_worker(worker)
    flow.start_worker(LEADFLOW_RULES=str(write_rules(tmp_path, RULES)))
    flow.produce([upsert(c, "c-1", email="ada.osei@northwind.example"), activity(b, "b-4", "page_view")])
    records = _wait(
        flow,
        "C's lead.merged and B's forwarded page view",
        lambda r: (
            any(d.get("event_type") == "lead.merged" and d["lead_id"] == c for d in r)
            and any(d["event_id"].startswith("fwd-") for d in _of(r, a))
        ),
    )
    merged_c = next(d for d in records if d.get("event_type") == "lead.merged" and d["lead_id"] == c)
    assert merged_c["survivor_id"] == a
    assert _of(records, b, "b-4")[0]["duplicate_of"] == a

    opportunities = flow.read(s.topic_opportunities, 1)
    assert [o.json["lead_id"] for o in opportunities] == [a]  # one person, one conversion
    assert not [d for d in records if d.get("action") == "converted" and d["lead_id"] != a]

    # what the match step holds and reads names no email: keys are hashes
    for topic in (s.topic_match, f"{s.app_id}-match-keys-changelog"):
        held = flow.read(topic, 1)
        assert all(b"northwind" not in (o.value or b"") + (o.key or b"") for o in held), topic

    # A is erased: its keys are released (tombstones in the match table), so the next lead of that email survives
    erased = {
        "schema_version": 1,
        "event_type": "lead.erased",
        "event_id": "a-x",
        "occurred_at": "2026-11-20T10:00:00Z",
    }
    flow.produce([{**erased, "lead_id": a}])
    _wait(flow, "A's erasure", lambda r: any(d.get("event_type") == "lead.erased" for d in r))
    flow.produce(
        [upsert(c + "-new", "n-1", email="ada.osei@northwind.example"), activity(c + "-new", "n-2", "demo_request")]
    )
    records = _wait(
        flow, "the new lead's conversion", lambda r: any(d.get("action") == "converted" for d in _of(r, c + "-new"))
    )
    assert not [d for d in _of(records, c + "-new") if d.get("duplicate_of")]


def test_two_workers_convert_each_person_once_while_one_is_killed_and_restarted(flow: Flow, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, RULES)
    ports = [flow.web_port, free_port()]

    def start(i: int) -> Any:
        return flow.start_worker(
            LEADFLOW_RULES=str(rules), LEADFLOW_WEB_PORT=str(ports[i]), LEADFLOW_STATE_DIR=str(tmp_path / f"s{i}")
        )

    workers = [start(0), start(1)]
    people = 20
    events = []
    for n in range(people):
        for twin in ("a", "b"):  # one person, two lead ids, both qualify at once
            lead = f"P{n:02d}-{twin}"
            email = f"person{n}@acme{n}.example" if twin == "a" else f" Person{n}@ACME{n}.example"
            events += [upsert(lead, f"{lead}-u", email=email), activity(lead, f"{lead}-d", "demo_request")]
    flow.produce(events[: len(events) // 2])
    time.sleep(0.5)
    workers[0].kill()  # SIGKILL: nothing committed or flushed; the other worker takes its partitions over
    workers[0].wait(timeout=30)
    flow.produce(events[len(events) // 2 :])
    workers[0] = start(0)

    def settled(records: list[dict[str, Any]]) -> bool:
        merged = {d["lead_id"] for d in records if d.get("event_type") == "lead.merged"}
        return len(merged) == people

    records = _wait(flow, "a lead.merged for every person", settled, timeout=180)
    survivors = {}
    for d in records:
        if d.get("event_type") == "lead.merged":
            person = d["lead_id"].split("-")[0]
            assert d["survivor_id"].split("-")[0] == person
            assert d["survivor_id"] != d["lead_id"]
            assert survivors.setdefault(person, d["survivor_id"]) == d["survivor_id"]  # a replay names the same
    converted = _wait(
        flow,
        "every survivor's conversion",
        lambda r: {d["lead_id"] for d in r if d.get("action") == "converted"} >= set(survivors.values()),
        timeout=120,
    )
    assert {d["lead_id"] for d in converted if d.get("action") == "converted"} == set(survivors.values())
    opportunities = flow.read(flow.settings.topic_opportunities, people)
    assert {o.json["lead_id"] for o in opportunities} == set(survivors.values())  # re-sent after the kill: same ids
    assert len({o.json["opportunity_id"] for o in opportunities}) == people
