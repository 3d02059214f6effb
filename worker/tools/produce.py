"""Send lead events to Kafka from JSON lines (``leadflow produce``) or from memory (the demo)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

from worker.exceptions import ConfigError
from worker.settings import Settings
from worker.stream.topics import check_reachable

__all__ = ["key_of", "make_producer", "produce_file", "produce_lines"]


def make_producer(settings: Settings) -> KafkaProducer:
    """A kafka-python producer tuned for bulk sends, compressing with LEADFLOW_COMPRESSION, acknowledged by all."""
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=max(settings.max_event_bytes * 2, 1024 * 1024),
        client_id=f"{settings.app_id}-producer",
        compression_type=settings.compression_type,
        **settings.kafka_auth(),
    )


def key_of(line: bytes) -> bytes | None:
    """The record key of an event line: its ``lead_id``, or None when the line has none to give."""
    try:
        data: Any = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    lead_id = data.get("lead_id") if isinstance(data, dict) else None
    return lead_id.encode() if isinstance(lead_id, str) else None


def produce_lines(settings: Settings, lines: Iterable[bytes], producer: KafkaProducer | None = None) -> int:
    """Send each non-blank line as one record keyed by its lead_id; returns how many were sent."""
    own = producer is None
    producer = producer or make_producer(settings)
    sent = 0
    try:
        for line in lines:
            value = line.rstrip(b"\r\n")
            if not value.strip():
                continue
            producer.send(settings.topic_leads, key=key_of(value), value=value)
            sent += 1
        producer.flush()
    finally:
        if own:
            producer.close()
    return sent


def _lines(path: Path) -> Iterator[bytes]:
    if str(path) == "-":
        yield from sys.stdin.buffer
        return
    with path.open("rb") as handle:
        yield from handle


def produce_file(settings: Settings, path: Path) -> int:
    """``leadflow produce FILE``: send a JSON-lines file, with a progress bar."""
    from rich.progress import Progress

    if str(path) != "-" and not path.is_file():
        msg = f"cannot read {str(path)!r}: no such file; expected JSON lines, one lead event per line ('-' for stdin)"
        raise ConfigError(msg)
    check_reachable(settings, f"send to the leads topic {settings.topic_leads!r}")
    total = None if str(path) == "-" else path.stat().st_size
    with Progress(transient=True) as progress:
        task = progress.add_task(f"sending {path}", total=total)

        def tracked() -> Iterator[bytes]:
            for line in _lines(path):
                progress.advance(task, len(line))
                yield line

        return produce_lines(settings, tracked())
