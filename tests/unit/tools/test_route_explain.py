"""``leadflow route explain`` without a broker: finding a lead's routing decisions and saying them in words.

The decisions are made by the real routing flow (``route_opportunity`` and ``route_batch``), so the text is tested
on exactly what the worker puts on the routing-decisions topic.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.unit.routing.helpers import MONDAY_NOON, routing_of
from worker.cli import main
from worker.lead import ids
from worker.routing import Routing, Target
from worker.routing.flow import route_batch, route_opportunity
from worker.routing.sla import sla_batch, sla_breaches
from worker.settings import Settings
from worker.tools.route_explain import explain_decision, explain_decisions, find_decisions

ROUTING: dict[str, Any] = {
    "default": {"queue": "Inbound"},
    "rules": [
        {"id": "germany", "when": {"field": "country", "op": "eq", "value": "Germany"}, "to": {"queue": "DACH"}},
        {"id": "everyone-else", "when": {"field": "points", "op": "gte", "value": 0}, "to": {"pool": "ae"}},
    ],
    "pools": [
        {
            "name": "ae",
            "strategy": "weighted_round_robin",
            "overflow": {"queue": "AE-Overflow"},
            "sla": {"accept_within_minutes": 30},
            "members": [
                {"id": "ann", "weight": 200},
                {"id": "bob", "weight": 100, "active": False},
                {
                    "id": "cy",
                    "weight": 100,
                    "out_of_office": [{"from": "2026-11-20T00:00:00Z", "to": "2026-11-30T00:00:00Z"}],
                },
            ],
        }
    ],
}


class _Rec:
    partition = 0  # the pool owner notes each answer in its opportunity's index row, on the record's partition

    def __init__(self, value: bytes) -> None:
        self.value = value


def _opportunity(lead_id: str) -> dict[str, Any]:
    return {"opportunity_id": ids.opportunity_id(lead_id), "lead_id": lead_id, "owner_id": None, "queue": None}


def _routed(routing: Routing, lead_id: str, country: str) -> list[dict[str, Any]]:
    """Every routing decision of one lead: converted at Monday noon, never accepted, SLA checked twice."""
    facts = {"country": country, "points": 50}
    route = routing.route(facts, facts, None)
    _, direct, request = route_opportunity(_opportunity(lead_id), route, "r-1", MONDAY_NOON)
    if direct is not None:
        return [direct]
    assert request is not None
    decisions: list[dict[str, Any]] = []
    pool_state: dict[str, bytes] = {}
    sla_state: dict[str, bytes] = {}
    message = request.message
    for hour in range(3):
        batch = route_batch(
            routing,
            [_Rec(orjson.dumps(message))],
            pool_state.get,
            lambda *_: None,
            MONDAY_NOON,
            "r-1",
            Target("queue", "x"),
        )
        pool_state.update(batch.pool_states)
        decisions.extend(orjson.loads(v) for _, v in batch.routing_decisions)
        if not batch.sla_notices:
            break
        clocks, live = sla_batch([_Rec(v) for _, v in batch.sla_notices], sla_state.get)
        sla_state.update(clocks.states)
        ((_, message, _),) = sla_breaches(live, MONDAY_NOON + 3600 * (hour + 1))
    return decisions


@pytest.fixture(scope="module")
def routing() -> Routing:
    return routing_of(ROUTING)


def test_a_pooled_lead_is_explained_candidate_by_candidate_then_its_sla_reassignment(routing: Routing) -> None:
    decisions = _routed(routing, "L1", "France")
    assert [d["attempt"] for d in decisions] == [1, 2]

    first = explain_decision(decisions[0]).splitlines()
    assert first[0] == (
        f"opportunity {ids.opportunity_id('L1')!r} of lead 'L1', attempt 1: first routing, when the lead converted"
    )
    assert "by ruleset r-1" in first[1]
    assert first[2] == "  matched: routing rule 'everyone-else' -> pool 'ae'"
    assert first[3].startswith("  pool 'ae', request ")
    assert first[4] == (
        "    ann: weight 200, 0 leads so far, pointer 0.0050 - chosen (lowest pointer among those within their share)"
    )
    assert first[5] == "    bob: weight 100, 0 leads so far, pointer 0.0100 - skipped: switched off (active: false)"
    assert first[6] == "    cy: weight 100, 0 leads so far, pointer 0.0100 - skipped: out of office"
    assert first[7] == "  result: assigned to user 'ann'"

    second = explain_decision(decisions[1])
    assert "attempt 2: reassignment: the previous assignee did not accept it within the pool's SLA" in second
    assert "ann: weight 200, 1 leads so far, pointer 0.0100 - skipped: already tried for this lead" in second
    assert "result: every member was skipped; the lead overflows to queue 'AE-Overflow'" in second

    whole = explain_decisions(decisions)
    assert whole.endswith("2 routing decisions; the opportunity is now with queue 'AE-Overflow'")
    assert whole.count("\n\n") == 2


def test_a_direct_route_and_an_escalation_say_so_without_candidates(routing: Routing) -> None:
    (direct,) = _routed(routing, "L2", "Germany")
    text = explain_decision(direct)
    assert "  matched: routing rule 'germany' -> queue 'DACH'" in text
    assert text.endswith("  result: routed directly to queue 'DACH'")
    assert explain_decisions([direct]).endswith("1 routing decision; the opportunity is now with queue 'DACH'")

    escalated = {**direct, "attempt": 2, "reason": "sla_breach", "pool": "ae", "target": {"user": "005-MGR"}}
    assert explain_decision(escalated).endswith("  result: escalated (the pool's SLA says so) to user '005-MGR'")
    by_default = {**direct, "via": "default", "ref": None, "target": {"queue": "Inbound"}}
    assert "matched: no account, routing rule or territory; the default target -> queue 'Inbound'" in (
        explain_decision(by_default)
    )
    lead = {**direct, "subject": "lead", "opportunity_id": None, "request_id": "lead:L2:Qualified#1"}
    assert explain_decision(lead).startswith("lead 'L2' on entering status 'Qualified', attempt 1: routing of the lead")
    assert explain_decisions([lead]).endswith("the lead is now with queue 'DACH'")
    by_account = {**direct, "via": "account", "ref": "001-ACME", "target": {"user": "005-ACME"}}
    assert "matched: known account '001-ACME', whose owner gets it: user '005-ACME'" in explain_decision(by_account)


def test_decisions_are_found_by_lead_or_opportunity_in_attempt_order_once_each(routing: Routing) -> None:
    one, two = _routed(routing, "L1", "France")
    (other,) = _routed(routing, "L2", "Germany")
    values = [orjson.dumps(d) for d in (two, other, one, two)] + [b"not json", b'{"event_type": "x"}', None]
    assert find_decisions(values, lead="L1") == [one, two]  # re-sent once, bad records passed over
    assert find_decisions(values, opportunity=other["opportunity_id"]) == [other]
    assert find_decisions(values, lead="L1", opportunity=other["opportunity_id"]) == []
    assert find_decisions(values, lead="nobody") == []


def test_the_command_needs_a_lead_or_an_opportunity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "explain"]) == 2
    assert "--lead LEAD_ID or --opportunity" in capsys.readouterr().err


def test_an_unreachable_broker_is_an_error_naming_the_topic_and_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    from worker.tools.broker import free_port

    url = f"127.0.0.1:{free_port()}"
    assert main(["route", "explain", "--lead", "L1", "--broker", url]) == 2
    err = capsys.readouterr().err
    topic = Settings().topic_routing_decisions
    assert f"cannot read the routing-decisions topic {topic!r} at kafka://{url}" in err
    assert "no broker answers" in err
