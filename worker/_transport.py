"""Faust's aiokafka transport with two fixes leadflow needs.

1. High watermarks from a Fetch. Table recovery asks for each changelog partition's end offset with ListOffsets;
   some Kafka-protocol brokers (tansu 0.6, the embedded one) answer with the offset of the last *batch* rather
   than past its last record, so a table would silently miss its newest updates after a restart. The high
   watermark inside a Fetch response is right everywhere, so we ask both and take the larger.
2. A bounded fetch wait. Faust hard-codes ``fetch_max_wait_ms=1500``; an idle stream then waits up to 1.5 s
   for each new event. ``LEADFLOW_FETCH_MAX_WAIT_MS`` (default 100) bounds it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.protocol.fetch import FetchRequest
from faust.transport.drivers import aiokafka as faust_aiokafka

from worker.settings import Settings

__all__ = ["LeadflowTransport", "fetch_highwaters"]

logger = logging.getLogger(__name__)

_FETCH_WAIT_MS = 10


async def fetch_highwaters(consumer: Any, partitions: Iterable[Any]) -> dict[Any, int]:
    """End offsets of ``partitions``: the larger of ListOffsets and the high watermark of a Fetch."""
    tps = list(partitions)
    if not tps:
        return {}
    listed: Mapping[Any, int] = await consumer.end_offsets(tps)
    result = dict(listed)
    client = consumer._client  # aiokafka has no public API for a raw Fetch
    by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(lambda: defaultdict(list))
    for tp in tps:
        node = client.cluster.leader_for_partition(tp)
        if node is None or node < 0:
            continue
        by_node[node][tp.topic].append((tp.partition, listed[tp], 64 * 1024))
    by_key = {(tp.topic, tp.partition): tp for tp in tps}
    answered: set[Any] = set()
    for node, topics in by_node.items():
        # max_wait 0 makes tansu answer with no partitions at all; 10 ms with min_bytes 0 returns at once anyway
        request = FetchRequest(_FETCH_WAIT_MS, 0, 1024 * 1024, 0, list(topics.items()))
        response = await client.send(node, request)
        for topic, parts in response.topics:
            for partition, error_code, highwater, *_ in parts:
                tp = by_key.get((topic, partition))
                if tp is None or error_code != 0:
                    continue
                answered.add(tp)
                if highwater > result[tp]:
                    logger.info(
                        "high watermark of %s[%d] is %d (ListOffsets said %d)",
                        topic,
                        partition,
                        highwater,
                        result[tp],
                    )
                    result[tp] = highwater
    unanswered = [f"{tp.topic}[{tp.partition}]" for tp in tps if tp not in answered]
    if unanswered:
        logger.warning(
            "no high watermark in the Fetch response for %s; using ListOffsets, which may be short on tansu",
            ", ".join(unanswered),
        )
    return result


def _settings(app: Any) -> Settings:
    settings: Settings = app.leadflow_settings  # set by worker.app.build_app on every LeadflowApp
    return settings


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = _settings(self.app).fetch_max_wait_ms  # read when the consumer starts
        return consumer

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        if self.consumer.in_transaction or not _settings(self.app).highwater_from_fetch:
            return await super()._highwaters(partitions)
        return await fetch_highwaters(self._ensure_consumer(), partitions)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class LeadflowTransport(faust_aiokafka.Transport):
    """The aiokafka transport with the two fixes above."""

    Consumer = _Consumer
