"""A lead state stored by an earlier leadflow (the layout of version 1) is read and carried on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import v1_state
from tests.integration.conftest import Flow, activity

pytestmark = pytest.mark.integration


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
