"""The lead step stores an erasure: the lead's row deleted and a tombstone in its changelog, also while the batch
that erased it is still being committed (docs/PRIVACY.md)."""

from __future__ import annotations

import asyncio

import orjson

from tests.unit.stream.test_stages import _Outbox, _Table
from worker.batch import Record
from worker.columnar import batch_engine
from worker.core import Engine
from worker.lead import ids
from worker.rules import parse_ruleset
from worker.scoring import default_model_path, load_model
from worker.settings import Settings
from worker.stream._lead_stage import LeadStage
from worker.stream._outbox import Message

EMAIL = b"ada@erase.example"
CHANGELOG = "leadflow-lead-state-changelog"


class _App:
    consumer_generation_id = 1


def _record(offset: int, event: dict[str, object]) -> Record:
    base = {"schema_version": 1, "event_id": f"e{offset}", "occurred_at": "2026-11-02T09:00:00Z", "lead_id": "L1"}
    return Record(b"L1", orjson.dumps({**base, **event}), "leads", 0, offset, 1_800_000_000.0 + offset)


def _upsert(offset: int, **lead: object) -> Record:
    return _record(offset, {"event_type": "lead.upserted", "lead": lead})


def _erase(offset: int) -> Record:
    return _record(offset, {"event_type": "lead.erased"})


def _stage(broker: list[Message]) -> tuple[LeadStage, _Table]:
    engine = Engine(parse_ruleset('version: "u-1"\n', "u.yaml"), load_model(default_model_path()))
    outbox = _Outbox(broker)
    table = _Table("lead-state", broker)
    stage = LeadStage(_App(), Settings(), engine, outbox.metrics, outbox, table)  # type: ignore[arg-type]
    return stage, table


def test_an_erased_lead_is_deleted_from_the_table_and_tombstoned_in_its_changelog() -> None:
    broker: list[Message] = []
    stage, table = _stage(broker)
    asyncio.run(stage.commit(stage.prepare([_upsert(0, email=EMAIL.decode(), company="Erase")])))
    assert EMAIL in table.data[b"L1"]
    asyncio.run(stage.commit(stage.prepare([_erase(1)])))
    assert b"L1" not in table.data
    changelog = [m for m in broker if m.topic == CHANGELOG]
    assert [(m.key, m.value is None) for m in changelog] == [(b"L1", False), (b"L1", True)]
    audit = [orjson.loads(m.value or b"") for m in broker if m.topic == Settings().topic_decisions][-1]
    assert audit["event_type"] == "lead.erased"


def test_a_lead_erased_in_a_batch_still_being_committed_starts_from_nothing_in_the_next() -> None:
    broker: list[Message] = []
    stage, table = _stage(broker)
    asyncio.run(stage.commit(stage.prepare([_upsert(0, email=EMAIL.decode(), company="Erase")])))
    erasing = stage.prepare([_erase(1)])  # not committed yet: the table still holds the old state
    stage._state_cache.clear()  # as after a rebalance: the state must come from the batches in flight or the table
    after = stage.prepare([_upsert(2, company="Fresh")])
    asyncio.run(stage.commit(erasing))
    asyncio.run(stage.commit(after))
    state = orjson.loads(table.data[b"L1"])
    assert (state["events"], state.get("email"), state["company"]) == (1, None, "Fresh")


def test_an_erasure_forgets_the_lead_s_opportunity_on_every_step_that_may_hold_it() -> None:
    broker: list[Message] = []
    stage, _ = _stage(broker)
    asyncio.run(stage.commit(stage.prepare([_erase(3)])))
    s = Settings()
    opportunity = ids.opportunity_id("L1").encode()
    sent = [
        (m.topic, m.key, m.partition, m.value is None) for m in broker if m.topic not in (s.topic_decisions, CHANGELOG)
    ]
    assert sent[:4] == [
        (s.topic_opportunities, opportunity, None, True),  # tombstones
        (s.topic_routing_decisions, opportunity, None, True),
        (s.topic_sla, opportunity, None, False),  # notices
        (s.topic_pipeline, opportunity, None, False),
    ]
    assert sent[4:] == [(s.topic_route_requests, opportunity, p, False) for p in range(s.partitions)]
    notices = {m.value for m in broker if m.value is not None and m.topic != s.topic_decisions}
    assert [orjson.loads(n) for n in notices] == [
        {"kind": "erased", "opportunity_id": opportunity.decode(), "position": ["leads", 0, 3, 1_800_000_003.0]}
    ]


def _timeless(value: bytes | None) -> object:
    """A message's value without the wall-clock times of the decision (two runs decide at two moments)."""
    if value is None:
        return None
    data = orjson.loads(value)
    return {k: v for k, v in data.items() if k not in ("decided_at", "erased_at")} if isinstance(data, dict) else data


def test_the_lead_step_decides_with_the_engine_the_settings_name() -> None:
    """``LEADFLOW_ENGINE``: the same messages out with either engine."""
    outs = {}
    for name in ("reference", "columnar"):
        broker: list[Message] = []
        engine = Engine(parse_ruleset('version: "u-1"\n', "u.yaml"), load_model(default_model_path()))
        outbox = _Outbox(broker)
        settings = Settings(engine=name)
        stage = LeadStage(_App(), settings, engine, outbox.metrics, outbox, _Table("lead-state", broker))  # type: ignore[arg-type]
        assert stage._decide_batch is batch_engine(name)
        asyncio.run(stage.commit(stage.prepare([_upsert(0, company="A"), _upsert(1, company="B"), _erase(2)])))
        outs[name] = [(m.topic, m.key, _timeless(m.value)) for m in broker]
    assert outs["columnar"] == outs["reference"]
    assert len(outs["reference"]) >= 3
