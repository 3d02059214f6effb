"""A restart with a backlog, and a worker killed in the middle of one: nothing skipped, nothing counted twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, TopicPartition

from tests.integration.conftest import Flow
from tests.integration.restarts.conftest import _latest_points, _views

pytestmark = pytest.mark.integration


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
    _latest_points(flow, {e["event_id"] for e in events})
    # The killed worker may have sent the decisions of whole partitions and stored none of their states: the
    # restarted one then decides those events again from the start, while every event already has a decision. So
    # the last decisions are read only once the group has committed every event (its decisions are then sent).
    _wait_committed(flow, len(events))
    flow.quiet_read(flow.settings.topic_decisions, 1.0)
    points = _latest_points(flow, {e["event_id"] for e in events})
    assert points == dict.fromkeys(leads, 60)


def _wait_committed(flow: Flow, records: int, timeout: float = 90.0) -> None:
    """Wait until the worker's consumer group has committed ``records`` records of the leads topic in all."""
    s = flow.settings
    partitions = [TopicPartition(s.topic_leads, p) for p in range(s.partitions)]
    admin = KafkaAdminClient(bootstrap_servers=s.bootstrap_servers)
    deadline = time.monotonic() + timeout
    try:
        while True:
            offsets = admin.list_group_offsets({s.app_id: partitions})[s.app_id]
            committed = sum(max(meta.offset, 0) for meta in offsets.values())
            if committed >= records:
                return
            assert time.monotonic() < deadline, f"{committed} of {records} committed\n{flow.log()[-3000:]}"
            time.sleep(0.2)
    finally:
        admin.close()
