"""The thin Faust shell: the app, its topics and tables, and the steps that feed the core.

Nothing here decides anything. Faust runs the consumer group, partition assignment, table recovery, offset
commits and the web server. The messages of each of leadflow's topics go from Faust's fetch loop to its step a
fetch at a time (see :mod:`worker.stream._transport`); every step is a :class:`~worker.stream._stage.Stage`
(:mod:`._lead_stage` for the leads, :mod:`._route_stages` for routing, the SLA clock and feedback,
:mod:`._pipeline_stage` for the opportunities' states and the pipeline, :mod:`._match_stage` for duplicates): it
decides a batch with the pure core, sends every output and waits for the broker, then stores its states; only then
are the messages acked, and Faust commits only acked offsets.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry, Histogram

from worker.artifacts import ArtifactKind
from worker.core import Engine
from worker.exceptions import ConfigError
from worker.settings import Settings
from worker.stream._health import add_health_pages
from worker.stream._lead_stage import LeadStage
from worker.stream._logs import install_repeat_filter
from worker.stream._match_stage import MatchStage
from worker.stream._outbox import Outbox
from worker.stream._pipeline_stage import PipelineStage
from worker.stream._route_stages import FeedbackStage, RouteStage, SlaStage
from worker.stream._stage import Stage
from worker.stream._transport import LeadflowTransport
from worker.stream.accounts import AccountFeed
from worker.stream.control import ControlSnapshot, follow_control
from worker.stream.metrics import LATENCY_BUCKETS, Metrics, PartitionState
from worker.stream.reload import FileWatch, Reloader

__all__ = ["LeadflowApp", "LeadflowWorker", "build_app"]

logger = logging.getLogger(__name__)


class LeadflowApp(faust.App):
    """A Faust app that uses :class:`LeadflowTransport` and carries leadflow's settings."""

    leadflow_settings: Settings
    leadflow_handler: LeadStage
    leadflow_handlers: dict[str, Stage[Any]]  # topic → its step (see worker.stream._transport)

    def _new_transport(self) -> Any:
        return LeadflowTransport(self.conf.broker_consumer, self)

    def partition_states(self, topics: Collection[str]) -> list[PartitionState]:
        """The partitions of ``topics`` assigned to this worker, read from memory (see ``_Consumer``)."""
        consumer: Any = self.consumer  # LeadflowTransport's
        states: list[PartitionState] = consumer.partition_states(topics)
        return states


class LeadflowWorker(faust.Worker):
    """Faust's worker, whose log holds back repeated Kafka client errors (see :mod:`worker.stream._logs`)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        install_repeat_filter(logger)


def build_app(
    settings: Settings,
    engine: Engine,
    registry: CollectorRegistry,
    control: ControlSnapshot | None = None,
    accounts: AccountFeed | None = None,
) -> LeadflowApp:
    """The Faust app of one worker, with its agents, tables, ``/metrics``, ``/healthz`` and ``/ready`` pages and
    ruleset reloads.

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

    def table(name: str) -> Any:
        return app.Table(name, default=None, partitions=s.partitions, key_type=bytes, value_type=bytes)

    handler = LeadStage(app, s, engine, metrics, outbox, table("lead-state"))
    app.leadflow_handler = handler
    route_tables = {"pool-state": table("pool-state"), "route-done": table("route-done")}
    route = RouteStage(s, outbox, metrics, lambda: handler.engine, route_tables)
    sla = SlaStage(s, outbox, metrics, app, table("sla-state"))
    pipeline = PipelineStage(s, outbox, metrics, app, lambda: handler.engine, table("pipeline-state"))
    app.leadflow_handlers = {
        s.topic_leads: handler,
        s.topic_route_requests: route,
        s.topic_sla: sla,
        s.topic_feedback: FeedbackStage(s, outbox),
        s.topic_pipeline: pipeline,
        s.topic_match: MatchStage(s, outbox, metrics, table("match-keys")),
    }
    # One agent per topic subscribes it and holds the producer open; the messages themselves go from the consumer
    # straight to the handlers in batches (see worker.stream._transport), not through the agents' streams.
    for topic_name, role in (
        (s.topic_leads, "process"),
        (s.topic_route_requests, "route"),
        (s.topic_sla, "sla"),
        (s.topic_feedback, "feedback"),
        (s.topic_pipeline, "pipeline"),
        (s.topic_match, "match"),
    ):
        _subscribe(app, topic_name, role, outbox, metrics if role == "process" else None)
    topics = frozenset(app.leadflow_handlers)
    metrics.watch_partitions(lambda: app.partition_states(topics))
    add_health_pages(app, topics)
    app.timer(s.sla_check_interval, name="leadflow.sla_clock")(sla.tick)
    metrics.watch_pipeline(lambda: pipeline.pipeline)
    app.timer(s.sla_check_interval, name="leadflow.pipeline_sums")(pipeline.tick)
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


def _credentials(settings: Settings) -> Any:
    """Faust's credentials for the security settings (faust passes them on to aiokafka), None for PLAINTEXT."""
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(settings.ssl_context())
    return faust.SASLCredentials(  # SASL_SSL when given a context
        username=settings.broker_username,
        password=settings.broker_secret(),
        ssl_context=settings.ssl_context(),
        mechanism=settings.broker_sasl_mechanism or "PLAIN",
    )
