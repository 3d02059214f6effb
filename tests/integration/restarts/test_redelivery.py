"""A redelivery after SIGKILL far beyond the event ids a lead state remembers counts nothing twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.conftest import Flow
from tests.integration.restarts.conftest import _latest_points, _views

pytestmark = pytest.mark.integration


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
