"""The pipeline step against a table and an outbox that stand in for Faust's and the broker: the sums it exports
follow each committed batch, and after a rebalance the table gives the same sums again."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from tests.unit.opportunities.test_pipeline import closed, created, updated
from tests.unit.stream.test_stages import _Outbox, _Table
from worker.batch import Record
from worker.core import Engine
from worker.exceptions import EventError
from worker.rules import default_ruleset_path, load_ruleset
from worker.scoring import default_model_path, load_model
from worker.settings import Settings
from worker.stream._outbox import Message
from worker.stream._pipeline_stage import PipelineStage
from worker.stream._route_stages import FeedbackStage

ENGINE = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
TOPIC = Settings().topic_pipeline


def _app() -> Any:
    completed = SimpleNamespace(is_set=lambda: True)
    return SimpleNamespace(
        consumer_generation_id=1,
        rebalancing=False,
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
    )


def _records(events: list[dict[str, Any]], start: int = 0) -> list[Record]:
    return [Record(e["opportunity_id"].encode(), orjson.dumps(e), TOPIC, 0, start + i) for i, e in enumerate(events)]


def _gauges(stage: PipelineStage) -> dict[str, float]:
    registry = stage.metrics.registry
    out = {}
    for family in registry.collect():
        if family.name.startswith("leadflow_pipeline_"):
            for sample in family.samples:
                out[f"{sample.name}{sorted(sample.labels.items())}"] = sample.value
    return out


def test_the_gauges_follow_each_batch_and_a_rebalance_recomputes_the_same_sums() -> None:
    broker: list[Message] = []
    outbox = _Outbox(broker)
    app = _app()
    stage = PipelineStage(Settings(), outbox, outbox.metrics, app, lambda: ENGINE, _Table("pipeline-state", broker))  # type: ignore[arg-type]
    outbox.metrics.watch_pipeline(lambda: stage.pipeline)
    batches = [
        [created("A", amount=10_000.0), created("B", amount=20_000.0)],
        [updated("A", "a1", stage_name="Value Proposition"), closed("B", "b1", won=True)],
    ]
    start = 0
    for batch in batches:
        asyncio.run(stage.commit(stage.prepare(_records(batch, start))))
        start += len(batch)
    registry = outbox.metrics.registry
    cell = {"forecast_category": "Pipeline", "close_month": "2026-12"}
    assert (
        registry.get_sample_value("leadflow_pipeline_expected_revenue", {"stage": "Value Proposition", **cell})
        == 5_000.0
    )
    assert registry.get_sample_value("leadflow_pipeline_amount", {"stage": "Needs Analysis", **cell}) is None
    won = {"stage": "Closed Won", "forecast_category": "Closed", "close_month": "2026-11"}
    assert registry.get_sample_value("leadflow_pipeline_opportunities", won) == 1
    assert registry.get_sample_value("leadflow_opportunities_closed_amount_total", {"outcome": "won"}) == 20_000.0
    before = _gauges(stage)

    app.consumer_generation_id = 2  # a rebalance: the sums are computed again from the table, once
    stage.pipeline.cells.clear()
    asyncio.run(stage.tick())
    assert _gauges(stage) == before
    # a redelivered batch changes nothing
    asyncio.run(stage.commit(stage.prepare(_records(batches[1], 2))))
    assert _gauges(stage) == before
    assert registry.get_sample_value("leadflow_opportunity_feedback_replayed_total") == 2


def test_feedback_goes_to_the_pipeline_topic_keyed_by_opportunity_untouched() -> None:
    outbox = _Outbox([])
    stage = FeedbackStage(Settings(), outbox)  # type: ignore[arg-type]
    value = orjson.dumps(updated("opp-9", "e1", amount=5.0))
    accepted = orjson.dumps({"event_type": "opportunity.accepted", "opportunity_id": "opp-9"})
    prepared = stage.prepare([Record(b"crm", value, "feedback", 0, 0), Record(b"crm", accepted, "feedback", 0, 1)])
    first = prepared.outputs[0]
    assert (first.topic, first.key, first.value) == (Settings().topic_pipeline, b"opp-9", value)
    assert prepared.outputs[1].topic == Settings().topic_sla


@pytest.mark.parametrize(
    ("value", "reason", "says"),
    [
        (b'{"event_type": "opportunity.won", "opportunity_id": "o"}', "unknown_event_type", "'opportunity.closed'"),
        (orjson.dumps(closed("o", "e", won=True, amount=-1.0)), "schema_violation", "'amount'"),
    ],
)
def test_bad_feedback_is_refused_saying_what_was_expected(value: bytes, reason: str, says: str) -> None:
    outbox = _Outbox([])
    prepared = FeedbackStage(Settings(), outbox).prepare([Record(b"k", value, "feedback", 0, 0)])  # type: ignore[arg-type]
    [(_, error)] = prepared.failures
    assert isinstance(error, EventError)
    assert (error.reason, says in str(error)) == (reason, True)
