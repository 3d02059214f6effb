"""The pool owner's commit, against tables and an outbox that stand in for Faust's and the broker: what a crash
between storing two tables leaves behind."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from tests.unit.test_route_flow import Msg, _engine, _requests
from worker.core import Engine
from worker.routing.sla import erased_notice
from worker.settings import Settings
from worker.stream._outbox import Message
from worker.stream._route_stages import RouteStage
from worker.stream.metrics import Metrics


class _Killed(BaseException):
    """The process dies (SIGKILL) in the middle of a commit."""


class _Store(dict[bytes, bytes]):
    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        pass


class _Topic:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


class _Table:
    """A memory-store table: after a restart, it holds what its changelog holds."""

    def __init__(self, name: str, changelog: list[Message]) -> None:
        self.changelog_topic = _Topic(f"leadflow-{name}-changelog")
        self.data = _Store((m.key, m.value) for m in changelog if m.topic == self.changelog_topic.name)


class _Outbox:
    """Keeps what the broker acknowledged; dies on the first send to ``kill_on`` (a topic)."""

    def __init__(self, acknowledged: list[Message], kill_on: str | None = None) -> None:
        self.acknowledged = acknowledged
        self.kill_on = kill_on
        self.metrics = Metrics(CollectorRegistry())

    async def send(self, messages: list[Message], lane: str = "outputs") -> dict[tuple[str, int], int]:
        if any(m.topic == self.kill_on for m in messages):
            raise _Killed
        self.acknowledged.extend(messages)
        return {}

    def dead_letters(self, failures: Any) -> list[Message]:
        return []


def _stage(engine: Engine, outbox: _Outbox) -> RouteStage:
    tables = {name: _Table(name, outbox.acknowledged) for name in ("pool-state", "route-done")}
    return RouteStage(Settings(), outbox, outbox.metrics, lambda: engine, tables)  # type: ignore[arg-type]


def _commit_until_killed(stage: Any, prepared: Any, storing: str) -> None:
    """Commit ``prepared`` with an outbox that dies (SIGKILL) on the way, as it must."""
    try:
        asyncio.run(stage.commit(prepared))
    except _Killed:
        return
    raise AssertionError(f"the commit was expected to die storing {storing}")  # pragma: no cover


def _owners(messages: list[Message]) -> list[str]:
    return [orjson.loads(m.value or b"")["owner_id"] for m in messages if m.topic == Settings().topic_opportunities]


@pytest.mark.parametrize("dies_storing", ["pool-state", "route-done"])
def test_a_crash_while_storing_the_tables_never_assigns_a_request_twice(dies_storing: str) -> None:
    engine = _engine()
    requests = _requests(engine, 3)  # not a whole round of the pool (ann twice, bob, cy)
    broker: list[Message] = []
    first = _stage(engine, _Outbox(broker, kill_on=f"leadflow-{dies_storing}-changelog"))
    _commit_until_killed(first, first.prepare(requests), "the pools")
    assigned = _owners(broker)
    assert len(assigned) == 3

    restarted = _stage(engine, _Outbox(broker))  # the tables as their changelogs restore them
    again = restarted.prepare(requests)
    assert _owners(again.outputs) == assigned  # the stored answers, not a second round of the pool
    asyncio.run(restarted.commit(again))
    replayed = restarted.metrics.registry.get_sample_value("leadflow_routing_replayed_requests_total")
    assert replayed == (3 if dies_storing == "pool-state" else 0)  # the answers were stored first


def test_an_erasure_deletes_the_answers_in_the_changelog_and_retracts_what_they_sent() -> None:
    engine = _engine()
    [request] = _requests(engine, 1)
    opportunity_id = orjson.loads(request.value or b"")["opportunity"]["opportunity_id"]
    broker: list[Message] = []
    stage = _stage(engine, _Outbox(broker))
    asyncio.run(stage.commit(stage.prepare([request])))
    assert _owners(broker) == ["ann"]
    key, notice = erased_notice(opportunity_id, ("leads", 0, 9, None))
    erased = stage.prepare([Msg(key, notice, offset=1)])  # (these tables have no partitions: one is enough)
    asyncio.run(stage.commit(erased))
    s = Settings()
    sent = {(m.topic, m.value is None) for m in erased.outputs}
    assert sent == {(s.topic_opportunities, True), (s.topic_routing_decisions, True), (s.topic_sla, False)} | {
        (s.topic_pipeline, False)
    }  # sent again after the answer's outputs; the lead step told the pools' owners already
    changelog = [(m.key, m.value) for m in broker if m.topic == "leadflow-route-done-changelog"]
    assert changelog[-2:] == [(f"{opportunity_id}#1@ae".encode(), None), (key, None)]  # tombstones
    assert stage.tables["route-done"].data == {}
    late = stage.prepare([Msg(request.key, request.value, offset=2)])  # a request of the lead that comes later
    assert late.outputs == []
    asyncio.run(stage.commit(late))
    assert stage.metrics.registry.get_sample_value("leadflow_routing_erased_requests_total") == 1
    assert stage.erased == {opportunity_id: ["leads", 0, 9, None]}
