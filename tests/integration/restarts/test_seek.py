"""No record of a new assignment (a start, a rebalance) is taken before Faust's seek to the committed offsets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.conftest import Flow, activity
from tests.integration.restarts.conftest import _delayed_seek, _wait_for_log
from worker.tools.broker import free_port

pytestmark = pytest.mark.integration


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
