"""Lead state across worker restarts: nothing lost, nothing skipped, nothing counted twice.

The embedded broker answers ListOffsets with an offset short of the real end when the last batch held several
records; a Faust table then loses updates on restart (memory store) or crash-loops (RocksDB). These tests write
changelog batches of many records and restart the worker, so they fail without leadflow's transport fix.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.builders import v1_state
from tests.integration.conftest import Flow, activity, write_rules
from worker.tools.broker import free_port

pytestmark = pytest.mark.integration

COUNTING_RULES = """
version: "count-1"
scoring:
  - id: views
    per: activity.page_view.count
    points: 1
qualification:
  - id: never
    when: {field: points, op: gte, value: 1000000000}
    status: Contacted
"""


@pytest.fixture
def counting_rules(tmp_path: Path) -> Path:
    return write_rules(tmp_path, COUNTING_RULES, "count.yaml")


def _views(leads: list[str], round_: int, per_lead: int) -> list[dict[str, Any]]:
    return [
        activity(lead, f"{lead}-r{round_}-{i}", "page_view", f"2026-11-{3 + round_:02d}T10:{i % 60:02d}:00Z")
        for i in range(per_lead)
        for lead in leads
    ]


def _latest_points(flow: Flow, want_ids: set[str], timeout: float = 90.0) -> dict[str, float]:
    """Read decisions until every event id in ``want_ids`` has one; the last points seen per lead."""
    deadline = time.monotonic() + timeout
    topic = flow.settings.topic_decisions
    decisions: list[dict[str, Any]] = []  # every decision read so far, in order, each decoded once
    decided: set[str] = set()
    while True:
        for output in flow.read(topic, 0)[len(decisions) :]:
            decisions.append(output.json)
            decided.add(decisions[-1]["event_id"])
        missing = want_ids - decided
        if not missing:
            break
        if time.monotonic() > deadline:
            shown = sorted(missing)[:10]
            msg = f"{len(missing)} events never got a decision, e.g. {shown}\n{flow.log()[-3000:]}"
            raise AssertionError(msg)
        try:
            flow.read(topic, len(decisions) + 1, timeout=1.0)
        except AssertionError:
            continue  # nothing new within a second; the deadline above decides when to give up
    points: dict[str, float] = {}
    for d in decisions:
        points[d["lead_id"]] = d["points"]
    return points


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_lead_state_survives_restarts_exactly(flow: Flow, counting_rules: Path, store: str) -> None:
    leads = [f"L{n:03d}" for n in range(40)]
    expected = dict.fromkeys(leads, 0)
    produced: set[str] = set()
    for round_ in range(3):
        worker = flow.start_worker(LEADFLOW_RULES=str(counting_rules), LEADFLOW_STORE=store)
        events = _views(leads, round_, per_lead=5)
        flow.produce(events)
        produced |= {e["event_id"] for e in events}
        for lead in leads:
            expected[lead] += 5
        points = _latest_points(flow, produced)
        assert points == expected, f"after restart {round_}"
        flow.stop_worker(worker)
        assert worker.returncode == 0, flow.log()[-3000:]
    assert "ConsistencyError" not in flow.log()


def test_a_restart_with_a_backlog_skips_nothing(flow: Flow, counting_rules: Path) -> None:
    leads = [f"B{n:03d}" for n in range(50)]
    expected = dict.fromkeys(leads, 0)
    produced: set[str] = set()
    worker = flow.start_worker(LEADFLOW_RULES=str(counting_rules))
    for round_ in range(4):
        events = _views(leads, round_, per_lead=4 if round_ == 0 else 30)
        if round_ > 0:
            flow.stop_worker(worker)
            assert worker.returncode == 0, flow.log()[-3000:]
            flow.produce(events)  # the backlog builds up while no worker runs
            worker = flow.start_worker(LEADFLOW_RULES=str(counting_rules))
        else:
            flow.produce(events)
        produced |= {e["event_id"] for e in events}
        for e in events:
            expected[e["lead_id"]] += 1
        assert _latest_points(flow, produced) == expected, f"round {round_}"


def test_a_worker_killed_mid_stream_loses_nothing_and_counts_nothing_twice(flow: Flow, counting_rules: Path) -> None:
    leads = [f"K{n:03d}" for n in range(50)]
    events = _views(leads, 0, per_lead=60)  # 3,000 events; fewer per lead than the replay window (64)
    flow.produce(events)
    worker = flow.start_worker(LEADFLOW_RULES=str(counting_rules))
    decided_before = len(flow.read(flow.settings.topic_decisions, 100))
    worker.kill()  # SIGKILL in the middle of the backlog: no chance to commit or flush anything
    worker.wait(timeout=30)
    assert decided_before < len(events), "the worker finished before it could be killed: make the backlog longer"
    flow.start_worker(LEADFLOW_RULES=str(counting_rules))
    points = _latest_points(flow, {e["event_id"] for e in events})
    assert points == dict.fromkeys(leads, 60)


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_a_redelivery_beyond_the_remembered_event_ids_counts_nothing_twice(
    flow: Flow, counting_rules: Path, store: str
) -> None:
    """A lead state remembers its last 4 event ids here, and offsets are committed every 30 s: after SIGKILL, Kafka
    delivers again 30 events per lead that their states hold, and only the records' positions tell them apart
    from new events. One more event per lead, produced after the restart, is decided after them."""
    leads = [f"R{n:03d}" for n in range(50)]
    first, after = _views(leads, 0, per_lead=30), _views(leads, 1, per_lead=1)
    settings = {"LEADFLOW_DEDUPE_WINDOW": "4", "LEADFLOW_COMMIT_INTERVAL": "30", "LEADFLOW_STORE": store}
    flow.produce(first)
    worker = flow.start_worker(LEADFLOW_RULES=str(counting_rules), **settings)
    assert _latest_points(flow, {e["event_id"] for e in first}) == dict.fromkeys(leads, 30)
    time.sleep(1.0)  # the states of the last batch are stored just after its decisions are sent
    worker.kill()  # SIGKILL: no offset was committed
    worker.wait(timeout=30)
    flow.start_worker(LEADFLOW_RULES=str(counting_rules), **settings)
    flow.produce(after)
    assert _latest_points(flow, {e["event_id"] for e in first + after}) == dict.fromkeys(leads, 31)


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_a_state_stored_by_an_earlier_leadflow_is_read_and_carried_on(
    flow: Flow, counting_rules: Path, store: str
) -> None:
    """A lead state in the layout of version 1 (nested maps), as an earlier leadflow left it in the table's
    changelog, goes on counting where it stopped, and its remembered event ids are still recognised."""
    import orjson
    from kafka import KafkaProducer

    from worker.lead.state import event_digest

    worker = flow.start_worker(LEADFLOW_RULES=str(counting_rules), LEADFLOW_STORE=store)
    flow.produce([activity("V000", "V000-warmup", "page_view")])  # the worker is up: its changelog exists
    flow.read(flow.settings.topic_decisions, 1)
    flow.stop_worker(worker)
    old = v1_state(
        "V001",
        profile={"company": "Oldco"},
        activity={"page_view": [7, 1_793_700_000.0]},
        history={"page_view": [[20760, 7]]},
        last_activity_at=1_793_700_000.0,
        status="Open",
        points=7.0,
        recent=" " + event_digest("V001-old"),
        events=7,
    )
    producer = KafkaProducer(bootstrap_servers=flow.settings.bootstrap_servers, acks="all")
    producer.send(f"{flow.settings.app_id}-lead-state-changelog", key=b"V001", value=orjson.dumps(old))
    producer.flush()
    producer.close()
    flow.start_worker(LEADFLOW_RULES=str(counting_rules), LEADFLOW_STORE=store)
    flow.produce([activity("V001", "V001-old", "page_view"), activity("V001", "V001-new", "page_view")])
    flow.read(flow.settings.topic_decisions, 2)
    decisions = [o.json for o in flow.quiet_read(flow.settings.topic_decisions, 2.0) if o.json["lead_id"] == "V001"]
    (new,) = decisions  # V001-old's id was remembered by the old state: a replay, nothing is sent for it
    assert new["event_id"] == "V001-new"
    assert new["points"] == 8.0  # 7 page views before the upgrade, 1 after
    assert flow.metric("leadflow_duplicate_events_total") == 1
    assert "Traceback" not in flow.log()


SEEK_DELAY_SECONDS = 3
DELAYED_SEEK = f"""
# Loaded by the worker's interpreter (PYTHONPATH): Faust's seek of the stream partitions to their committed offsets
# waits {SEEK_DELAY_SECONDS} s, with the partitions resumed and the fetcher running, as a slow broker makes it.
import asyncio
import sys

from faust.transport import consumer

_perform_seek = consumer.Consumer.perform_seek


async def perform_seek(self):
    print("test hook: Faust's seek to the committed offsets waits {SEEK_DELAY_SECONDS} s", file=sys.stderr, flush=True)
    await asyncio.sleep({SEEK_DELAY_SECONDS})
    await _perform_seek(self)
    print("test hook: Faust's seek to the committed offsets is done", file=sys.stderr, flush=True)


consumer.Consumer.perform_seek = perform_seek
"""


def _delayed_seek(tmp_path: Path) -> dict[str, str]:
    """The environment of a worker whose Faust seek to the committed offsets waits (``DELAYED_SEEK``)."""
    hook = tmp_path / "delayed-seek"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(DELAYED_SEEK)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)}


def _wait_for_log(flow: Flow, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in flow.log():
        assert time.monotonic() < deadline, f"{text!r} not in the worker's log\n{flow.log()[-3000:]}"
        time.sleep(0.05)


def test_no_record_is_taken_before_the_seek_to_the_committed_offsets(
    flow: Flow, counting_rules: Path, tmp_path: Path
) -> None:
    """Faust resumes a new assignment's partitions and seeks them to their committed offsets only afterwards;
    with that seek slowed down, a record taken meanwhile would be decided and then read again from the committed
    offset (counted as a duplicate), or, on a partition never committed (not moved by the seek), dropped for good.
    Each event is decided once, after the seek, on committed partitions and never committed ones alike."""
    # the memory store recovers its table from the changelog at every start: the fetcher runs before the seek
    rules = {"LEADFLOW_RULES": str(counting_rules), "LEADFLOW_STORE": "memory"}
    worker = flow.start_worker(**rules)
    flow.produce([activity("S000", "S000-0", "page_view")])
    flow.read(flow.settings.topic_decisions, 1)
    flow.stop_worker(worker)  # S000's partition is committed; the other partitions were never
    leads = [f"S{n:03d}" for n in range(17)]  # S000 again, and leads spread over the other partitions
    flow.produce([activity(lead, f"{lead}-1", "page_view") for lead in leads])
    # no commit while the seek waits: without the hold, the seek goes back over what was decided meanwhile
    flow.start_worker(**rules, **_delayed_seek(tmp_path), LEADFLOW_COMMIT_INTERVAL="60")
    flow.read(flow.settings.topic_decisions, 1 + len(leads))
    _wait_for_log(flow, "test hook: Faust's seek to the committed offsets is done")  # what follows it is counted too
    decisions = [o.json for o in flow.quiet_read(flow.settings.topic_decisions, 2.0)]
    assert sorted(d["event_id"] for d in decisions) == sorted(["S000-0", *(f"{lead}-1" for lead in leads)])
    assert {d["lead_id"]: d["points"] for d in decisions if d["event_id"] != "S000-0"} == {
        lead: 2.0 if lead == "S000" else 1.0 for lead in leads
    }
    assert flow.metric("leadflow_duplicate_events_total") == 0, flow.log()[-3000:]
    assert "Traceback" not in flow.log()


def test_a_rebalance_takes_no_record_before_the_seek_to_the_committed_offsets(
    flow: Flow, counting_rules: Path, tmp_path: Path
) -> None:
    """The same window opens at every rebalance: a second worker joins (its seek slowed down) while events arrive;
    each is decided once, and the joining worker reads none twice."""
    rules = {"LEADFLOW_RULES": str(counting_rules), "LEADFLOW_STORE": "memory"}
    flow.start_worker(**rules, LEADFLOW_STATE_DIR=str(tmp_path / "s0"))
    first = [activity(f"R{n:03d}", f"R{n:03d}-0", "page_view") for n in range(16)]
    flow.produce(first)
    flow.read(flow.settings.topic_decisions, len(first))
    time.sleep(2)  # every decision committed (LEADFLOW_COMMIT_INTERVAL 0.5 s): the joining worker reads none again
    port = free_port()
    flow.start_worker(
        **rules,
        **_delayed_seek(tmp_path),
        LEADFLOW_STATE_DIR=str(tmp_path / "s1"),
        LEADFLOW_WEB_PORT=str(port),
        LEADFLOW_COMMIT_INTERVAL="60",  # no commit while its seek waits
    )
    _wait_for_log(flow, "test hook: Faust's seek to the committed offsets waits")  # the rebalance is on
    second = [activity(f"R{n:03d}", f"R{n:03d}-1", "page_view") for n in range(16)]
    flow.produce(second)  # while the joining worker's seek waits
    flow.read(flow.settings.topic_decisions, len(first) + len(second))
    _wait_for_log(flow, "test hook: Faust's seek to the committed offsets is done")  # what follows it is counted too
    decisions = [o.json for o in flow.quiet_read(flow.settings.topic_decisions, 2.0)]
    assert sorted(d["event_id"] for d in decisions) == sorted(e["event_id"] for e in first + second)
    assert {d["lead_id"]: d["points"] for d in decisions if d["event_id"].endswith("-1")} == {
        e["lead_id"]: 2.0 for e in second
    }
    assert flow.metric("leadflow_events_consumed_total", port=port, event_type="lead.activity"), "it got no partition"
    assert flow.metric("leadflow_duplicate_events_total", port=port) == 0, flow.log()[-3000:]
    assert "Traceback" not in flow.log()


def test_batches_committed_side_by_side_keep_each_leads_order_and_newest_state(
    flow: Flow, counting_rules: Path
) -> None:
    """Tiny batches, four being committed at once: each lead's decisions come out in its events' order, and
    the state stored last (what a restarted worker reads back) is the newest."""
    leads = [f"P{n:03d}" for n in range(20)]
    small = {"LEADFLOW_RULES": str(counting_rules), "LEADFLOW_BATCH_SIZE": "7", "LEADFLOW_BATCHES_IN_FLIGHT": "4"}
    events = _views(leads, 0, per_lead=40)  # 800 events in batches of 7: every lead's events span many batches
    flow.produce(events)
    worker = flow.start_worker(**small)
    assert _latest_points(flow, {e["event_id"] for e in events}) == dict.fromkeys(leads, 40)
    seen: dict[str, list[float]] = {}
    for output in flow.read(flow.settings.topic_decisions, len(events)):
        decision = output.json
        seen.setdefault(decision["lead_id"], []).append(decision["points"])
    for lead in leads:  # a lead's decisions share a partition: in the order they were decided
        assert seen[lead][:40] == [float(n) for n in range(1, 41)], lead
    flow.stop_worker(worker)
    assert worker.returncode == 0, flow.log()[-3000:]
    more = _views(leads, 1, per_lead=10)
    flow.produce(more)
    flow.start_worker(**small)
    points = _latest_points(flow, {e["event_id"] for e in events + more})
    assert points == dict.fromkeys(leads, 50)
