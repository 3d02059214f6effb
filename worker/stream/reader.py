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

from worker.settings import Settings
from worker.stream._fetch import install as install_tolerant_fetcher

__all__ = ["RawRecord", "follow_topic", "read_topic"]

logger = logging.getLogger(__name__)


class RawRecord(NamedTuple):
    """One record as read: where it sits, its key and value (and the client's record, for its headers)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    source: Any = None


def consumer_options(settings: Settings, role: str) -> dict[str, Any]:
    """A whole-topic reader's aiokafka options: no group, nothing committed."""
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
    """Every record of ``topic`` from the beginning to its end, and the offset to follow on from per partition.

    Synchronous (start-up and command-line tools): runs its own event loop, so it must not be called from one.
    """
    return asyncio.run(_read_topic(settings, topic, role, quiet_ms, timeout))


async def _read_topic(
    settings: Settings, topic: str, role: str, quiet_ms: int, timeout: float
) -> tuple[list[RawRecord], dict[int, int]]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    install_tolerant_fetcher()
    consumer = AIOKafkaConsumer(**consumer_options(settings, role))
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        records: list[RawRecord] = []
        next_offsets = {tp.partition: 0 for tp in tps}
        if not tps:
            return records, next_offsets
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        give_up = time.monotonic() + timeout
        # Some brokers (tansu) under-report end offsets, so read on until the end is passed AND a poll comes back
        # empty, not just until the reported end.
        while True:
            polled = await consumer.getmany(timeout_ms=quiet_ms)
            for tp, batch in polled.items():
                for r in batch:
                    records.append(RawRecord(tp.partition, r.offset, r.key, r.value, r))
                    next_offsets[tp.partition] = r.offset + 1
            positions = [await consumer.position(tp) for tp in tps]
            reached = all(position >= ends.get(tp, 0) for tp, position in zip(tps, positions, strict=True))
            if (reached and not polled) or time.monotonic() > give_up:
                break
        return records, next_offsets
    finally:
        await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> set[int]:
    """The topic's partitions (none when it does not exist)."""
    partitions: set[int] | None = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()  # aiokafka learns of a topic on a metadata refresh
        partitions = consumer.partitions_for_topic(topic)
    return partitions or set()


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

    install_tolerant_fetcher()
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
                        offsets[tp.partition] = r.offset + 1  # whatever on_record makes of it, it is not read again
                        on_record(RawRecord(tp.partition, r.offset, r.key, r.value, r))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("reading the topic %r failed; retrying in %.1fs", topic, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
        finally:
            await consumer.stop()
