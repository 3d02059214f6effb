"""``leadflow route explain`` against a real worker: the decisions it finds on the topic and how it says them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.conftest import Flow, activity, upsert, write_rules
from tests.routed_rules import routed

pytestmark = pytest.mark.integration

MEMBERS = """\
        - {id: ann, weight: 200}
        - {id: bob, weight: 100, active: false}
        - {id: cy, weight: 100}
"""
RULES = routed(MEMBERS, "explain-1")


def _explain(flow: Flow, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "route", "explain", *args],
        env={**os.environ, **flow.env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_route_explain_prints_each_candidate_with_why_and_the_result(flow: Flow, tmp_path: Path) -> None:
    flow.start_worker(LEADFLOW_RULES=str(write_rules(tmp_path, RULES)))

    def converting(lead_id: str, country: str) -> list[dict[str, Any]]:
        return [
            upsert(lead_id, f"{lead_id}-u", company=f"Company {lead_id}", country=country),
            activity(lead_id, f"{lead_id}-d", "demo_request"),
        ]

    flow.produce(converting("E1", "France"))  # first, alone: the pool's first lead
    flow.read(flow.settings.topic_routing_decisions, 1, timeout=90)
    flow.produce([*converting("E2", "France"), *converting("E3", "Germany")])
    flow.read(flow.settings.topic_routing_decisions, 3, timeout=90)

    second = _explain(flow, "--lead", "E2")
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert "of lead 'E2', attempt 1: first routing, when the lead converted" in lines[0]
    assert "  matched: routing rule 'everyone-else' -> pool 'ae'" in lines
    # ann got E1; for E2 ann and cy have the same pointer (bob is off) and the tie goes to the top of the pool
    assert (
        "    ann: weight 200, 1 leads so far, pointer 0.0100 - chosen (lowest pointer among those within their share)"
    ) in lines
    assert "    bob: weight 100, 0 leads so far, pointer 0.0100 - skipped: switched off (active: false)" in lines
    assert "    cy: weight 100, 0 leads so far, pointer 0.0100 - available, not chosen" in lines
    assert "  result: assigned to user 'ann'" in lines
    assert lines[-1] == "1 routing decision; the opportunity is now with user 'ann'"

    direct = _explain(flow, "--lead", "E3")
    assert direct.returncode == 0, direct.stderr
    assert "  matched: routing rule 'germany' -> queue 'DACH'" in direct.stdout
    assert "  result: routed directly to queue 'DACH'" in direct.stdout

    as_json = _explain(flow, "--lead", "E1", "--json")
    assert as_json.returncode == 0, as_json.stderr
    (decision,) = orjson.loads(as_json.stdout)
    assert (decision["lead_id"], decision["pool"], decision["member"]) == ("E1", "ae", "ann")
    assert [c["skipped"] for c in decision["candidates"]] == [None, "switched_off", None]

    missing = _explain(flow, "--lead", "nobody")
    assert missing.returncode == 1
    assert "no routing decision for lead 'nobody'" in missing.stderr
    assert repr(flow.settings.topic_routing_decisions) in missing.stderr


def test_route_explain_shows_the_first_routing_then_each_sla_reassignment_in_order(flow: Flow, tmp_path: Path) -> None:
    sla = RULES.replace(
        "      overflow: {queue: AE-Overflow}\n",
        "      overflow: {queue: AE-Overflow}\n      sla: {accept_within_minutes: 0.05, then: next_member}\n",  # 3 s
    ).replace("        - {id: bob, weight: 100, active: false}\n", "")
    flow.start_worker(LEADFLOW_RULES=str(write_rules(tmp_path, sla)), LEADFLOW_SLA_CHECK_INTERVAL="0.2")
    flow.produce([upsert("S1", "S1-u", company="Company S1", country="France"), activity("S1", "S1-d", "demo_request")])
    flow.read(flow.settings.topic_routing_decisions, 3, timeout=90)  # ann, then cy, then the overflow queue

    shown = _explain(flow, "--lead", "S1")
    assert shown.returncode == 0, shown.stderr
    headers = [line for line in shown.stdout.splitlines() if line.startswith("opportunity ")]
    assert [h.split(", attempt ", 1)[1] for h in headers] == [
        "1: first routing, when the lead converted",
        "2: reassignment: the previous assignee did not accept it within the pool's SLA",
        "3: reassignment: the previous assignee did not accept it within the pool's SLA",
    ]
    results = [line.strip() for line in shown.stdout.splitlines() if line.strip().startswith("result: ")]
    assert results == [
        "result: assigned to user 'ann'",
        "result: assigned to user 'cy'",
        "result: every member was skipped; the lead overflows to queue 'AE-Overflow'",
    ]
    assert "    ann: weight 200, 1 leads so far, pointer 0.0100 - skipped: already tried for this lead" in shown.stdout
    assert shown.stdout.rstrip().endswith("3 routing decisions; the opportunity is now with queue 'AE-Overflow'")
