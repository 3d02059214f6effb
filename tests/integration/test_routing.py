"""Routing on a real broker: exact weighted splits across two workers with kills, SLA reassignment, accounts."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from tests.integration.conftest import Flow, Output, activity, upsert, write_rules
from tests.routed_rules import routed
from worker.tools.broker import free_port

pytestmark = pytest.mark.integration

WEIGHTED = "        - {id: ann, weight: 200}\n        - {id: bob, weight: 100}\n        - {id: cy, weight: 100}"


def _rules(tmp_path: Path, members: str = WEIGHTED, sla: str = "", name: str = "rules.yaml") -> Path:
    return write_rules(tmp_path, routed(members, "route-1", f"      {sla}\n" if sla else ""), name)


def _converting(lead_ids: list[str], **lead: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for lead_id in lead_ids:
        events.append(upsert(lead_id, f"{lead_id}-u", **{"company": f"Company {lead_id}", **lead}))
        events.append(activity(lead_id, f"{lead_id}-d", "demo_request"))
    return events


def _latest(outputs: list[Output]) -> dict[str, dict[str, Any]]:
    """The newest record per opportunity id (a re-sent record is identical; a reassignment comes later)."""
    latest: dict[str, dict[str, Any]] = {}
    for out in outputs:
        value = out.json
        latest[value["opportunity_id"]] = value
    return latest


def _distinct(flow: Flow, topic: str, n: int, timeout: float = 120) -> list[Output]:
    """Everything read from ``topic`` once it holds ``n`` distinct opportunity ids (re-sent records repeat ids)."""
    deadline = time.monotonic() + timeout
    got = flow.read(topic, n, timeout=timeout)
    while len({o.json["opportunity_id"] for o in got}) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            msg = f"{topic}: {len({o.json['opportunity_id'] for o in got})} of {n} opportunities\n{flow.log()[-4000:]}"
            raise AssertionError(msg)
        got = flow.read(topic, len(got) + 1, timeout=left)
    return got


def test_two_workers_split_a_weighted_pool_exactly_while_each_is_killed_and_restarted(
    flow: Flow, tmp_path: Path
) -> None:
    rules = _rules(tmp_path)
    ports = [flow.web_port, free_port()]

    def start(i: int) -> Any:
        return flow.start_worker(
            LEADFLOW_RULES=str(rules), LEADFLOW_WEB_PORT=str(ports[i]), LEADFLOW_STATE_DIR=str(tmp_path / f"s{i}")
        )

    workers = [start(0), start(1)]
    waves = [[f"W{w}-{n:02d}" for n in range(20)] for w in range(3)]
    flow.produce(_converting(waves[0]))
    flow.read(flow.settings.topic_opportunities, 20, timeout=90)
    for i, wave in ((0, waves[1]), (1, waves[2])):
        flow.produce(_converting(wave))
        time.sleep(0.3)
        workers[i].kill()  # SIGKILL: nothing committed or flushed; the other worker takes the pool over
        workers[i].wait(timeout=30)
        workers[i] = start(i)
    opportunities = _latest(_distinct(flow, flow.settings.topic_opportunities, 60))
    assert len(opportunities) == 60
    assert Counter(o["owner_id"] for o in opportunities.values()) == {"ann": 30, "bob": 15, "cy": 15}
    # a re-sent opportunity is the same as the first: one owner per opportunity, whatever was replayed
    owners: dict[str, set[str]] = {}
    for out in flow.read(flow.settings.topic_opportunities, 60):
        owners.setdefault(out.json["opportunity_id"], set()).add(out.json["owner_id"])
    assert all(len(o) == 1 for o in owners.values())
    decisions = _latest(_distinct(flow, flow.settings.topic_routing_decisions, 60))
    some = next(iter(decisions.values()))
    assert some["pool"] == "ae"
    assert some["via"] == "rule"
    assert some["ref"] == "everyone-else"
    assert [c["member"] for c in some["candidates"]] == ["ann", "bob", "cy"]


def test_a_lead_not_accepted_in_time_is_reassigned_and_an_accepted_one_is_not(flow: Flow, tmp_path: Path) -> None:
    members = "        - {id: ann, weight: 100}\n        - {id: bob, weight: 100}"
    rules = _rules(tmp_path, members, sla="sla: {accept_within_minutes: 0.05, then: next_member}")  # 3 s
    flow.start_worker(LEADFLOW_RULES=str(rules), LEADFLOW_SLA_CHECK_INTERVAL="0.2")
    flow.produce(_converting(["S1"]))
    first = flow.read(flow.settings.topic_opportunities, 1, timeout=60)[0].json
    assert first["owner_id"] == "ann"
    assert first["event_type"] == "opportunity.created"
    # S2 goes to bob and is accepted at once: no reassignment for it
    flow.produce(_converting(["S2"]))
    second = flow.read(flow.settings.topic_opportunities, 2)[1].json
    assert second["owner_id"] == "bob"
    feedback = KafkaProducer(bootstrap_servers=flow.settings.bootstrap_servers, acks="all")
    accepted = {"event_type": "opportunity.accepted", "opportunity_id": second["opportunity_id"], "accepted_by": "bob"}
    feedback.send(flow.settings.topic_feedback, key=b"anything", value=orjson.dumps(accepted))
    feedback.flush()
    feedback.close()
    # S1 is not accepted: after 3 s it goes to bob; after 3 s more, with everyone tried, to the overflow queue
    outputs = flow.read(flow.settings.topic_opportunities, 4, timeout=60)
    again = [o.json for o in outputs if o.json["opportunity_id"] == first["opportunity_id"]]
    assert [(o["event_type"], o["owner_id"], o["queue"]) for o in again] == [
        ("opportunity.created", "ann", None),
        ("opportunity.reassigned", "bob", None),
        ("opportunity.reassigned", None, "AE-Overflow"),
    ]
    later = flow.quiet_read(flow.settings.topic_opportunities, 4)
    assert [o.json["opportunity_id"] for o in later].count(second["opportunity_id"]) == 1
    decisions = [o.json for o in flow.read(flow.settings.topic_routing_decisions, 4)]
    breach = next(d for d in decisions if d["attempt"] == 2)
    assert breach["reason"] == "sla_breach"
    assert next(c for c in breach["candidates"] if c["member"] == "ann")["skipped"] == "already_tried"
    assert flow.metric("leadflow_sla_breaches_total", pool="ae") == 2
    assert flow.metric("leadflow_routing_reassignments_total", pool="ae", how="next_member") == 1
    assert flow.metric("leadflow_routing_reassignments_total", pool="ae", how="overflow") == 1


def test_a_lead_of_a_known_account_goes_to_its_owner_and_new_accounts_apply_without_a_restart(
    flow: Flow, tmp_path: Path
) -> None:
    rules = _rules(tmp_path)
    producer = KafkaProducer(bootstrap_servers=flow.settings.bootstrap_servers, acks="all")

    def account(account_id: str, **record: Any) -> None:
        producer.send(flow.settings.topic_accounts, key=account_id.encode(), value=orjson.dumps(record))
        producer.flush()

    from worker.stream.topics import ensure_accounts_topic

    ensure_accounts_topic(flow.settings)
    account("001-ACME", name="Acme GmbH", owner_id="005-ACME", website="https://www.acme.example")
    flow.start_worker(LEADFLOW_RULES=str(rules))
    flow.produce(_converting(["A1"], email="jo@acme.example"))
    flow.produce(_converting(["A2"], email="jo@gmail.com", company="ACME, Inc."))  # free mail: by name
    flow.wait_metric("leadflow_accounts_known", 1)
    account("001-GLOBEX", name="Globex", owner_id="005-GLOBEX", domains=["globex.example"])
    flow.wait_metric("leadflow_accounts_known", 2)
    flow.produce(_converting(["A3"], email="hank@globex.example"))
    flow.produce(_converting(["A4"], email="zed@unknown.example", country="Germany"))
    by_lead = {o.json["lead_id"]: o.json for o in flow.read(flow.settings.topic_opportunities, 4)}
    assert by_lead["A1"]["owner_id"] == "005-ACME"
    assert by_lead["A1"]["routing"]["via"] == "account"
    assert by_lead["A2"]["owner_id"] == "005-ACME"
    assert by_lead["A3"]["owner_id"] == "005-GLOBEX"
    assert (by_lead["A4"]["queue"], by_lead["A4"]["routing"]["ref"]) == ("DACH", "germany")
    producer.close()
    flow.wait_metric("leadflow_routing_assignments_total", 2, pool="", member="user:005-ACME")
    assert flow.metric("leadflow_routing_assignments_total", pool="", member="queue:DACH") == 1


def test_pool_members_change_with_the_rules_file_without_a_restart(flow: Flow, tmp_path: Path) -> None:
    rules = _rules(tmp_path, "        - {id: ann, weight: 100}")
    flow.start_worker(LEADFLOW_RULES=str(rules), LEADFLOW_RELOAD_INTERVAL="0.2")
    flow.produce(_converting(["R1"]))
    assert flow.read(flow.settings.topic_opportunities, 1, timeout=60)[0].json["owner_id"] == "ann"
    _rules(tmp_path, "        - {id: ann, weight: 100, active: false}\n        - {id: dee, weight: 100}")
    flow.wait_metric("leadflow_reloads_total", 1, kind="ruleset", origin="file", result="applied")
    flow.produce(_converting(["R2", "R3"]))
    owners = [o.json["owner_id"] for o in flow.read(flow.settings.topic_opportunities, 3)]
    assert owners[1:] == ["dee", "dee"]
    decisions = [o.json for o in flow.read(flow.settings.topic_routing_decisions, 3)]
    assert next(c for c in decisions[-1]["candidates"] if c["member"] == "ann")["skipped"] == "switched_off"
    flow.wait_metric("leadflow_routing_assignments_total", 2, pool="ae", member="dee")
    assert flow.metric("leadflow_routing_assignments_total", pool="ae", member="ann") == 1
    assert flow.metric("leadflow_routing_skips_total", pool="ae", reason="switched_off") == 2
    assert flow.metric("leadflow_time_to_assignment_seconds_count") == 3


def test_a_running_sla_clock_survives_a_worker_restart(flow: Flow, tmp_path: Path) -> None:
    members = "        - {id: ann, weight: 100}\n        - {id: bob, weight: 100}"
    rules = _rules(tmp_path, members, sla="sla: {accept_within_minutes: 0.1, then: next_member}")  # 6 s
    worker = flow.start_worker(LEADFLOW_RULES=str(rules), LEADFLOW_SLA_CHECK_INTERVAL="0.2")
    flow.produce(_converting(["C1"]))
    first = flow.read(flow.settings.topic_opportunities, 1, timeout=60)[0].json
    assert first["owner_id"] == "ann"
    flow.stop_worker(worker)  # graceful: offsets committed, so only the sla-state table can bring the clock back
    flow.start_worker(LEADFLOW_RULES=str(rules), LEADFLOW_SLA_CHECK_INTERVAL="0.2")
    again = [o.json for o in flow.read(flow.settings.topic_opportunities, 2, timeout=60)]
    assert [(o["event_type"], o["owner_id"]) for o in again] == [
        ("opportunity.created", "ann"),
        ("opportunity.reassigned", "bob"),
    ]
