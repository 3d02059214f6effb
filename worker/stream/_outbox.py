"""The worker's producers: :class:`Outbox` sends lists of messages on two lanes and retries until the broker has
them all; :class:`BatchSender` builds one record batch per (topic, partition) instead of one ``send`` per message.

Faust's per-message send costs more than leadflow's whole decision; building record batches with aiokafka's
``create_batch``/``send_batch`` moves the same messages for a fraction of the CPU. Partitions follow the Java
client's default (murmur2 of the key), so consumers see the usual key → partition mapping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from aiokafka.partitioner import murmur2

from worker.batch import RecordLike
from worker.exceptions import EventError
from worker.settings import Settings
from worker.stream.metrics import Metrics

__all__ = ["BatchSender", "Message", "Outbox"]

logger = logging.getLogger(__name__)

_MAX_BACKOFF = 10.0
_LARGE_VALUE = 64 * 1024

Headers = list[tuple[str, bytes]]


class Message(NamedTuple):  # a tuple: two are built per event
    """One record to send; ``partition`` None means murmur2 of the key (the first partition for no key)."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: Headers | None = None


class BatchSender:
    """Sends lists of messages as record batches and waits until the broker has acknowledged all of them."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitions: dict[str, list[int]] = {}
        self._by_key: dict[tuple[str, bytes], int] = {}
        self._handing_over = asyncio.Lock()  # FIFO: lists handed over in order are queued in that order

    async def partition_for(self, topic: str, key: bytes | None) -> int:
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(await self.producer.partitions_for(topic))
        if key is None:
            return partitions[0]
        cached = self._by_key.get((topic, key))
        if cached is None:
            if len(self._by_key) > 200_000:
                self._by_key.clear()
            cached = self._by_key[topic, key] = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
        return cached

    async def send(self, messages: Iterable[Message]) -> dict[tuple[str, int], int]:
        """Send ``messages``; returns the offset of the last record written per (topic, partition).

        Several sends may wait for the broker at once (a worker commits more than one batch at a time); their
        messages are queued one list after the other, in the order the sends were called, so that a lead's
        records stay in order on their partition.
        """
        async with self._handing_over:
            pending = await self._queue(messages)
        results = await asyncio.gather(*(fut for _, _, fut in pending))
        last: dict[tuple[str, int], int] = {}
        for (tp, count, _), meta in zip(pending, results, strict=True):
            end = meta.offset + count - 1
            if end > last.get(tp, -1):
                last[tp] = end
        return last

    async def _queue(self, messages: Iterable[Message]) -> list[tuple[tuple[str, int], int, Any]]:
        """Hand the messages to the producer as record batches; (topic-partition, count, future) per batch."""
        groups: dict[tuple[str, int], list[Message]] = defaultdict(list)
        by_key = self._by_key
        for m in messages:
            partition = m.partition
            if partition is None:  # a key seen before needs no coroutine (two messages an event come here)
                partition = by_key.get((m.topic, m.key)) if m.key is not None else None
                if partition is None:
                    partition = await self.partition_for(m.topic, m.key)
            groups[m.topic, partition].append(m)
        producer = self.producer
        pending: list[tuple[tuple[str, int], int, Any]] = []
        for (topic, partition), msgs in groups.items():
            batch, count = producer.create_batch(), 0
            for m in msgs:
                if batch.append(key=m.key, value=m.value, timestamp=None, headers=m.headers or []) is None:
                    if count:
                        pending.append(
                            (
                                (topic, partition),
                                count,
                                await producer.send_batch(batch, topic, partition=partition),
                            )
                        )
                    batch, count = producer.create_batch(), 0
                    if batch.append(key=m.key, value=m.value, timestamp=None, headers=m.headers or []) is None:
                        # larger than a batch on its own: the ordinary path splits nothing, it just sends it
                        fut = await producer.send(
                            topic, m.value, key=m.key, partition=partition, headers=m.headers or []
                        )
                        pending.append(((topic, partition), 1, fut))
                        continue
                count += 1
            if count:
                pending.append(
                    ((topic, partition), count, await producer.send_batch(batch, topic, partition=partition))
                )
        return pending


class Outbox:
    """The worker's producers: sends lists of messages and retries until the broker has them all.

    Two lanes, each its own producer and connection: ``outputs`` (decisions, opportunities, routing, dead
    letters) and ``changelog`` (the tables' state). A producer has one request in flight per broker, so with one
    lane a batch's states could wait behind outputs handed over meanwhile (another stage's, or the next batch's
    with ``LEADFLOW_BATCHES_IN_FLIGHT`` above 1). Within a lane, messages go out in the order they are handed
    over. Both compress their record batches with ``LEADFLOW_COMPRESSION``.
    """

    LANES = ("outputs", "changelog")

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.senders: dict[str, BatchSender] = {}
        self._users = 0
        self._starting: asyncio.Lock | None = None

    async def start(self) -> None:
        self._users += 1
        if self._starting is None:
            self._starting = asyncio.Lock()  # created here, in the worker's event loop
        async with self._starting:  # the agents start together: one producer per lane, not one per agent
            await self._start_lanes()

    async def _start_lanes(self) -> None:
        s = self.settings
        for lane in self.LANES:
            if lane in self.senders:
                continue
            producer = AIOKafkaProducer(
                bootstrap_servers=s.bootstrap_servers,
                client_id=f"{s.app_id}-{lane}",
                acks="all",
                linger_ms=0,  # we hand over whole batches; nothing to wait for
                max_batch_size=512 * 1024,
                max_request_size=s.max_event_bytes + 256 * 1024,
                compression_type=s.compression_type,
                **s.kafka_auth(),
            )
            await producer.start()
            self.senders[lane] = BatchSender(producer)

    async def stop(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users == 0:
            senders, self.senders = self.senders, {}
            for sender in senders.values():
                await sender.producer.stop()

    async def send(self, messages: list[Message], lane: str = "outputs") -> dict[tuple[str, int], int]:
        """Send and wait until the broker has every message; on errors retry (nothing is acked meanwhile).

        A broker that is away is waited for: the Kafka error is logged (without a traceback; repeats are held
        back, see :mod:`worker.stream._logs`), and once the messages are sent, how long it took.
        """
        backoff = 0.1
        failures = 0
        first_failure = 0.0
        while True:
            sender = self.senders.get(lane)
            if sender is None:
                await self.start()
                sender = self.senders[lane]
            try:
                offsets = await sender.send(messages)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.send_retries.inc()
                if isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError):
                    shrunk = self._without_large_values(messages)
                    if shrunk is not None:  # the broker takes less than the record that came from it
                        messages = shrunk
                        continue
                if not failures:
                    first_failure = time.monotonic()
                failures += 1
                if isinstance(exc, KafkaError):
                    logger.warning(
                        "sending %d records failed (%r); retrying in %.1fs (nothing is acked meanwhile)",
                        len(messages),
                        exc,
                        backoff,
                    )
                else:
                    logger.exception("sending a batch failed; retrying in %.1fs (the batch is not acked)", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            if failures:
                took = time.monotonic() - first_failure
                logger.info("sent %d records after %d failed attempts over %.0fs", len(messages), failures, took)
            return offsets

    def _without_large_values(self, messages: list[Message]) -> list[Message] | None:
        """The messages with every large dead letter's value left out (a header says how large it was), or None
        when there is none to leave out.

        A record that only just fit the broker's limit on its own topic can be refused on the dead-letter topic,
        where its headers make it larger; its key, reason and position (topic, partition, offset) still go, and
        the value stays on the source topic. Nothing else is too large: outputs and states are bounded.
        """
        dlq = self.settings.topic_dlq
        out, changed = [], False
        for m in messages:
            if m.topic == dlq and m.value is not None and len(m.value) > _LARGE_VALUE:
                headers = [*(m.headers or []), ("leadflow.value_omitted", str(len(m.value)).encode())]
                m = m._replace(value=None, headers=headers)
                changed = True
            out.append(m)
        if not changed:
            return None
        logger.warning("the broker refused a dead letter as too large; sending them without values over 64 KiB")
        return out

    def dead_letters(self, failures: Sequence[tuple[RecordLike, EventError]]) -> list[Message]:
        """Dead-letter records: the original key and value, with the reason and position in headers."""
        out = []
        failed_at = dt.datetime.now(dt.UTC).isoformat().encode()
        for record, error in failures:
            headers = [
                ("leadflow.reason", error.reason.encode()),
                ("leadflow.error_class", type(error).__name__.encode()),
                ("leadflow.error_message", str(error)[:2000].encode("utf-8", "backslashreplace")),
                ("leadflow.source_topic", record.topic.encode()),
                ("leadflow.source_partition", str(record.partition).encode()),
                ("leadflow.source_offset", str(record.offset).encode()),
                ("leadflow.failed_at", failed_at),
            ]
            out.append(Message(self.settings.topic_dlq, record.key, record.value, headers=headers))
        return out
