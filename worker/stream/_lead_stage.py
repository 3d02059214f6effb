"""The lead step of the Faust shell: batches of lead events decided by the core, sent, stored, then acked.

It calls :func:`worker.batch.process_batch` (or the columnar engine with the same outputs, ``LEADFLOW_ENGINE``),
sends every output and waits for the broker to have them, then writes the states (RocksDB and the changelog); only
then are the messages acked, and Faust commits only acked offsets. So a crash anywhere re-processes events
(at-least-once) and never loses one; deterministic ids make the re-sent outputs harmless to consumers. Decoded
states are cached between batches (:meth:`LeadStage._cache`).

Time that passes: a lead's state holds its wake-up time (when a rule that reads the time may decide otherwise, with
no event; see :mod:`worker.rules._wake`). The stage keeps an index of the wake-up times of its partitions' leads
and, every LEADFLOW_WAKEUP_INTERVAL seconds, :meth:`LeadStage.prepare_due` decides the leads whose time has come
as one more batch of the leads topic (:func:`worker.batch.process_wakeups`), which the transport commits in line
with the event batches: sent, then stored, in order, so that a lead is never decided from a stale state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

from worker.batch import BatchResult, RecordLike, process_wakeups, trim_cache
from worker.columnar import batch_engine
from worker.core import Engine
from worker.lead.state import LeadState, decode_state
from worker.settings import Settings
from worker.stream._forget import forget_opportunity
from worker.stream._outbox import Message, Outbox
from worker.stream._stage import Failure, TableStage
from worker.stream._tables import TableStore, Update
from worker.stream.metrics import Metrics, observe_many

__all__ = ["LeadBatch", "LeadStage"]

logger = logging.getLogger(__name__)


class _Generation(Protocol):
    """What the lead step reads of the Faust app: the consumer generation (a rebalance starts a new one)."""

    @property
    def consumer_generation_id(self) -> int | None: ...


class LeadBatch(NamedTuple):
    """A decided batch of lead events waiting to be committed."""

    result: BatchResult
    states: TableStore
    partition_of: dict[bytes, int]


class LeadStage(TableStage[LeadBatch]):
    """Decides batches of leads messages with the core (``prepare``), then sends and stores the result (``commit``)."""

    source = "leads"

    def __init__(
        self,
        app: _Generation,
        settings: Settings,
        engine: Engine,
        metrics: Metrics,
        outbox: Outbox,
        table: Any = None,
    ) -> None:
        super().__init__(outbox, metrics, {"lead-state": table})
        self.app = app
        self.settings = settings
        self.engine = engine
        self._decide_batch = batch_engine(settings.engine)  # LEADFLOW_ENGINE: the same outputs either way
        self._state_cache: dict[str, LeadState] = {}
        self._cache_generation: int | None = None
        self._wakes: dict[str, tuple[float, int]] = {}
        """Lead id → its wake-up time and partition, for the leads of this worker's partitions that have one."""
        self._wakes_generation: int | None = None
        self._next_sweep = 0.0
        metrics.wakeups_waiting.set_function(lambda: len(self._wakes))

    def decide(self, messages: Sequence[RecordLike]) -> LeadBatch:
        """Decide a batch with the core; a lead's newest state comes from the batches in flight, else the table."""
        states = TableStore(self.tables["lead-state"])
        partition_of: dict[bytes, int] = {}
        for msg in messages:
            if msg.key is not None:
                partition_of[msg.key] = msg.partition
        cache = self._cache() if self.settings.state_cache_size else None
        load_state = self._loader(states, partition_of)
        started = time.perf_counter()
        result = self._decide_batch(
            self.engine, messages, load_state, time.time(), cache, drift_sample=self.settings.drift_sample
        )
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(messages))
        return LeadBatch(result, states, partition_of)

    def _loader(self, states: TableStore, partition_of: dict[bytes, int]) -> Callable[[str], bytes | None]:
        """A lead's newest stored state: from the batches in flight (none if one erased it), else the table."""

        def load_state(lead_id: str) -> bytes | None:
            key = lead_id.encode()
            for pending in reversed(self._inflight):  # erased in a batch still being committed: no state
                if lead_id in pending.result.states:
                    break
                if lead_id in pending.result.erased:
                    return None
            return self.load("lead-state", key, partition_of[key], states)

        return load_state

    def prepare_due(self, now: float) -> LeadBatch | None:
        """A batch of the leads whose wake-up time has come by ``now``, decided again with no event (None when
        there are none): checked at most every LEADFLOW_WAKEUP_INTERVAL seconds, never during a rebalance or a
        table's recovery. Up to LEADFLOW_BATCH_SIZE leads, the longest waiting first; like :meth:`prepare`, the
        batch is in flight until committed, so the next batches read its states."""
        if now < self._next_sweep or not self._settled():  # unsettled: asked again at the next fetch
            return None
        self._next_sweep = now + self.settings.wakeup_interval
        generation = self.app.consumer_generation_id
        if generation != self._wakes_generation:
            self._rescan()
            self._wakes_generation = generation
        wakes = self._wakes
        due = sorted((lead for lead, (wake, _) in wakes.items() if wake <= now), key=lambda lead: wakes[lead][0])
        if not due:
            return None
        due = due[: self.settings.batch_size]
        partition_of = {lead.encode(): wakes[lead][1] for lead in due}
        states = TableStore(self.tables["lead-state"])
        cache = self._cache() if self.settings.state_cache_size else None
        result = process_wakeups(self.engine, due, self._loader(states, partition_of), now, time.time(), cache)
        for lead_id, why in result.wake_failures:
            logger.error(
                "lead %s could not be decided at its wake-up time (it waits for its next event): %s", lead_id, why
            )
            wakes.pop(lead_id, None)
        prepared = LeadBatch(result, states, partition_of)
        if not result.states:  # none was due after all (decided since): only the index to correct
            self._follow_wakes(prepared)
            return None
        self._inflight.append(prepared)
        return prepared

    def _settled(self) -> bool:
        """Whether the partitions are assigned and the tables recovered (the index and the states are whole)."""
        app: Any = self.app
        if getattr(app, "rebalancing", False):
            return False
        tables = getattr(app, "tables", None)
        return tables is None or bool(tables.recovery.completed.is_set())

    def _rescan(self) -> None:
        """After a rebalance: the wake-up times of the leads of the partitions this worker owns now, from the table.

        One pass over the stored states (those with a wake-up time decoded), like the SLA clocks' rescan; from
        then on the index follows every state this stage stores (:meth:`committed`)."""
        wakes: dict[str, tuple[float, int]] = {}
        owned = self._owned()
        for key, value in self.tables["lead-state"].data.items():
            if b'"wake_at":' not in value or b'"wake_at":null' in value:
                continue
            try:
                state = decode_state(value)
            except Exception:  # a state that cannot be read waits for its lead's next event (a dead letter then)
                logger.warning("stored state of lead %r cannot be read; it has no wake-up time", key[:80])
                continue
            wake, source = state.get("wake_at"), state.get("source")
            if wake is not None and source and (owned is None or source[1] in owned):
                wakes[key.decode()] = (wake, source[1])
        self._wakes = wakes
        logger.info("%d leads with a wake-up time on this worker's partitions", len(wakes))

    def _owned(self) -> set[int] | None:
        """The partitions of the leads topic assigned to this worker (None: not known, as in tests without Faust);
        a memory store may still hold the states of partitions it had before."""
        assignor = getattr(self.app, "assignor", None)
        if assignor is None:
            return None
        topic = self.settings.topic_leads
        return {tp.partition for tp in assignor.assigned_actives() if tp.topic == topic}

    def refused(self, failures: Sequence[Failure]) -> LeadBatch:
        return LeadBatch(BatchResult(dead_letters=list(failures)), TableStore(self.tables["lead-state"]), {})

    def outputs(self, prepared: LeadBatch) -> list[Message]:
        s = self.settings
        result = prepared.result
        out = [Message(s.topic_decisions, k, v) for k, v in result.decisions]
        out += [Message(s.topic_opportunities, k, v) for k, v in result.opportunities]
        out += [Message(s.topic_pipeline, k, v) for k, v in result.opportunities]  # for the pipeline's table
        out += [Message(s.topic_routing_decisions, k, v) for k, v in result.routing_decisions]
        out += [Message(s.topic_route_requests, k, v) for k, v in result.route_requests]
        for opportunity_id, position in result.erased_opportunities:  # docs/PRIVACY.md
            out += forget_opportunity(s, opportunity_id, position)
        out += [Message(s.topic_match, k, v) for k, v in result.match_requests]  # duplicates: claims, releases
        # a duplicate's engagement, to its survivor's partition (named by the match step; a forged answer could name
        # one that does not exist, which the broker would refuse for ever: then by the key)
        out += [Message(s.topic_leads, k, v, p if p < s.partitions else None) for p, k, v in result.forwards]
        if result.dead_letters:
            out += self.outbox.dead_letters(result.dead_letters)
        return out

    def writes(self, prepared: LeadBatch) -> Iterable[tuple[TableStore, Sequence[Update]]]:
        """The states, locally and in the changelog, on the partition of the lead's source record; an erased lead's
        state is deleted (a tombstone in the changelog)."""
        partition_of = prepared.partition_of
        updates: list[Update] = [(key, state, partition_of[key]) for key, state in _encoded(prepared.result.states)]
        for lead_id in prepared.result.erased:
            key = lead_id.encode()
            updates.append((key, None, partition_of[key]))
        yield prepared.states, updates

    def written(self, prepared: LeadBatch, table: str, key: bytes) -> bytes | None:
        return prepared.result.states.get(key.decode()) if table == "lead-state" else None

    def failures(self, prepared: LeadBatch) -> Sequence[Failure]:
        return prepared.result.dead_letters

    def committed(self, prepared: LeadBatch) -> None:
        self._follow_wakes(prepared)
        self._count(prepared.result)

    def _follow_wakes(self, prepared: LeadBatch) -> None:
        """Keep the index of wake-up times up to date with the states just stored (and the leads erased)."""
        wakes, partition_of = self._wakes, prepared.partition_of
        result = prepared.result
        for lead_id, wake in result.wakes.items():
            if wake is None:
                wakes.pop(lead_id, None)
            else:
                wakes[lead_id] = (wake, partition_of[lead_id.encode()])
        for lead_id in result.erased:
            wakes.pop(lead_id, None)

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
            if changed:  # every state goes, but those of the batches in flight
                for lead_id in [lead_id for lead_id in cache if lead_id not in keep]:
                    del cache[lead_id]
            else:
                trim_cache(cache, self.settings.state_cache_size, keep)
            self._cache_generation = generation
        return cache

    def _count(self, result: BatchResult) -> None:
        m = self.metrics
        for event_type, n in result.events_by_type.items():
            m.events.labels(event_type).inc(n)
        for (status, action), n in result.decisions_by.items():
            m.decisions.labels(m.status_label(status), action).inc(n)
        for action, n in result.time_decisions.items():
            m.time_decisions.labels(action).inc(n)
        for status, seconds in result.time_in_status:
            m.time_in_status.labels(m.status_label(status)).observe(seconds)
        for stage, n in result.created_by_stage.items():
            m.opportunities.labels(stage).inc(n)
        for (pool, target), n in result.routed.items():
            m.assignments.labels(pool, target).inc(n)
        observe_many(m.time_to_assignment, [max(0.0, time.time() - ts) for ts in result.routed_times])
        if result.duplicates:
            m.duplicates.inc(result.duplicates)
        if result.merged:
            m.leads_merged.inc(result.merged)
        if result.in_block:
            m.in_block.inc(result.in_block)
        for source, n in result.leads_created.items():
            m.leads_created.labels(m.lead_sources(source)).inc(n)
        observe_many(m.score, result.scores)
        for name, n in result.features_observed.items():
            m.feature_observed.labels(name).inc(n)
        for name, n in result.features_missing.items():
            m.feature_missing.labels(name).inc(n)
        for name, n in result.features_unseen.items():
            m.feature_unseen.labels(name).inc(n)
        now = time.time()
        observe_many(m.latency, [max(0.0, now - ts) for ts in result.record_times])


def _encoded(states: dict[str, bytes]) -> Iterator[tuple[bytes, bytes]]:
    for lead_id, state in states.items():
        yield lead_id.encode(), state
