"""The high-watermark fix against the real broker: end offsets must count every record of the last batch."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from worker.stream._outbox import BatchSender, Message
from worker.stream._transport import fetch_highwaters
from worker.tools.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


async def _end_offsets_after_batches(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await producer.start()
    await consumer.start()
    try:
        sender = BatchSender(producer)
        await sender.send([Message(topic, b"k%d" % i, b"v", partition=0) for i in range(10)])
        await sender.send([Message(topic, b"k%d" % i, b"v", partition=0) for i in range(5)])
        await sender.send([Message(topic, b"k", b"v", partition=1)])
        return await fetch_highwaters(consumer, [TopicPartition(topic, 0), TopicPartition(topic, 1)])
    finally:
        await consumer.stop()
        await producer.stop()


def test_high_watermarks_count_every_record_of_the_last_batch(broker: EmbeddedBroker) -> None:
    topic = "hw-test"
    ends = asyncio.run(_end_offsets_after_batches(broker.url.split("://", 1)[1], topic))
    assert ends == {TopicPartition(topic, 0): 15, TopicPartition(topic, 1): 1}
