"""The thin Faust shell: topics, the lead-state table, and the batch handler that feeds the core.

Nothing here decides anything. Faust runs the consumer group, partition assignment, table recovery, offset
commits and the web server. The messages of the leads topic go from Faust's fetch loop to
:class:`BatchHandler` a fetch at a time (see :mod:`worker.stream._transport`): it calls
:func:`worker.core.process_batch`, sends every output and waits for the broker to have them, then writes the
states (RocksDB and the changelog); only then are the messages acked, and Faust commits only acked offsets. So a
crash anywhere re-processes events (at-least-once) and never loses one; deterministic ids make the re-sent
outputs harmless to consumers.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry, Histogram

from worker.artifacts import ArtifactKind
from worker.core import BatchResult, Engine, process_batch
from worker.exceptions import ConfigError, EventError
from worker.lead.state import LeadState
from worker.settings import Settings
from worker.stream._logs import install_repeat_filter
from worker.stream._sender import Message
from worker.stream._stages import FeedbackStage, Outbox, RouteStage, SlaStage, TableStore
from worker.stream._transport import LeadflowTransport
from worker.stream.accounts import AccountFeed
from worker.stream.control import ControlSnapshot, follow_control
from worker.stream.metrics import LATENCY_BUCKETS, Metrics, observe_many
from worker.stream.reload import FileWatch, Reloader

__all__ = ["LeadflowApp", "LeadflowWorker", "build_app"]

logger = logging.getLogger(__name__)


class LeadflowApp(faust.App):
    """A Faust app that uses :class:`LeadflowTransport` and carries leadflow's settings."""

    leadflow_settings: Settings
    leadflow_handler: BatchHandler
    leadflow_handlers: dict[str, Any]  # topic → handler with prepare/commit (see worker.stream._transport)

    def _new_transport(self) -> Any:
        return LeadflowTransport(self.conf.broker_consumer, self)


class LeadflowWorker(faust.Worker):
    """Faust's worker, whose log holds back repeated Kafka client errors (see :mod:`worker.stream._logs`)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        install_repeat_filter(logger)


class Prepared(NamedTuple):
    """A decided batch waiting to be committed."""

    result: BatchResult
    states: TableStore
    partition_of: dict[bytes, int]


class BatchHandler:
    """Decides batches of leads messages with the core (``prepare``), then sends and stores the result (``commit``)."""

    def __init__(self, app: LeadflowApp, settings: Settings, engine: Engine, metrics: Metrics, outbox: Outbox) -> None:
        self.app = app
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.outbox = outbox
        self.table: Any = None
        self._state_cache: dict[str, LeadState] = {}
        self._cache_generation: int | None = None
        self._inflight: list[Prepared] = []

    def prepare(self, messages: Sequence[Any]) -> Prepared:
        """Decide a batch (CPU only, nothing is sent or stored yet).

        Batches are prepared and committed in the same order; the next batch may be prepared while the previous
        one is being committed, since its leads' states are in the cache until they are stored.
        """
        states = TableStore(self.table)
        partition_of: dict[bytes, int] = {}
        for msg in messages:
            if msg.key is not None:
                partition_of[msg.key] = msg.partition
        cache = self._cache() if self.settings.state_cache_size else None

        inflight = list(reversed(self._inflight))

        def load_state(lead_id: str) -> bytes | None:
            # the newest state: a batch still being committed has not stored its states yet
            for pending in inflight:
                stored = pending.result.states.get(lead_id)
                if stored is not None:
                    return stored
            key = lead_id.encode()
            return states.get(key, partition_of[key])

        started = time.perf_counter()
        result = process_batch(
            self.engine, messages, load_state, time.time(), cache, drift_sample=self.settings.drift_sample
        )
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(messages))
        prepared = Prepared(result, states, partition_of)
        self._inflight.append(prepared)
        return prepared

    def refuse(self, messages: Sequence[Any], error: EventError) -> Prepared:
        """Messages that cannot be decided at all, as dead letters (committed like any prepared batch)."""
        prepared = Prepared(BatchResult(dead_letters=[(m, error) for m in messages]), TableStore(self.table), {})
        self._inflight.append(prepared)
        return prepared

    async def commit(self, prepared: Prepared, before: Awaitable[None] | None = None) -> None:
        """Send a prepared batch's outputs, then store its states; when this returns, its messages may be acked.

        ``before`` is the commit of the batch before, if still running: this batch's outputs go out meanwhile,
        its states are stored only after that batch's, so that a lead's newest state is stored last.
        """
        result, states, partition_of = prepared.result, prepared.states, prepared.partition_of
        try:
            # 1. outputs first: a crash after this re-processes the events and re-sends the same ids
            await self.outbox.send(self._outputs(result))
            if before is not None:
                await before
            # 2. then the state: locally, and in the changelog on the partition of the lead's source record
            updates = [(key, state, partition_of[key]) for key, state in _encoded(result.states)]
            await states.write(self.outbox, updates)
        finally:
            self._inflight.remove(prepared)
        try:
            self._count(result)
        except Exception:  # metrics are not worth the stream: the batch is sent and stored
            logger.exception("counting a committed batch failed")

    def _cache(self) -> dict[str, LeadState]:
        """Decoded lead states as stored (or about to be), valid while the partition assignment stays the same.

        A rebalance may hand a lead to another worker and back, so the cache starts afresh in every consumer
        generation; it is also bounded (oldest entries go first). The states of batches still being committed
        are never dropped: the store does not have them yet.
        """
        cache = self._state_cache
        generation = self.app.consumer_generation_id
        changed = generation != self._cache_generation
        if changed or len(cache) > self.settings.state_cache_size:
            keep = {lead_id for p in self._inflight for lead_id in p.result.states}
            drop = list(cache) if changed else list(itertools.islice(cache, len(cache) // 2))
            for lead_id in drop:
                if lead_id not in keep:
                    del cache[lead_id]
            self._cache_generation = generation
        return cache

    def _outputs(self, result: BatchResult) -> list[Message]:
        s = self.settings
        out = [Message(s.topic_decisions, k, v) for k, v in result.decisions]
        out += [Message(s.topic_opportunities, k, v) for k, v in result.opportunities]
        out += [Message(s.topic_routing_decisions, k, v) for k, v in result.routing_decisions]
        out += [Message(s.topic_route_requests, k, v) for k, v in result.route_requests]
        if result.dead_letters:
            out += self.outbox.dead_letters(result.dead_letters)
        return out

    def _count(self, result: BatchResult) -> None:
        m = self.metrics
        for event_type, n in result.events_by_type.items():
            m.events.labels(event_type).inc(n)
        for (status, action), n in result.decisions_by.items():
            m.decisions.labels(m.status_label(status), action).inc(n)
        if result.opportunities:
            m.opportunities.inc(len(result.opportunities))
        for (pool, target), n in result.routed.items():
            m.assignments.labels(pool, target).inc(n)
        observe_many(m.time_to_assignment, [max(0.0, time.time() - ts) for ts in result.routed_times])
        m.count_dead_letters("leads", (error.reason for _, error in result.dead_letters))
        if result.duplicates:
            m.duplicates.inc(result.duplicates)
        observe_many(m.score, result.scores)
        for name, n in result.features_observed.items():
            m.feature_observed.labels(name).inc(n)
        for name, n in result.features_missing.items():
            m.feature_missing.labels(name).inc(n)
        for name, n in result.features_unseen.items():
            m.feature_unseen.labels(name).inc(n)
        now = time.time()
        observe_many(m.latency, [max(0.0, now - ts) for ts in result.record_times])


def build_app(
    settings: Settings,
    engine: Engine,
    registry: CollectorRegistry,
    control: ControlSnapshot | None = None,
    accounts: AccountFeed | None = None,
) -> LeadflowApp:
    """The Faust app of one worker, with its agents, tables, ``/metrics`` page and ruleset reloads.

    ``control`` is what the control topic held at start-up (see :func:`worker.stream.runner.run_worker`): the worker
    follows the topic from there. Without it the control topic is not followed. ``accounts``, loaded at start-up,
    is followed likewise; its index is the engine's ``accounts``.
    """
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
        producer_compression_type=s.compression_type,
        stream_wait_empty=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    app.leadflow_settings = s
    metrics = Metrics(registry)
    metrics.set_versions(engine.ruleset.version, engine.model.version, engine.ruleset.statuses)
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="leadflow_faust")
    _faust_latencies_in_seconds(app.monitor, registry)
    _track_end_offsets_on_change(app.monitor)
    outbox = Outbox(s, metrics)
    handler = BatchHandler(app, s, engine, metrics, outbox)
    app.leadflow_handler = handler

    def table(name: str) -> Any:
        return app.Table(name, default=None, partitions=s.partitions, key_type=bytes, value_type=bytes)

    handler.table = table("lead-state")
    route_tables = {"pool-state": table("pool-state"), "route-done": table("route-done")}
    route = RouteStage(s, outbox, metrics, lambda: handler.engine, route_tables)
    sla = SlaStage(s, outbox, metrics, app, table("sla-state"))
    app.leadflow_handlers = {
        s.topic_leads: handler,
        s.topic_route_requests: route,
        s.topic_sla: sla,
        s.topic_feedback: FeedbackStage(s, outbox),
    }
    # One agent per topic subscribes it and holds the producer open; the messages themselves go from the consumer
    # straight to the handlers in batches (see worker.stream._transport), not through the agents' streams.
    for topic_name, role in (
        (s.topic_leads, "process"),
        (s.topic_route_requests, "route"),
        (s.topic_sla, "sla"),
        (s.topic_feedback, "feedback"),
    ):
        _subscribe(app, topic_name, role, outbox, metrics if role == "process" else None)
    app.timer(s.sla_check_interval, name="leadflow.sla_clock")(sla.tick)
    if accounts is not None:
        accounts.on_refused = lambda reason: metrics.count_refused("accounts", reason)
        metrics.accounts_known.set_function(lambda: len(accounts.index))
        app.task(accounts.follow)
    _reloads(app, s, Reloader(handler, metrics), control)
    return app


def _subscribe(app: LeadflowApp, topic_name: str, role: str, outbox: Outbox, metrics: Metrics | None) -> None:
    topic = app.topic(
        topic_name,
        partitions=app.leadflow_settings.partitions,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def agent(stream: Any) -> None:
        await outbox.start()
        if metrics is not None:
            metrics.up.set(1)
        try:
            async for _event in stream:
                logger.warning(
                    "an event of %r reached an agent's stream; the batch path should have taken it", topic_name
                )
        finally:
            if metrics is not None:
                metrics.up.set(0)
            await outbox.stop()

    app.agent(topic, name=f"leadflow.{role}")(agent)


def _reloads(app: LeadflowApp, settings: Settings, reloader: Reloader, control: ControlSnapshot | None) -> None:
    """Watch the rules and model files and follow the control topic, offering what changes to the reloader."""
    files: list[tuple[ArtifactKind, Path | None]] = [("ruleset", settings.rules), ("model", settings.model)]
    for kind, path in files:
        if path is not None and settings.reload_interval > 0:
            _watch_file(app, settings.reload_interval, reloader, kind, path)
    if control is not None:
        start = control.next_offsets

        async def follow() -> None:
            await follow_control(settings, start, reloader.offer_record)

        app.task(follow)


def _watch_file(app: LeadflowApp, interval: float, reloader: Reloader, kind: ArtifactKind, path: Path) -> None:
    watch = FileWatch(path)

    async def check_file() -> None:
        try:
            text = watch.changed()
        except ConfigError as exc:
            reloader.refuse(kind, "file", str(exc))
            return
        if text is not None:
            reloader.offer(kind, text, str(path), "file")

    app.timer(interval, name=f"leadflow.{kind}_file")(check_file)


class _Milliseconds:
    """Takes Faust's latencies in milliseconds and observes them in seconds on a histogram named in seconds."""

    __slots__ = ("histogram",)

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram

    def observe(self, milliseconds: float) -> None:
        self.histogram.observe(milliseconds / 1000)

    def labels(self, *values: str, **labels: str) -> _Milliseconds:
        return _Milliseconds(self.histogram.labels(*values, **labels))


def _faust_latencies_in_seconds(monitor: Any, registry: CollectorRegistry) -> None:
    """Faust's Prometheus monitor observes its latencies in milliseconds, one of them named ``_ms``; Prometheus
    practice (and ``promtool check metrics``) wants base units. Each such histogram is replaced by one named
    ``..._seconds`` that receives the same observations divided by 1,000."""
    metrics = monitor._metrics  # Faust keeps its metrics in a NamedTuple on the monitor
    replaced = {}
    for field, metric in zip(metrics._fields, metrics, strict=True):
        if not isinstance(metric, Histogram) or "in ms" not in metric._documentation:
            continue
        registry.unregister(metric)
        name = metric._name.removesuffix("_ms") + "_seconds"
        help_text = metric._documentation.replace("in ms", "in seconds")
        seconds = Histogram(name, help_text, metric._labelnames, registry=registry, buckets=LATENCY_BUCKETS)
        replaced[field] = _Milliseconds(seconds)
    monitor._metrics = metrics._replace(**replaced)


def _track_end_offsets_on_change(monitor: Any) -> None:
    """Faust's Prometheus monitor sets a labelled gauge for every message it fetches; the end offset it sets
    changes once per fetch at most, so skip the calls that would set the same value again."""
    track = monitor.track_tp_end_offset
    last: dict[Any, int] = {}

    def track_on_change(tp: Any, offset: int) -> None:
        if last.get(tp) != offset:
            last[tp] = offset
            track(tp, offset)

    monitor.track_tp_end_offset = track_on_change


def _encoded(states: dict[str, bytes]) -> Iterator[tuple[bytes, bytes]]:
    for lead_id, state in states.items():
        yield lead_id.encode(), state


def _credentials(settings: Settings) -> Any:
    if settings.broker_username is None:
        return None
    password = settings.broker_password.get_secret_value() if settings.broker_password else ""
    return faust.SASLCredentials(username=settings.broker_username, password=password)
