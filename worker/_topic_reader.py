"""Read a whole topic without a consumer group, then follow it: how every worker sees all of a small topic.

The control topic (rulesets, models) and the accounts topic (known accounts) are read this way: each worker reads
every partition from the beginning, commits nothing, and keeps following; nothing depends on group membership.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from kafka import KafkaConsumer, TopicPartition

from worker.settings import Settings

__all__ = ["RawRecord", "follow_topic", "read_topic"]

logger = logging.getLogger(__name__)


class RawRecord(NamedTuple):
    """One record as read: where it sits, its key and value."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def consumer_options(settings: Settings, role: str) -> dict[str, Any]:
    """A whole-topic reader's options, the same for kafka-python and aiokafka: no group, nothing committed."""
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "group_id": None,
        "enable_auto_commit": False,
        "client_id": f"{settings.app_id}-{role}",
        "max_partition_fetch_bytes": 16 * 1024 * 1024,
        "fetch_max_bytes": 64 * 1024 * 1024,
        **settings.kafka_auth(),
    }


def read_topic(
    settings: Settings, topic: str, role: str, quiet_ms: int = 300, timeout: float = 30.0
) -> tuple[list[RawRecord], dict[int, int]]:
    """Every record of ``topic`` from the beginning to its end, and the offset to follow on from per partition."""
    consumer = KafkaConsumer(**consumer_options(settings, role))
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps) if tps else {}
        records: list[RawRecord] = []
        next_offsets = {tp.partition: 0 for tp in tps}
        give_up = time.monotonic() + timeout
        # Some brokers (tansu) under-report end offsets, so read on until the end is passed AND a poll comes back
        # empty, not just until the reported end.
        while tps:
            polled = consumer.poll(timeout_ms=quiet_ms)
            for tp, batch in polled.items():
                for r in batch:
                    records.append(RawRecord(tp.partition, r.offset, r.key, r.value))
                    next_offsets[tp.partition] = r.offset + 1
            reached = all(consumer.position(tp) >= ends.get(tp, 0) for tp in tps)
            if (reached and not polled) or time.monotonic() > give_up:
                break
        return records, next_offsets
    finally:
        _close_quietly(consumer)


def _close_quietly(consumer: KafkaConsumer) -> None:
    """Close a kafka-python consumer; it logs a metadata refresh it cancels itself on close as an ERROR."""
    cluster_log = logging.getLogger("kafka.cluster")
    level = cluster_log.level
    cluster_log.setLevel(logging.CRITICAL)
    try:
        consumer.close()
    finally:
        cluster_log.setLevel(level)


async def follow_topic(
    settings: Settings,
    topic: str,
    role: str,
    start: dict[int, int],
    on_record: Callable[[RawRecord], object],
) -> None:
    """Read ``topic`` from ``start`` on, for ever, handing each record to ``on_record`` in order per partition.

    Partitions added later are picked up from their beginning.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as AioTP

    backoff = 0.5
    offsets = dict(start)
    while True:
        consumer = AIOKafkaConsumer(**consumer_options(settings, role))
        try:
            await consumer.start()
            partitions = consumer.partitions_for_topic(topic) or set()
            tps = [AioTP(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, offsets.get(tp.partition, 0))
            backoff = 0.5
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for tp, batch in batches.items():
                    for r in batch:
                        on_record(RawRecord(tp.partition, r.offset, r.key, r.value))
                        offsets[tp.partition] = r.offset + 1
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("reading the topic %r failed; retrying in %.1fs", topic, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
        finally:
            await consumer.stop()
