"""Where a backtest's events come from: a JSON-lines file or a Kafka topic, read as batches of raw records.

A topic is read without a consumer group (partitions assigned, never committed) from its beginning up to its end
offsets at the start, so that production consumers and their offsets are untouched.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.batch import Record, RecordLike
from worker.exceptions import BacktestError
from worker.settings import Settings
from worker.stream.topics import check_broker, unreachable
from worker.tools.produce import key_of

__all__ = ["EventSource", "open_events_file", "open_topic"]

_EXPECTED = "expected JSON lines, one lead event per line, as 'leadflow produce' takes them"
_STALL_SECONDS = 30.0  # no record for this long while offsets remain: the topic cannot be read to its end


@dataclass
class EventSource:
    """A history of raw records: a name for messages, how many (refined while a topic is read), the batches."""

    kind: str  # "file" or "topic"
    name: str
    total: int
    batches: Iterator[list[Record]]

    def where(self, record: RecordLike) -> str:
        """The position of a record as a person looks for it: a line of the file, or partition and offset."""
        if self.kind == "file":
            return f"line {record.offset}"
        return f"partition {record.partition}, offset {record.offset}"


@contextmanager
def open_events_file(path: Path, batch_size: int = 500) -> Iterator[EventSource]:
    """The events of a JSON-lines file (blank lines skipped), keyed by their lead_id like ``leadflow produce``."""
    name = str(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        msg = f"events file {name!r} {what}; {_EXPECTED} (or read a topic with --topic)"
        raise BacktestError(msg, source=name)
    total = 0
    try:
        with path.open("rb") as handle:
            for line in handle:
                total += bool(line.strip())
    except OSError as exc:
        msg = f"cannot read events file {name!r} (line {total + 1}): {exc.strerror or exc}"
        raise BacktestError(msg, source=name) from exc
    yield EventSource("file", f"events file {name!r}", total, _file_batches(path, batch_size))


def _file_batches(path: Path, batch_size: int) -> Iterator[list[Record]]:
    name = str(path)
    batch: list[Record] = []
    number = 0
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):  # number names the line on a read error
                value = raw.rstrip(b"\r\n")
                if not value.strip():
                    continue
                batch.append(Record(key_of(value), value, name, 0, number))
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
    except OSError as exc:
        msg = f"cannot read events file {name!r} (line {number + 1}): {exc.strerror or exc}"
        raise BacktestError(msg, source=name) from exc
    if batch:
        yield batch


@contextmanager
def open_topic(
    settings: Settings, topic: str, batch_size: int = 500, connect_timeout: float = 10.0
) -> Iterator[EventSource]:
    """The records of ``topic`` from its beginning to its end offsets now, read without a consumer group."""
    from kafka import KafkaConsumer, TopicPartition  # only a topic backtest needs a client
    from kafka.errors import KafkaError

    url = settings.broker_url
    _check_reachable(settings, topic, connect_timeout)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.app_id}-backtest",
            group_id=None,  # no group: nothing joined, nothing committed
            enable_auto_commit=False,
            request_timeout_ms=30_000,
            bootstrap_timeout_ms=int(connect_timeout * 1000),
            **settings.kafka_auth(),
        )
    except KafkaError as exc:
        msg = f"cannot reach the broker at {url!r} to read topic {topic!r}: {exc}; start it, or pass --broker URL"
        raise BacktestError(msg, source=url) from exc
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            msg = f"topic {topic!r} does not exist on {url!r}; {_topics_there(topic, consumer.topics())}"
            raise BacktestError(msg, source=topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        begin: dict[Any, int] = consumer.beginning_offsets(tps)
        end: dict[Any, int] = consumer.end_offsets(tps)
        consumer.seek_to_beginning(*tps)
        source = EventSource("topic", f"topic {topic!r} on {url}", sum(end[tp] - begin[tp] for tp in tps), iter(()))
        source.batches = _topic_batches(consumer, source, begin, end, batch_size)
        yield source
    except KafkaError as exc:
        msg = f"cannot read topic {topic!r} from {url!r}: {exc}"
        raise BacktestError(msg, source=topic) from exc
    finally:
        consumer.close(autocommit=False)


def _check_reachable(settings: Settings, topic: str, timeout: float) -> None:
    """Fail fast, and without a client left half-open, when no bootstrap server accepts a connection."""
    why = unreachable(settings, timeout)
    if why is not None:
        msg = (
            f"cannot reach the broker at {settings.broker_url!r} to read topic {topic!r} ({why}); "
            "start it, or pass --broker URL (default: LEADFLOW_BROKER_URL)"
        )
        raise BacktestError(msg, source=settings.broker_url)
    check_broker(settings, timeout)  # a distrusted certificate or refused credentials: said now, not after retries


def _topic_batches(
    consumer: Any, source: EventSource, begin: dict[Any, int], end: dict[Any, int], batch_size: int
) -> Iterator[list[Record]]:
    """Poll until every partition is read to its end offset as it was at the start.

    ListOffsets can report an end offset short of the truth (tansu does, after batched produces), so each
    partition's end is raised to the high watermark of its first fetch response, which is right on Kafka too.
    """
    ends = dict(end)
    confirmed: set[Any] = set()

    def confirm() -> None:
        for tp in ends:
            highwater = None if tp in confirmed else consumer.highwater(tp)
            if highwater is not None:
                confirmed.add(tp)
                if highwater > ends[tp]:
                    source.total += highwater - ends[tp]
                    ends[tp] = highwater

    last_progress = time.monotonic()
    while True:
        remaining = [tp for tp in ends if consumer.position(tp) < ends[tp] or tp not in confirmed]
        done = [tp for tp in ends if tp not in remaining]
        if done:
            consumer.pause(*done)
        if not remaining:
            return
        if time.monotonic() - last_progress > _STALL_SECONDS:
            if all(consumer.position(tp) >= ends[tp] for tp in remaining):
                return  # no fetch response said otherwise: ListOffsets stands
            left = {f"{tp.topic}[{tp.partition}]": ends[tp] - consumer.position(tp) for tp in remaining}
            msg = f"{source.name}: no record for {_STALL_SECONDS:.0f}s with records left to read: {left}"
            raise BacktestError(msg, source=source.name)
        polled = consumer.poll(timeout_ms=500, max_records=batch_size)
        confirm()  # before filtering: the fetch that brought these records also brought the true end
        batch = [
            Record(r.key, r.value, tp.topic, tp.partition, r.offset, None)
            for tp, rows in polled.items()
            for r in rows
            if r.offset < ends[tp]
        ]
        if batch:
            last_progress = time.monotonic()
            yield batch


def _topics_there(topic: str, topics: set[str], shown: int = 20) -> str:
    """The broker's topics for an error about a missing one: the names closest to it first (a typo shows its
    fix), at most ``shown`` of them, and how many there are in all."""
    known = [t for t in topics if not t.startswith("__")]
    if not known:
        return "the broker has no topics"
    known.sort(key=lambda t: (-difflib.SequenceMatcher(None, topic, t).ratio(), t))
    listed = ", ".join(repr(t) for t in known[:shown])
    more = f" and {len(known) - shown} more" if len(known) > shown else ""
    return f"topics there, closest first: {listed}{more}"
