"""The pipeline step of the Faust shell: each opportunity's current state, and the pipeline's gauges.

It reads the internal pipeline topic (key = opportunity id), where the worker puts a copy of every opportunity it
sends and the feedback step forwards ``opportunity.updated`` and ``opportunity.closed``: one partition per
opportunity, so its conversion comes before its feedback. It folds them with :func:`worker.opportunities.
pipeline_batch` into the ``pipeline-state`` table (changelogged) and keeps the pipeline's sums, changed by what
each committed batch changed; after a rebalance the sums are computed again from the table, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from worker.batch import RecordLike
from worker.core import Engine
from worker.opportunities import Pipeline, days_to_conversion, pipeline_batch, score_band
from worker.settings import Settings
from worker.stream._outbox import Outbox
from worker.stream._stage import BatchStage, Prepared
from worker.stream._tables import Update
from worker.stream.metrics import Metrics

__all__ = ["PipelineStage"]

logger = logging.getLogger(__name__)

_DAY = 86_400.0


class PipelineStage(BatchStage):
    """Follows the opportunities of its partitions of the pipeline topic, and adds them up."""

    source = "pipeline"

    def __init__(
        self, settings: Settings, outbox: Outbox, metrics: Metrics, app: Any, engine: Callable[[], Engine], table: Any
    ) -> None:
        super().__init__(outbox, metrics, {"pipeline-state": table})
        self.settings = settings
        self.app = app
        self.engine = engine  # the current Engine (its ruleset's stages; it changes on reloads)
        self.pipeline = Pipeline(metrics.lead_sources)
        """The sums over the opportunities of this worker's partitions (what the gauges export)."""
        self._generation: int | None = None

    def decide(self, messages: Sequence[RecordLike]) -> Prepared:
        partition_of = {m.key: m.partition for m in messages if m.key is not None}

        def load(opportunity_id: str) -> bytes | None:
            key = opportunity_id.encode()
            return self.load("pipeline-state", key, partition_of[key])

        out = pipeline_batch(messages, load, self.engine().ruleset.stages)
        writes: dict[str, list[Update]] = {
            "pipeline-state": [(k.encode(), v, partition_of[k.encode()]) for k, v in out.states.items()]
        }

        def done() -> None:
            if not self._rescan_if_moved():  # the table holds this batch: a rescan has counted it already
                for before, after in out.changes:
                    self.pipeline.change(before, after)
            m = self.metrics
            for closing in out.closings:
                m.opportunities_closed.labels(closing.outcome).inc()
                m.opportunities_closed_amount.labels(closing.outcome).inc(closing.amount)
                if closing.seconds_to_close is not None:
                    m.conversion_to_close.labels(closing.outcome).observe(closing.seconds_to_close)
            for state in out.created:
                m.pipeline_converted.labels(m.lead_sources(state["lead_source"]), score_band(state["score"])).inc()
                days = days_to_conversion(state)
                if days is not None:
                    m.lead_to_conversion.observe(days * _DAY)
            if out.replayed:
                m.feedback_replayed.inc(out.replayed)

        return Prepared(self.outbox.dead_letters(out.dead_letters), writes, done, out.dead_letters)

    def _rescan_if_moved(self) -> bool:
        """After a rebalance: the sums of the partitions this worker owns now, from the table (once)."""
        generation = self.app.consumer_generation_id
        if generation == self._generation:
            return False
        pipeline = Pipeline(self.metrics.lead_sources)
        for value in self.tables["pipeline-state"].data.values():
            pipeline.add(orjson.loads(value))
        self.pipeline = pipeline
        self._generation = generation
        logger.info("%d opportunities followed on this worker's partitions", sum(c[0] for c in pipeline.cells.values()))
        return True

    async def tick(self) -> None:
        """Recompute the sums after a rebalance even when no record comes (called every few seconds)."""
        app = self.app
        if self._inflight or app.rebalancing or not app.tables.recovery.completed.is_set():
            return  # a batch in flight recomputes them when committed (its states are stored by then)
        self._rescan_if_moved()
