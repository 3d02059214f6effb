"""Reference: a raw aiokafka consume → produce loop with manual commits (no framework at all)."""

import asyncio
import os
import signal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def main() -> None:
    broker = os.environ["BENCH_BROKER"].removeprefix("kafka://")
    consumer = AIOKafkaConsumer(
        os.environ["BENCH_SOURCE"],
        bootstrap_servers=broker,
        group_id=f"bench-raw-{os.environ['BENCH_ID']}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        fetch_max_wait_ms=100,
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=2, acks="all")
    await consumer.start()
    await producer.start()
    sink = os.environ["BENCH_SINK"]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            pending = []
            for records in batches.values():
                for r in records:
                    pending.append(await producer.send(sink, r.value, key=r.key))
            if pending:
                await asyncio.gather(*pending)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


asyncio.run(main())
