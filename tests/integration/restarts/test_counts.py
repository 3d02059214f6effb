"""A lead's count across clean restarts, and batches committed side by side: nothing lost, skipped or counted
twice, and each lead's decisions in its events' order."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Flow
from tests.integration.restarts.conftest import _latest_points, _views

pytestmark = pytest.mark.integration


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
