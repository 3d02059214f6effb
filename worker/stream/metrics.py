"""Every metric leadflow exports, registered on a registry that is passed in (never the global one).

Label values are bounded: event types and actions are fixed sets, statuses come from the ruleset (others are
reported as ``other``), dead-letter reasons are a fixed set, features are the model's feature names. No personal
data ever goes into a label.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal, NamedTuple

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from worker.exceptions import DeadLetterReason
from worker.opportunities import Pipeline, SourceLabels

__all__ = [
    "LATENCY_BUCKETS",
    "Metrics",
    "PartitionState",
    "PartitionsCollector",
    "PipelineCollector",
    "Source",
    "consumer_lag",
    "observe_many",
    "unprocessed_age",
]

Source = Literal["leads", "feedback", "route_requests", "sla", "pipeline", "match", "accounts", "control"]
"""Where a refused record came from: the ``source`` label of ``leadflow_records_refused_total``."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SCORE_BUCKETS = tuple(i / 10 for i in range(1, 11))
_DAY = 86_400.0
DAYS_BUCKETS = tuple(d * _DAY for d in (1 / 24, 1, 2, 3, 7, 14, 30, 60, 90, 180, 365))
"""Buckets of the lead-to-conversion and conversion-to-close histograms: an hour to a year, in seconds."""


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every value, with one update per bucket instead of one per value.

    A batch observes hundreds of latencies and scores; this keeps the metrics off the per-event path. It uses the
    histogram's own bucket values, as ``Histogram.observe`` does (prometheus_client keeps them per bucket, not
    cumulated), and is checked against ``observe`` by a test.
    """
    if not values:
        return
    bounds = histogram._upper_bounds
    for index, n in Tally(bisect.bisect_left(bounds, v) for v in values).items():
        histogram._buckets[index].inc(n)
    histogram._sum.inc(sum(values))


class PartitionState(NamedTuple):
    """What the worker knows of one partition assigned to it, read from memory (no broker round trip)."""

    topic: str
    partition: int
    highwater: int | None
    """The offset after the partition's last record, as the last Fetch response said; None before the first one."""
    committed: int | None
    """The consumer group's committed offset (the next record to read); None when none is known (Faust keeps a
    committed 0 as None too)."""
    oldest_unprocessed: float | None
    """The record timestamp (epoch seconds) of the first record read from the partition and not yet processed, or
    None when the worker holds none."""


def consumer_lag(highwater: int, committed: int | None) -> int:
    """Records of a partition past its committed offset: the high watermark minus the committed offset (from 0 when
    nothing is committed), never below 0."""
    return max(highwater - (committed or 0), 0)


def unprocessed_age(now: float, oldest_unprocessed: float | None) -> float:
    """Seconds the first unprocessed record has waited since its record timestamp; 0 when none is in hand (and for
    a timestamp in the future: producers' clocks)."""
    if oldest_unprocessed is None:
        return 0.0
    return max(now - oldest_unprocessed, 0.0)


LAG_HELP = (
    "Records of a partition assigned to this worker not yet committed by its consumer group: the high watermark "
    "of the last Fetch response minus the committed offset (commits follow processing by up to "
    "LEADFLOW_COMMIT_INTERVAL); a partition appears once a Fetch has reported its high watermark"
)
AGE_HELP = (
    "Seconds since the record timestamp of the first record the worker has read from the partition and not yet "
    "processed (outputs sent and states stored); 0 when it holds none. Records still on the broker are not seen: "
    "exact while the worker holds a record of the partition, else 0 (lag counts the rest)"
)


class PartitionsCollector(Collector):
    """``leadflow_consumer_lag_records`` and ``leadflow_oldest_unprocessed_seconds`` for every partition that
    ``read`` reports, computed when scraped from what the consumer holds in memory: no broker round trip. A
    partition revoked is no longer reported, so its samples disappear."""

    def __init__(self, read: Callable[[], Iterable[PartitionState]], clock: Callable[[], float] = time.time) -> None:
        self.read = read
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily("leadflow_consumer_lag_records", LAG_HELP, labels=["topic", "partition"])
        age = GaugeMetricFamily("leadflow_oldest_unprocessed_seconds", AGE_HELP, labels=["topic", "partition"])
        now = self.clock()
        for state in sorted(self.read(), key=lambda s: (s.topic, s.partition)):
            labels = [state.topic, str(state.partition)]
            if state.highwater is not None:
                lag.add_metric(labels, consumer_lag(state.highwater, state.committed))
            age.add_metric(labels, unprocessed_age(now, state.oldest_unprocessed))
        yield lag
        yield age

    def describe(self) -> Iterator[GaugeMetricFamily]:  # names only: registering must not read the consumer
        yield GaugeMetricFamily("leadflow_consumer_lag_records", LAG_HELP, labels=["topic", "partition"])
        yield GaugeMetricFamily("leadflow_oldest_unprocessed_seconds", AGE_HELP, labels=["topic", "partition"])


_PIPELINE = (
    (
        "leadflow_pipeline_opportunities",
        "Opportunities on this worker's partitions, by stage, forecast category and close month",
    ),
    ("leadflow_pipeline_amount", "Sum of their amounts, by stage, forecast category and close month"),
    (
        "leadflow_pipeline_expected_revenue",
        "Sum of amount x probability / 100, by stage, forecast category and close month",
    ),
)
_PIPELINE_LABELS = ["stage", "forecast_category", "close_month"]
_OUTCOMES_HELP = (
    "Opportunities on this worker's partitions by lead source (the first 50 seen, then 'other'), score band at "
    "conversion and outcome (open, won, lost)"
)
_OUTCOMES_LABELS = ["lead_source", "score_band", "outcome"]


class PipelineCollector(Collector):
    """The pipeline gauges, from the sums the pipeline step keeps (changed an opportunity at a time, never by a
    scan when scraped). Each opportunity lives on one worker's partition, so ``sum`` across workers is the whole
    pipeline."""

    def __init__(self, read: Callable[[], Pipeline]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = [GaugeMetricFamily(name, text, labels=_PIPELINE_LABELS) for name, text in _PIPELINE]
        outcomes = GaugeMetricFamily("leadflow_pipeline_outcomes", _OUTCOMES_HELP, labels=_OUTCOMES_LABELS)
        pipeline = self.read()
        for cell, sums in sorted(pipeline.cells.items()):
            for family, value in zip(families, sums, strict=True):
                family.add_metric(list(cell), value)
        for key, count in sorted(pipeline.outcomes.items()):
            outcomes.add_metric(list(key), count)
        yield from families
        yield outcomes

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name, text in _PIPELINE:
            yield GaugeMetricFamily(name, text, labels=_PIPELINE_LABELS)
        yield GaugeMetricFamily("leadflow_pipeline_outcomes", _OUTCOMES_HELP, labels=_OUTCOMES_LABELS)


class Metrics:
    """The ``leadflow_`` metrics of one worker, and the process's CPU, memory and Python version."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "leadflow_events_consumed_total",
            "Lead events consumed, by event type",
            ["event_type"],
            registry=registry,
        )
        self.decisions = Counter(
            "leadflow_decisions_total",
            "Decisions emitted, by resulting status and action",
            ["status", "action"],
            registry=registry,
        )
        self.time_decisions = Counter(
            "leadflow_time_decisions_total",
            "Decisions that time triggered (a lead's wake-up time came, with no event), by action; also counted in"
            " leadflow_decisions_total",
            ["action"],
            registry=registry,
        )
        self.time_in_status = Histogram(
            "leadflow_time_in_status_seconds",
            "Time a lead spent in a status, observed when it leaves it (by an event or by time)",
            ["status"],
            registry=registry,
            buckets=DAYS_BUCKETS,
        )
        self.wakeups_waiting = Gauge(
            "leadflow_wakeups_waiting",
            "Leads of this worker's partitions with a wake-up time (decided again when it comes, with no event)",
            registry=registry,
        )
        self.opportunities = Counter(
            "leadflow_opportunities_created_total",
            "Opportunities created by conversion, by stage (counted when sent: at once, or when assigned by a pool)",
            ["stage"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "leadflow_dead_letters_total",
            "Records sent to the dead-letter topic, by reason",
            ["reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "leadflow_duplicate_events_total",
            "Events whose event_id was already applied (replays)",
            registry=registry,
        )
        self.in_block = Counter(
            "leadflow_events_in_block_total",
            "Lead events the columnar engine decided in one block per batch (the rest: one by one)",
            registry=registry,
        )
        self.leads_merged = Counter(
            "leadflow_leads_merged_total",
            "Leads found to be a duplicate of another lead (duplicates: section), each counted once",
            registry=registry,
        )
        self.match_claims = Counter(
            "leadflow_match_claims_total",
            "Claims of match keys answered by the match step: survivor (first to claim) or duplicate",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "leadflow_event_latency_seconds",
            "From the record's timestamp to its decision being sent",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "leadflow_batch_processing_seconds",
            "Time the core spends on one batch",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "leadflow_batch_events",
            "Events per batch",
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000),
            registry=registry,
        )
        self.score = Histogram(
            "leadflow_score",
            "Distribution of model scores (probability)",
            buckets=_SCORE_BUCKETS,
            registry=registry,
        )
        self.feature_observed = Counter(
            "leadflow_feature_observed_total",
            "Sampled events whose features were checked (1 in LEADFLOW_DRIFT_SAMPLE), by model feature",
            ["feature"],
            registry=registry,
        )
        self.feature_missing = Counter(
            "leadflow_feature_missing_total",
            "Sampled events where the feature's value was missing, by model feature",
            ["feature"],
            registry=registry,
        )
        self.feature_unseen = Counter(
            "leadflow_feature_unseen_total",
            "Sampled events with a value the model never saw in training (a text outside its levels, a number "
            "outside the training range), by model feature",
            ["feature"],
            registry=registry,
        )
        self.send_retries = Counter(
            "leadflow_send_retries_total",
            "Batches whose output had to be sent again after a producer error",
            registry=registry,
        )
        self.ruleset = Info("leadflow_ruleset", "The ruleset in force", registry=registry)
        self.reloads = Counter(
            "leadflow_reloads_total",
            "Rulesets and models offered to the running worker: what (kind), where from (origin), what happened",
            ["kind", "origin", "result"],
            registry=registry,
        )
        self.model = Info("leadflow_model", "The model in force", registry=registry)
        self.assignments = Counter(
            "leadflow_routing_assignments_total",
            "Opportunities assigned, by pool ('' when a rule, territory, account or default named the target) and "
            "member (or 'user:ID' / 'queue:NAME' for a target outside a pool)",
            ["pool", "member"],
            registry=registry,
        )
        self.routing_skips = Counter(
            "leadflow_routing_skips_total",
            "Pool members passed over for an assignment, by pool and reason (switched_off, out_of_office, "
            "outside_working_hours, over_daily_cap, over_window_cap, already_tried)",
            ["pool", "reason"],
            registry=registry,
        )
        self.routing_overflows = Counter(
            "leadflow_routing_overflows_total",
            "Assignments that went to a pool's overflow target because every member was skipped",
            ["pool"],
            registry=registry,
        )
        self.reassignments = Counter(
            "leadflow_routing_reassignments_total",
            "Opportunities routed again after an SLA breach, by pool and how (next_member, overflow, escalated)",
            ["pool", "how"],
            registry=registry,
        )
        self.routing_replayed = Counter(
            "leadflow_routing_replayed_requests_total",
            "Routing requests seen again (after a restart or rebalance) and answered as before, advancing nothing",
            registry=registry,
        )
        self.routing_erased = Counter(
            "leadflow_routing_erased_requests_total",
            "Routing requests of leads erased since they were sent, dropped by the pool's owner: never assigned",
            registry=registry,
        )
        self.time_to_assignment = Histogram(
            "leadflow_time_to_assignment_seconds",
            "From the lead event that converted the lead to its opportunity's first assignment",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.sla_breaches = Counter(
            "leadflow_sla_breaches_total",
            "Opportunities not accepted within their pool's SLA",
            ["pool"],
            registry=registry,
        )
        self.sla_accepted = Counter(
            "leadflow_sla_accepted_total", "'opportunity.accepted' feedback events applied", registry=registry
        )
        self.accounts_known = Gauge(
            "leadflow_accounts_known", "Accounts in the worker's index (from the accounts topic)", registry=registry
        )
        self.refused = Counter(
            "leadflow_records_refused_total",
            "Input records refused, by source (leads, feedback, route_requests, sla, pipeline, accounts, control) and"
            " reason; those of the first five also go to the dead-letter topic",
            ["source", "reason"],
            registry=registry,
        )
        self.lead_sources = SourceLabels()
        """Lead sources as bounded label values, the same for every metric of this worker."""
        self.leads_created = Counter(
            "leadflow_leads_created_total",
            "Leads seen for the first time, by lead source (the first 50 seen by a worker, then 'other')",
            ["lead_source"],
            registry=registry,
        )
        self.pipeline_converted = Counter(
            "leadflow_pipeline_converted_total",
            "Opportunities that entered the pipeline, by lead source and score band at conversion",
            ["lead_source", "score_band"],
            registry=registry,
        )
        self.opportunities_closed = Counter(
            "leadflow_opportunities_closed_total",
            "Opportunities closed (opportunity.closed, or an update to a closed stage), by outcome (won, lost)",
            ["outcome"],
            registry=registry,
        )
        self.opportunities_closed_amount = Counter(
            "leadflow_opportunities_closed_amount_total",
            "Sum of the amounts of the opportunities closed, by outcome (won, lost)",
            ["outcome"],
            registry=registry,
        )
        self.feedback_replayed = Counter(
            "leadflow_opportunity_feedback_replayed_total",
            "Opportunity records and feedback events already applied (redelivered, or an event id sent again): "
            "counted once",
            registry=registry,
        )
        self.lead_to_conversion = Histogram(
            "leadflow_lead_to_conversion_seconds",
            "Time from a lead's first event to its conversion, observed when its opportunity is first followed",
            registry=registry,
            buckets=DAYS_BUCKETS,
        )
        self.conversion_to_close = Histogram(
            "leadflow_conversion_to_close_seconds",
            "Time from an opportunity's conversion to its closing (won or lost)",
            ["outcome"],
            registry=registry,
            buckets=DAYS_BUCKETS,
        )
        self.up = Gauge("leadflow_worker_up", "1 while the worker processes events", registry=registry)
        # process_cpu_seconds_total, process_resident_memory_bytes, open fds... (Linux /proc) and python_info
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self._statuses: frozenset[str] = frozenset()

    def watch_partitions(self, read: Callable[[], Iterable[PartitionState]]) -> None:
        """Export the consumer lag and the oldest unprocessed record's age of the partitions ``read`` reports."""
        self.registry.register(PartitionsCollector(read))

    def watch_pipeline(self, read: Callable[[], Pipeline]) -> None:
        """Export the pipeline gauges from the sums ``read`` returns (see :class:`PipelineCollector`)."""
        self.registry.register(PipelineCollector(read))

    def set_versions(self, ruleset_version: str, model_version: str, statuses: Iterable[str]) -> None:
        self.ruleset.info({"version": ruleset_version})
        self.model.info({"version": model_version})
        self._statuses = frozenset(statuses)

    def count_dead_letters(self, source: Source, reasons: Iterable[DeadLetterReason]) -> None:
        """Count records of ``source`` sent to the dead-letter topic, one reason each."""
        for reason in reasons:
            self.dead_letters.labels(reason).inc()
            self.refused.labels(source, reason).inc()

    def count_refused(self, source: Source, reason: DeadLetterReason) -> None:
        """Count a record of a topic read whole by every worker (accounts, control): refused, not dead-lettered."""
        self.refused.labels(source, reason).inc()

    def status_label(self, status: str) -> str:
        """A bounded label value for a status: the ruleset's statuses, else ``other``."""
        return status if status in self._statuses else "other"
