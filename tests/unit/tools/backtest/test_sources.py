"""Reading a history: a file's lines, and a topic up to its end offsets at the start (with a stand-in consumer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest
from kafka import TopicPartition

from worker.exceptions import BacktestError
from worker.tools.backtest import open_events_file
from worker.tools.backtest._sources import EventSource, _topic_batches, _topics_there


class _Msg(NamedTuple):
    key: bytes
    value: bytes
    offset: int


@dataclass
class _Consumer:
    """Partitions as lists of messages; a fetch reports the high watermark as the log's length at that moment."""

    logs: dict[TopicPartition, list[_Msg]]
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    highwaters: dict[TopicPartition, int] = field(default_factory=dict)
    paused: set[TopicPartition] = field(default_factory=set)
    polls: int = 0
    after_first_poll: list[tuple[TopicPartition, int]] = field(default_factory=list)  # produced meanwhile

    def position(self, tp: TopicPartition) -> int:
        return self.positions.get(tp, 0)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[_Msg]]:
        out: dict[TopicPartition, list[_Msg]] = {}
        for tp, log in self.logs.items():
            if tp in self.paused:
                continue
            self.highwaters[tp] = len(log)
            start = self.position(tp)
            got = log[start : start + max_records]
            if got:
                out[tp] = got
                self.positions[tp] = start + len(got)
        self.polls += 1
        if self.polls == 1:
            for tp, n in self.after_first_poll:
                base = len(self.logs[tp])
                self.logs[tp].extend(_Msg(b"k", b"late", base + i) for i in range(n))
        return out


def _log(n: int) -> list[_Msg]:
    return [_Msg(b"k", b"v%d" % i, i) for i in range(n)]


def test_a_topic_is_read_to_its_true_end_at_the_start_and_no_further() -> None:
    t0, t1 = TopicPartition("leads", 0), TopicPartition("leads", 1)
    consumer = _Consumer({t0: _log(5), t1: []}, after_first_poll=[(t0, 2)])
    listed = {t0: 3, t1: 0}  # ListOffsets short of the truth, as tansu reports it after batched produces
    source = EventSource("topic", "topic 'leads'", 3, iter(()))

    # the first fetch brings offsets 0-3: offset 3 is past the listed end but before the true one
    batches = list(_topic_batches(consumer, source, {t0: 0, t1: 0}, listed, batch_size=4))

    read = [(r.partition, r.offset) for batch in batches for r in batch]
    assert read == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]  # not the two produced after the start
    assert source.total == 5
    assert [len(batch) for batch in batches] == [4, 1]


def test_a_file_is_read_in_batches_with_line_numbers_and_its_errors_name_it(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"lead_id": "A"}\n\n{"lead_id": "B"}\r\nnot json\n')
    with open_events_file(path, batch_size=2) as source:
        batches = list(source.batches)
    assert source.total == 3
    assert [[(r.key, r.offset) for r in b] for b in batches] == [[(b"A", 1), (b"B", 3)], [(None, 4)]]
    assert source.where(batches[1][0]) == "line 4"
    with pytest.raises(BacktestError, match=r"events file '.*' is a directory"), open_events_file(tmp_path):
        pass


def test_a_missing_topic_lists_the_closest_names_first_however_many_topics_there_are() -> None:
    topics = {f"team-{i:03}-events" for i in range(40)} | {"leads", "lead-decisions", "__consumer_offsets"}
    said = _topics_there("leeds", topics)
    assert said.startswith("topics there, closest first: 'leads', 'lead-decisions'")
    assert "__consumer_offsets" not in said
    assert said.endswith(" and 22 more")  # 42 topics of ours, 20 shown
    assert _topics_there("leads", set()) == "the broker has no topics"
