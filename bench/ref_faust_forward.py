"""Reference: a Faust agent that forwards each event with its own send (Faust's per-event path)."""

import os
import sys

import faust

broker = os.environ["BENCH_BROKER"]
app = faust.App(
    f"bench-forward-{os.environ['BENCH_ID']}",
    broker=broker,
    store="memory://",
    web_enabled=False,
    autodiscover=False,
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=2,
    broker_heartbeat_interval=0.5,
    broker_commit_interval=0.5,
    key_serializer="raw",
    value_serializer="raw",
)
source = app.topic(os.environ["BENCH_SOURCE"], key_type=bytes, value_type=bytes)
sink = app.topic(os.environ["BENCH_SINK"], key_type=bytes, value_type=bytes)


@app.agent(source)
async def forward(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()
