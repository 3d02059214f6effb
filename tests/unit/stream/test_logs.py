"""Repeated Kafka client errors are held back: the first of a kind shows, then one a window with a count."""

from __future__ import annotations

import logging

from worker.stream._logs import RepeatFilter


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_the_first_of_a_kind_passes_then_one_a_window_with_the_count_held_back() -> None:
    clock = _Clock()
    repeat = RepeatFilter(interval=30, clock=clock)
    shown = []
    for second in range(75):
        clock.now = float(second)
        for _ in range(10):  # ten clients fail each second
            record = _record("aiokafka.client", "Unable connect to node with id %s: %s", 111, "Connect call failed")
            if repeat.filter(record):
                shown.append((second, record.getMessage()))
    assert [s for s, _ in shown] == [0, 30, 60]
    assert shown[0][1] == "Unable connect to node with id 111: Connect call failed"
    assert shown[1][1] == "Unable connect to node with id 111: Connect call failed (299 more like this in the last 30s)"


def test_the_count_survives_the_workers_formatter() -> None:
    from mode.utils.logging import ExtensionFormatter  # what Faust's worker formats its log with

    clock = _Clock()
    repeat = RepeatFilter(interval=30, clock=clock)
    repeat.filter(_record("aiokafka.client", "Unable to update metadata from %s", [111]))
    repeat.filter(_record("aiokafka.client", "Unable to update metadata from %s", [111]))
    clock.now = 31.0
    record = _record("aiokafka.client", "Unable to update metadata from %s", [111])
    assert repeat.filter(record)
    line = ExtensionFormatter(fmt="%(message)s").format(record)
    assert line == "Unable to update metadata from [111] (1 more like this in the last 31s)"


def test_kinds_are_counted_apart_and_other_loggers_and_info_pass() -> None:
    repeat = RepeatFilter(interval=30, clock=_Clock())
    fetch = _record("aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", 111, "not ready")
    metadata = _record("aiokafka.client", "Unable to update metadata from %s", [111])
    assert repeat.filter(fetch)
    assert repeat.filter(metadata)
    assert not repeat.filter(_record("aiokafka.consumer.fetcher", "Failed fetch messages from %s: %s", 111, "closed"))
    assert repeat.filter(_record("aiokafka.client", "Discovered coordinator %s", 111, level=logging.INFO))
    for _ in range(3):  # leadflow's own errors elsewhere (a refused ruleset, a bad record) are never held back
        assert repeat.filter(_record("worker.stream.reload", "refused a ruleset: %s", "line 3"))


def test_a_record_gets_one_decision_for_every_handler() -> None:
    repeat = RepeatFilter(interval=30, clock=_Clock())
    record = _record("aiokafka.conn", "connection lost")
    assert repeat.filter(record)
    assert repeat.filter(record)  # the second handler sees the same record, not a repeat
    assert not repeat.filter(_record("aiokafka.conn", "connection lost"))
