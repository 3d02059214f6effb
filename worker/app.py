"""The thin Faust shell: topics, the lead-state table and one agent that hands batches to the core.

Nothing here decides anything. The agent takes up to ``batch_size`` events at a time, loads the leads' states,
calls :func:`worker.core.process_batch`, sends every output and waits for the broker to have them, then writes
the states; Faust acks the batch only after that, and commits offsets only after the producer is flushed. So a
crash anywhere re-processes events (at-least-once) and never loses one; deterministic ids make the re-sent
outputs harmless to consumers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry

from worker._transport import LeadflowTransport
from worker.core import BatchResult, Engine, Record, process_batch
from worker.metrics import Metrics
from worker.settings import Settings

__all__ = ["LeadflowApp", "build_app"]

logger = logging.getLogger(__name__)

_RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
_MAX_BACKOFF = 10.0


class LeadflowApp(faust.App):  # type: ignore[misc]  # faust is untyped
    """A Faust app that uses :class:`LeadflowTransport` and carries leadflow's settings."""

    leadflow_settings: Settings

    def _new_transport(self) -> Any:
        return LeadflowTransport(self.conf.broker_consumer, self)


class BatchHandler:
    """Moves one batch of Faust events through the core and its outputs out to Kafka."""

    def __init__(self, app: LeadflowApp, settings: Settings, engine: Engine, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.table: Any = None

    async def handle(self, stream: Any, events: Sequence[Any]) -> None:
        """Process ``events`` (Faust events of the leads topic); never raises for bad data."""
        table = self.table
        records: list[Record] = []
        stored: dict[bytes, bytes | None] = {}
        last_event: dict[bytes, Any] = {}
        for event in events:
            msg = event.message
            records.append(Record(msg.key, msg.value, msg.topic, msg.partition, msg.offset, msg.timestamp))
            key = msg.key
            if key is not None and key not in stored:
                stream._set_current_event(event)  # RocksDB picks the partition's database from it
                stored[key] = table.get(key)
            if key is not None:
                last_event[key] = event
        started = time.perf_counter()
        result = process_batch(
            self.engine, records, lambda lead_id: stored.get(lead_id.encode()), time.time()
        )
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(records))
        await self._send_all(result)
        for lead_id, state in result.states.items():
            key = lead_id.encode()
            stream._set_current_event(last_event[key])  # the changelog partition follows the source record
            table[key] = state
        self._count(result)

    async def _send_all(self, result: BatchResult) -> None:
        """Send every output of the batch and wait until the broker has all of them; retry until it does."""
        s = self.settings
        backoff = 0.1
        while True:
            try:
                producer = self.app.producer
                pending = [await producer.send(s.topic_decisions, k, v, None, None, None)
                           for k, v in result.decisions]
                pending += [await producer.send(s.topic_opportunities, k, v, None, None, None)
                            for k, v in result.opportunities]
                failed_at = dt.datetime.now(dt.UTC).isoformat()
                for record, error in result.dead_letters:
                    headers = [
                        ("leadflow.reason", error.reason.encode()),
                        ("leadflow.error_class", type(error).__name__.encode()),
                        ("leadflow.error_message", str(error)[:2000].encode()),
                        ("leadflow.source_topic", record.topic.encode()),
                        ("leadflow.source_partition", str(record.partition).encode()),
                        ("leadflow.source_offset", str(record.offset).encode()),
                        ("leadflow.failed_at", failed_at.encode()),
                    ]
                    pending.append(await producer.send(s.topic_dlq, record.key, record.value, None, None, headers))
                await asyncio.gather(*pending)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.send_retries.inc()
                logger.exception("sending a batch's output failed; retrying in %.1fs (nothing is acked)", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    def _count(self, result: BatchResult) -> None:
        m = self.metrics
        for event_type, n in result.events_by_type.items():
            m.events.labels(event_type).inc(n)
        for (status, action), n in result.decisions_by.items():
            m.decisions.labels(m.status_label(status), action).inc(n)
        if result.opportunities:
            m.opportunities.inc(len(result.opportunities))
        for _record, error in result.dead_letters:
            m.dead_letters.labels(error.reason).inc()
        if result.duplicates:
            m.duplicates.inc(result.duplicates)
        for score in result.scores:
            m.score.observe(score)
        now = time.time()
        for ts in result.record_times:
            m.latency.observe(max(0.0, now - ts))


def build_app(settings: Settings, engine: Engine, registry: CollectorRegistry) -> LeadflowApp:
    """The Faust app of one worker, with its agent, table and ``/metrics`` page."""
    s = settings
    app = LeadflowApp(
        s.app_id,
        broker=s.broker_url,
        broker_credentials=_credentials(s),
        store="rocksdb://" if s.store == "rocksdb" else "memory://",
        datadir=str(s.state_dir),
        web_host=s.web_host,
        web_port=s.web_port,
        web_enabled=True,
        autodiscover=False,
        topic_partitions=s.partitions,
        topic_disable_leader=True,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=s.commit_interval,
        broker_session_timeout=s.session_timeout,
        broker_heartbeat_interval=s.heartbeat_interval,
        producer_acks=-1,
        producer_linger=0.002,
        stream_wait_empty=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    app.leadflow_settings = s
    metrics = Metrics(registry)
    metrics.set_versions(engine.ruleset.version, engine.model.version, engine.ruleset.statuses)
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="leadflow_faust")
    handler = BatchHandler(app, s, engine, metrics)

    leads = app.topic(s.topic_leads, partitions=s.partitions, **_RAW)
    handler.table = app.Table(
        "lead-state", default=None, partitions=s.partitions, key_type=bytes, value_type=bytes
    )

    async def process(stream: Any) -> None:
        metrics.up.set(1)
        try:
            async for events in stream.take_events(s.batch_size, within=s.batch_within):
                await handler.handle(stream, events)
        finally:
            metrics.up.set(0)

    app.agent(leads, name="leadflow.process")(process)
    return app


def _credentials(settings: Settings) -> Any:
    if settings.broker_username is None:
        return None
    password = settings.broker_password.get_secret_value() if settings.broker_password else ""
    return faust.SASLCredentials(username=settings.broker_username, password=password)
