"""The real worker on the columnar engine (``LEADFLOW_ENGINE=columnar``) against the embedded broker: the decisions
and opportunities the reference core makes of the same events, and the lead states it stores."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest

from tests.integration.conftest import Flow
from worker.batch import Record, process_batch
from worker.columnar import WHOLE_FROM
from worker.core import Engine
from worker.rules import default_ruleset_path, load_ruleset
from worker.scoring import default_model_path, load_model
from worker.scoring.training import generate
from worker.stream.topics import ensure_topics

pytestmark = pytest.mark.integration


def _timeless(value: dict[str, Any]) -> dict[str, Any]:
    """An output without the wall-clock time of its decision."""
    return {k: v for k, v in value.items() if k != "decided_at"}


@pytest.mark.parametrize(
    ("leads", "batch_size", "backlog"),
    [(30, "200", False), (500, "10000", True)],
    ids=["small batches, by the reference", "a backlog, in whole batches"],
)
def test_the_worker_on_the_columnar_engine_decides_what_the_reference_decides(
    flow: Flow, leads: int, batch_size: str, backlog: bool
) -> None:
    """Small batches are decided by the reference; a backlog (the events on the topic before the worker starts)
    comes in fetches of thousands, decided in one block each (the whole-batch mode, from WHOLE_FROM events), which
    the worker counts in leadflow_events_in_block_total."""
    events = generate(leads, seed=5, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=3).events
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    records = [Record(e["lead_id"].encode(), orjson.dumps(e), "leads", 0, i) for i, e in enumerate(events)]
    expected = process_batch(engine, records, {}.get, 0.0)  # one lead's decisions in its events' order either way
    assert expected.opportunities  # conversions happen: the engine's fallback to the reference is on the path

    if backlog:
        assert len(events) > WHOLE_FROM
        ensure_topics(flow.settings)
        flow.produce(events)
        flow.start_worker(LEADFLOW_BATCH_SIZE=batch_size)  # the default engine: columnar
    else:
        flow.start_worker(LEADFLOW_ENGINE="columnar", LEADFLOW_BATCH_SIZE=batch_size)
        flow.produce(events)
    decisions = flow.read(flow.settings.topic_decisions, len(expected.decisions))
    opportunities = flow.read(flow.settings.topic_opportunities, len(expected.opportunities))

    def by_lead(outputs: list[tuple[bytes, dict[str, Any]]]) -> dict[bytes, list[dict[str, Any]]]:
        out: dict[bytes, list[dict[str, Any]]] = {}
        for key, value in outputs:
            out.setdefault(key, []).append(_timeless(value))
        return out

    want = by_lead([(k, orjson.loads(v)) for k, v in expected.decisions])
    assert by_lead([(o.key or b"", o.json) for o in decisions]) == want
    assert sorted(orjson.dumps(o.json) for o in opportunities) == sorted(
        orjson.dumps(orjson.loads(v)) for _, v in expected.opportunities
    )
    in_block = flow.metric("leadflow_events_in_block_total")
    if backlog:
        assert in_block is not None
        assert in_block >= WHOLE_FROM, in_block
    else:
        assert in_block == 0
