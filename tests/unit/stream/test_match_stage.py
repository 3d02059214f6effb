"""The match step's shell: answers go to the claiming lead's own partition of leads, and a crash before the match
table is stored answers the same claims the same way after the restart."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.unit.stream.test_stages import _commit_until_killed, _Outbox, _Table
from worker.batch import Record
from worker.settings import Settings
from worker.stream._match_stage import MatchStage
from worker.stream._outbox import Message


def _claim(key: str, lead_id: str, partition: int, offset: int) -> Record:
    value = {"claim": key, "lead_id": lead_id, "partition": partition, "occurred_at": "2026-11-02T09:00:00+00:00"}
    return Record(key.encode(), orjson.dumps(value), "leadflow-match", 0, offset)


def _stage(outbox: _Outbox) -> MatchStage:
    return MatchStage(Settings(), outbox, outbox.metrics, _Table("match-keys", outbox.acknowledged))  # type: ignore[arg-type]


def _answers(messages: list[Message]) -> list[tuple[str | None, int | None, Any]]:
    leads = Settings().topic_leads
    return [(m.topic, m.partition, orjson.loads(m.value or b"")["survivor_id"]) for m in messages if m.topic == leads]


def test_answers_go_to_the_claiming_leads_partition_and_a_crash_before_storing_changes_no_answer() -> None:
    key = "e" * 32
    claims = [_claim(key, "B", 3, 0), _claim(key, "A", 1, 1)]
    broker: list[Message] = []
    first = _stage(_Outbox(broker, kill_on="leadflow-match-keys-changelog"))
    _commit_until_killed(first, first.prepare(claims), "the match table")
    assert _answers(broker) == [("leads", 3, "B"), ("leads", 1, "B")]

    restarted = _stage(_Outbox(broker))  # the table as its changelog restores it: empty, the store never happened
    again = restarted.prepare(claims)
    assert _answers(again.outputs) == _answers(broker)  # the same claims in the same order: the same answers
    asyncio.run(restarted.commit(again))
    later = restarted.prepare([_claim(key, "C", 0, 2)])
    assert _answers(later.outputs) == [("leads", 0, "B")]
    asyncio.run(restarted.commit(later))
    survivor = restarted.metrics.registry.get_sample_value("leadflow_match_claims_total", {"outcome": "survivor"})
    duplicate = restarted.metrics.registry.get_sample_value("leadflow_match_claims_total", {"outcome": "duplicate"})
    assert (survivor, duplicate) == (1, 2)
