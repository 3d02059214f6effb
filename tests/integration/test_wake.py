"""Time that passes, on a real broker: a lead that goes quiet is recycled with no new event, by a decision that
time triggers, re-routed like a status change by an event; after a restart it is not decided again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.integration.conftest import Flow, activity, upsert, write_rules

pytestmark = pytest.mark.integration

RULES = """
version: "it-time"
statuses: [{name: Open}, {name: Working}, {name: Nurture}]
scoring:
  - id: demo-request
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 40
qualification:
  - id: gone-quiet
    when: {field: days_since_last_activity, op: gt, value: 1}
    status: Nurture
  - id: working
    when: {field: points, op: gte, value: 40}
    status: Working
routing:
  default: {queue: Nurture Desk}
  lead_statuses: [Nurture]
"""


def test_a_quiet_lead_is_recycled_by_time_once_even_across_a_restart(flow: Flow, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, RULES)
    env = {"LEADFLOW_RULES": str(rules), "LEADFLOW_WAKEUP_INTERVAL": "0.5"}
    # a first worker that checks for wake-ups once an hour: it decides the events and stores the wake-up time
    worker = flow.start_worker(**{**env, "LEADFLOW_WAKEUP_INTERVAL": "3600"})
    three_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).isoformat()
    flow.produce(
        [
            upsert("Q1", "Q1-u", three_days_ago, company="Quiet Ltd"),
            activity("Q1", "Q1-demo", "demo_request", three_days_ago),  # then nothing: a day later it is quiet
        ]
    )
    assert len(flow.read(flow.settings.topic_decisions, 2, timeout=90)) == 2
    assert len(flow.quiet_read(flow.settings.topic_decisions, 2.0)) == 2  # its wake-up time passed; no check yet
    flow.stop_worker(worker)

    # the next worker finds the lead's wake-up time in the table it recovers, and decides it
    worker = flow.start_worker(**env)
    decisions = [o.json for o in flow.read(flow.settings.topic_decisions, 3, timeout=90)]
    assert [(d["trigger"], d["status"], d["action"]) for d in decisions] == [
        ("event", "Open", "none"),
        ("event", "Working", "status_changed"),
        ("time", "Nurture", "status_changed"),
    ]
    woken = decisions[2]
    assert woken["previous_status"] == "Working"
    assert woken["matched_rules"] == ["demo-request", "gone-quiet"]
    assert woken["event_id"].startswith("time:")
    quiet_since = dt.datetime.fromisoformat(three_days_ago) + dt.timedelta(days=1)
    assert dt.datetime.fromisoformat(woken["occurred_at"]) - quiet_since < dt.timedelta(milliseconds=1)
    (routed,) = [o.json for o in flow.read(flow.settings.topic_routing_decisions, 1, timeout=60)]
    assert (routed["subject"], routed["lead_id"], routed["target"]["queue"]) == ("lead", "Q1", "Nurture Desk")
    flow.wait_metric("leadflow_time_decisions_total", 1, action="status_changed")
    flow.wait_metric("leadflow_time_in_status_seconds_count", 1, status="Working")

    flow.stop_worker(worker, kill=True)  # wherever it was: the restarted worker must not decide Q1 again
    flow.start_worker(**env)
    flow.produce([upsert("M1", "M1-u", dt.datetime.now(dt.UTC).isoformat(), company="Marker plc")])
    deadline_reads = flow.read(flow.settings.topic_decisions, 4, timeout=90)
    assert any(o.json["lead_id"] == "M1" for o in deadline_reads)
    after = [o.json for o in flow.quiet_read(flow.settings.topic_decisions, 3.0)]
    by_time = [d for d in after if d["trigger"] == "time"]
    assert {d["decision_id"] for d in by_time} == {woken["decision_id"]}  # re-sent at most, with the same id
    assert all({**d, "decided_at": None} == {**woken, "decided_at": None} for d in by_time)
    assert [d["lead_id"] for d in after if d["trigger"] == "event"] == ["Q1", "Q1", "M1"]
