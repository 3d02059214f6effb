"""The lead step's wake-ups: leads whose wake-up time has come are decided again as a batch of their own, in line
with the event batches (sent, then stored), found again from the table after a restart."""

from __future__ import annotations

import asyncio
import datetime as dt

import orjson
import pytest

from tests.unit.stream.test_stages import _Killed, _Outbox, _Table
from worker.batch import Record
from worker.core import Engine
from worker.rules import parse_ruleset
from worker.scoring import default_model_path, load_model
from worker.settings import Settings
from worker.stream._lead_stage import LeadStage
from worker.stream._outbox import Message

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
DAY = 86400.0
RULES = """
version: "w-1"
statuses: [{name: Open}, {name: Working}, {name: Nurture}]
scoring:
  - id: demo
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 40
qualification:
  - id: quiet
    when: {field: days_since_last_activity, op: gt, value: 30}
    status: Nurture
  - id: working
    when: {field: points, op: gte, value: 40}
    status: Working
"""
CHANGELOG = "leadflow-lead-state-changelog"


class _App:
    consumer_generation_id = 1


def _demo(offset: int, when: dt.datetime = T0, kind: str = "demo_request") -> Record:
    event = {
        "schema_version": 1,
        "event_id": f"e{offset}",
        "event_type": "lead.activity",
        "occurred_at": when.isoformat(),
        "lead_id": "L1",
        "activity": {"type": kind, "count": 1},
    }
    return Record(b"L1", orjson.dumps(event), "leads", 3, offset, when.timestamp())


def _stage(broker: list[Message], kill_on: str | None = None) -> tuple[LeadStage, _Table]:
    engine = Engine(parse_ruleset(RULES, "w.yaml"), load_model(default_model_path()))
    outbox = _Outbox(broker, kill_on)
    outbox.metrics.set_versions(engine.ruleset.version, engine.model.version, engine.ruleset.statuses)
    table = _Table("lead-state", broker)  # as the changelog left it
    stage = LeadStage(_App(), Settings(), engine, outbox.metrics, outbox, table)  # type: ignore[arg-type]
    return stage, table


def _decisions(broker: list[Message]) -> list[dict[str, object]]:
    return [orjson.loads(m.value or b"") for m in broker if m.topic == Settings().topic_decisions]


def _at(days: float) -> float:
    return T0.timestamp() + days * DAY


def test_a_lead_whose_wake_up_time_came_is_decided_again_and_stored() -> None:
    broker: list[Message] = []
    stage, table = _stage(broker)
    asyncio.run(stage.commit(stage.prepare([_demo(0)])))
    assert stage.prepare_due(_at(29)) is None  # 29 days: not yet
    woken = stage.prepare_due(_at(31))
    assert woken is not None
    asyncio.run(stage.commit(woken))

    first, second = _decisions(broker)
    assert (first["trigger"], first["status"]) == ("event", "Working")
    assert (second["trigger"], second["previous_status"], second["status"]) == ("time", "Working", "Nurture")
    state = orjson.loads(table.data[b"L1"])
    assert (state["status"], state.get("wake_at"), state["events"]) == ("Nurture", None, 1)
    changelog = [m for m in broker if m.topic == CHANGELOG]
    assert [(m.key, m.partition) for m in changelog] == [(b"L1", 3), (b"L1", 3)]  # the lead's own partition
    registry = stage.metrics.registry
    assert registry.get_sample_value("leadflow_time_decisions_total", {"action": "status_changed"}) == 1
    assert registry.get_sample_value("leadflow_decisions_total", {"status": "Nurture", "action": "status_changed"}) == 1
    assert registry.get_sample_value("leadflow_time_in_status_seconds_count", {"status": "Working"}) == 1
    assert registry.get_sample_value("leadflow_time_in_status_seconds_sum", {"status": "Working"}) == pytest.approx(
        30 * DAY
    )
    assert registry.get_sample_value("leadflow_events_consumed_total", {"event_type": "lead.activity"}) == 1
    assert registry.get_sample_value("leadflow_wakeups_waiting") == 0
    assert stage.prepare_due(_at(400)) is None  # nothing more can change: no more wake-ups


def test_an_event_batch_in_flight_moves_the_wake_up_time_before_the_sweep_reads_it() -> None:
    broker: list[Message] = []
    stage, table = _stage(broker)
    asyncio.run(stage.commit(stage.prepare([_demo(0)])))
    assert stage.prepare_due(_at(1)) is None  # the index is built from the table: the lead wakes at 30 days
    assert stage.metrics.registry.get_sample_value("leadflow_wakeups_waiting") == 1
    events = stage.prepare([_demo(1, T0 + dt.timedelta(days=20), "page_view")])  # in flight, not stored yet
    assert stage.prepare_due(_at(31)) is None  # the index says 30 days; the state in flight says 50
    asyncio.run(stage.commit(events))
    woken = stage.prepare_due(_at(51))
    assert woken is not None
    asyncio.run(stage.commit(woken))
    assert [(d["trigger"], d["status"]) for d in _decisions(broker)] == [
        ("event", "Working"),
        ("event", "Working"),
        ("time", "Nurture"),
    ]
    assert orjson.loads(table.data[b"L1"])["events"] == 2


def test_an_event_batch_decided_while_a_wake_up_batch_is_in_flight_reads_its_state() -> None:
    broker: list[Message] = []
    stage, table = _stage(broker)
    asyncio.run(stage.commit(stage.prepare([_demo(0)])))
    woken = stage.prepare_due(_at(31))
    assert woken is not None
    stage._state_cache.clear()  # the state must come from the batch in flight, not the cache
    events = stage.prepare([_demo(1, T0 + dt.timedelta(days=32), "page_view")])
    asyncio.run(stage.commit(woken))
    asyncio.run(stage.commit(events))
    last = _decisions(broker)[-1]
    assert (last["trigger"], last["previous_status"], last["status"]) == ("event", "Nurture", "Working")
    assert orjson.loads(table.data[b"L1"])["status"] == "Working"


def test_after_a_crash_between_sending_and_storing_the_same_decision_is_sent_again_then_never() -> None:
    broker: list[Message] = []
    stage, _ = _stage(broker)
    asyncio.run(stage.commit(stage.prepare([_demo(0)])))
    crashing, _ = _stage(broker, kill_on=CHANGELOG)  # a new worker: its index comes from the table
    woken = crashing.prepare_due(_at(31))
    assert woken is not None
    with pytest.raises(_Killed):
        asyncio.run(crashing.commit(woken))  # the decision is sent; the state is not stored
    restarted, table = _stage(broker)
    woken = restarted.prepare_due(_at(32))
    assert woken is not None
    asyncio.run(restarted.commit(woken))
    times = [d for d in _decisions(broker) if d["trigger"] == "time"]
    assert len(times) == 2
    assert times[0] == {**times[1], "decided_at": times[0]["decided_at"]}  # the same decision, the same id
    assert orjson.loads(table.data[b"L1"])["status"] == "Nurture"
    again, _ = _stage(broker)
    assert again.prepare_due(_at(40)) is None


class _Recovering:
    """An app whose tables are being recovered, then are."""

    consumer_generation_id = 1
    rebalancing = False

    def __init__(self) -> None:
        self.recovered = asyncio.Event()
        self.tables = self
        self.recovery = self

    @property
    def completed(self) -> asyncio.Event:
        return self.recovered


def test_the_first_sweep_waits_for_the_tables_not_for_a_whole_interval() -> None:
    broker: list[Message] = []
    stage, _ = _stage(broker)
    asyncio.run(stage.commit(stage.prepare([_demo(0)])))
    app = _Recovering()
    stage.app = app
    assert stage.prepare_due(_at(31)) is None  # the tables are being recovered: no sweep yet
    app.recovered.set()
    woken = stage.prepare_due(_at(31) + 1)  # a second later, not LEADFLOW_WAKEUP_INTERVAL later
    assert woken is not None
    asyncio.run(stage.commit(woken))
    assert _decisions(broker)[-1]["trigger"] == "time"
