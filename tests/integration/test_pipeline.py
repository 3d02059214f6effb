"""Following the opportunities: converted by the real worker, updated and closed by the sales side's feedback,
added up in the pipeline's metrics exactly as computed by hand here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Flow, activity, upsert

pytestmark = pytest.mark.integration

DAY = 86_400.0


def _lead(lead_id: str, source: str) -> list[dict[str, Any]]:
    """Created on 2 November at 09:00, converted ('hot': Needs Analysis, 12,000, close in 45 days) two days later."""
    return [
        upsert(lead_id, f"{lead_id}-e1", "2026-11-02T09:00:00Z", company=f"{lead_id} Ltd", lead_source=source),
        activity(lead_id, f"{lead_id}-e2", "demo_request", "2026-11-04T09:00:00Z"),
    ]


def _samples(flow: Flow, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(flow.metrics()):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _cell(stage: str, category: str, month: str) -> tuple[tuple[str, str], ...]:
    return (("close_month", month), ("forecast_category", category), ("stage", stage))


def test_opportunities_converted_updated_and_closed_add_up_to_the_pipeline_computed_by_hand(
    flow: Flow, rules_file: Path
) -> None:
    s = flow.settings
    flow.start_worker(LEADFLOW_RULES=str(rules_file))
    flow.produce(_lead("P1", "Web") + _lead("P2", "Web") + _lead("P3", "Partner"))
    opportunities = {o.json["lead_id"]: o.json for o in flow.read(s.topic_opportunities, 3)}
    assert {o["close_date"] for o in opportunities.values()} == {"2026-12-19"}
    one, two, three = (opportunities[lead]["opportunity_id"] for lead in ("P1", "P2", "P3"))
    flow.wait_metric("leadflow_pipeline_opportunities", 3, **dict(_cell("Needs Analysis", "Pipeline", "2026-12")))
    assert (
        flow.metric("leadflow_pipeline_expected_revenue", **dict(_cell("Needs Analysis", "Pipeline", "2026-12")))
        == 3 * 2_400.0
    )

    def event(event_type: str, opportunity_id: str, event_id: str, occurred_at: str, **fields: Any) -> bytes:
        return orjson.dumps(
            {
                "event_type": event_type,
                "opportunity_id": opportunity_id,
                "event_id": event_id,
                "occurred_at": occurred_at,
                **fields,
            }
        )

    won = event("opportunity.closed", two, "crm-2", "2026-11-14T09:00:00Z", won=True, amount=15_000.0)
    feedback = [
        # P1 moves on: probability and forecast category follow the stage (Negotiation/Review: 90 %, Pipeline)
        event(
            "opportunity.updated",
            one,
            "crm-1",
            "2026-11-10T09:00:00Z",
            stage_name="Negotiation/Review",
            amount=20_000.0,
        ),
        won,
        won,  # the CRM sends it again: counted once
        event("opportunity.closed", three, "crm-3", "2026-11-24T09:00:00Z", won=False),
        event("opportunity.updated", "opp-never-converted", "crm-4", "2026-11-24T09:00:00Z", stage_name="Closed Won"),
        event("opportunity.closed", three, "crm-5", "2026-11-24T09:00:00Z"),  # no 'won': not the contract
    ]
    producer = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all")
    for i, value in enumerate(feedback):
        producer.send(s.topic_feedback, key=f"crm-key-{i}".encode(), value=value)  # the CRM's own keys
    producer.flush()
    producer.close()

    dead = {o.headers["leadflow.reason"].decode(): o for o in flow.read(s.topic_dlq, 2)}
    assert set(dead) == {"unknown_opportunity", "schema_violation"}
    assert orjson.loads(dead["unknown_opportunity"].value)["opportunity_id"] == "opp-never-converted"
    assert b"opp-never-converted" in dead["unknown_opportunity"].headers["leadflow.error_message"]
    assert b"'won'" in dead["schema_violation"].headers["leadflow.error_message"]
    flow.wait_metric("leadflow_opportunities_closed_total", 1, outcome="lost")
    flow.wait_metric("leadflow_opportunity_feedback_replayed_total", 1)

    # by hand: P1 20,000 at 90 % closing in December; P2 won 15,000 on 14 November (its close date); P3 lost on
    # 24 November with its 12,000 (0 %, Omitted)
    assert _samples(flow, "leadflow_pipeline_opportunities") == {
        _cell("Negotiation/Review", "Pipeline", "2026-12"): 1,
        _cell("Closed Won", "Closed", "2026-11"): 1,
        _cell("Closed Lost", "Omitted", "2026-11"): 1,
    }
    assert _samples(flow, "leadflow_pipeline_amount") == {
        _cell("Negotiation/Review", "Pipeline", "2026-12"): 20_000.0,
        _cell("Closed Won", "Closed", "2026-11"): 15_000.0,
        _cell("Closed Lost", "Omitted", "2026-11"): 12_000.0,
    }
    assert _samples(flow, "leadflow_pipeline_expected_revenue") == {
        _cell("Negotiation/Review", "Pipeline", "2026-12"): 18_000.0,
        _cell("Closed Won", "Closed", "2026-11"): 15_000.0,
        _cell("Closed Lost", "Omitted", "2026-11"): 0.0,
    }
    assert flow.metric("leadflow_opportunities_closed_total", outcome="won") == 1
    assert flow.metric("leadflow_opportunities_closed_total", outcome="lost") == 1
    assert flow.metric("leadflow_opportunities_closed_amount_total", outcome="won") == 15_000.0
    assert flow.metric("leadflow_opportunities_closed_amount_total", outcome="lost") == 12_000.0
    assert flow.metric("leadflow_opportunity_feedback_replayed_total") == 1
    outcomes: dict[tuple[str, str], float] = {}
    for labels, count in _samples(flow, "leadflow_pipeline_outcomes").items():
        key = (dict(labels)["lead_source"], dict(labels)["outcome"])
        outcomes[key] = outcomes.get(key, 0) + count
    assert outcomes == {("Web", "open"): 1, ("Web", "won"): 1, ("Partner", "lost"): 1}
    # the funnel: every lead here converted
    assert flow.metric("leadflow_leads_created_total", lead_source="Web") == 2
    assert flow.metric("leadflow_leads_created_total", lead_source="Partner") == 1
    converted: dict[str, float] = {}
    for labels, count in _samples(flow, "leadflow_pipeline_converted_total").items():
        converted[dict(labels)["lead_source"]] = converted.get(dict(labels)["lead_source"], 0) + count
    assert converted == {"Web": 2, "Partner": 1}
    # two days from lead to conversion, three times; 10 days from conversion to the win, 20 to the loss
    assert flow.metric("leadflow_lead_to_conversion_seconds_count") == 3
    assert flow.metric("leadflow_lead_to_conversion_seconds_sum") == 3 * 2 * DAY
    assert flow.metric("leadflow_conversion_to_close_seconds_sum", outcome="won") == 10 * DAY
    assert flow.metric("leadflow_conversion_to_close_seconds_sum", outcome="lost") == 20 * DAY
    assert flow.metric("leadflow_records_refused_total", source="pipeline", reason="unknown_opportunity") == 1
    assert flow.metric("leadflow_records_refused_total", source="feedback", reason="schema_violation") == 1
