"""The routing steps of the Faust shell: the pool owner, the SLA clock and the feedback forwarder.

Each is a :class:`~worker.stream._stage.TableStage`: it gets its topic's messages a fetch at a time from the
transport (like the lead step), decides them with the pure functions of :mod:`worker.routing.flow` and
:mod:`worker.routing.sla`, then sends every output and waits for the broker, then stores its tables' states
(locally and in their changelogs); only then are the messages acked. A crash re-processes messages
(at-least-once); requests already answered are recognised by their id, so a pointer never advances twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from worker.batch import RecordLike
from worker.core import Engine
from worker.exceptions import EventError
from worker.opportunities import parse_feedback
from worker.routing import Target
from worker.routing.flow import route_batch
from worker.routing.sla import accepted_notice, sla_batch, sla_breaches, sla_pending
from worker.settings import Settings
from worker.stream._forget import forget_opportunity
from worker.stream._outbox import Message, Outbox
from worker.stream._stage import BatchStage, Prepared
from worker.stream._tables import Update
from worker.stream.metrics import Metrics, observe_many

__all__ = ["FeedbackStage", "RouteStage", "SlaStage"]

logger = logging.getLogger(__name__)


_ERASURES_KEPT = 100_000
"""Erasures a pool's worker remembers (the newest), to drop the requests of an erased lead that come after."""


class RouteStage(BatchStage):
    """Owns the pools of its partitions of the route-requests topic: assigns requests in order, exactly once.

    It also forgets erased leads (docs/PRIVACY.md): an ``erased`` notice deletes the opportunity's answers from the
    ``route-done`` table, and the requests of the lead's events before it are dropped, in the batch and after it
    (``erased``: the newest erasures, in memory, bounded).
    """

    source = "route_requests"

    def __init__(
        self,
        settings: Settings,
        outbox: Outbox,
        metrics: Metrics,
        engine: Callable[[], Engine],
        tables: Mapping[str, Any],
    ) -> None:
        super().__init__(outbox, metrics, tables)
        self.settings = settings
        self.metrics = metrics
        self.engine = engine  # the current Engine (it changes on reloads)
        self.erased: dict[str, list[Any]] = {}
        """Opportunity id → where its lead's erasure was read; the oldest go first past ``_ERASURES_KEPT``."""

    def decide(self, messages: Sequence[RecordLike]) -> Prepared:
        s = self.settings
        partition_of = {m.key: m.partition for m in messages if m.key is not None}
        ruleset = self.engine().ruleset

        def load_pool(name: str) -> bytes | None:
            key = name.encode()
            return self.load("pool-state", key, partition_of[key])

        def load_done(request_id: str, pool: str) -> bytes | None:
            return self.load("route-done", f"{request_id}@{pool}".encode(), partition_of[pool.encode()])

        def load_index(opportunity_id: str, partition: int) -> bytes | None:
            return self.load("route-done", opportunity_id.encode(), partition)

        now = time.time()
        fallback = Target("queue", ruleset.conversion.queue)
        out = route_batch(
            ruleset.routing, messages, load_pool, load_done, now, ruleset.version, fallback, load_index, self.erased
        )
        self._remember(out.erasures)
        outputs = [Message(s.topic_opportunities, k, v) for k, v in out.opportunities]
        outputs += [Message(s.topic_pipeline, k, v) for k, v in out.opportunities]  # for the pipeline's table
        outputs += [Message(s.topic_routing_decisions, k, v) for k, v in out.routing_decisions]
        outputs += [Message(s.topic_sla, k, v) for k, v in out.sla_notices]
        outputs += [Message(s.topic_route_requests, k, v) for k, v in out.forwards]
        for opportunity_id, position in out.retracted:  # after its answers' outputs, had they come late
            outputs += forget_opportunity(s, opportunity_id, position, pools=False)
        outputs += self.outbox.dead_letters(out.dead_letters)
        # the answers before the pools' states (tables are stored in this order, each before the next): after a
        # crash between the two, a request whose answer is stored is answered again as before, while a pool that
        # had moved on without the answer would assign the request a second time, to its next member
        done_updates: list[Update] = [
            (f"{r}@{p}".encode(), v, partition_of[p.encode()]) for (r, p), v in out.done.items()
        ]
        done_updates += [(k, None, p) for k, p in out.forgotten]  # an erased lead's answers: tombstones
        done_updates += [(o.encode(), None if i is None else orjson.dumps(i), p) for (o, p), i in out.indexes.items()]
        writes: dict[str, list[Update]] = {
            "route-done": done_updates,
            "pool-state": [(n.encode(), v, partition_of[n.encode()]) for n, v in out.pool_states.items()],
        }

        def done() -> None:
            m = self.metrics
            for (pool, member), n in out.assignments.items():
                m.assignments.labels(pool, member).inc(n)
            for (pool, reason), n in out.skips.items():
                m.routing_skips.labels(pool, reason).inc(n)
            for pool, n in out.overflows.items():
                m.routing_overflows.labels(pool).inc(n)
            for (pool, how), n in out.reassignments.items():
                m.reassignments.labels(pool, how).inc(n)
            if out.replayed:
                m.routing_replayed.inc(out.replayed)
            if out.dropped:
                m.routing_erased.inc(out.dropped)
            for stage, n in out.created.items():
                m.opportunities.labels(stage).inc(n)
            observe_many(m.time_to_assignment, out.waits)

        return Prepared(outputs, writes, done, out.dead_letters)

    def _remember(self, erasures: Mapping[str, list[Any]]) -> None:
        """Remember a batch's erasures at once (the next batch, prepared while this one commits, needs them)."""
        erased = self.erased
        for opportunity_id, position in erasures.items():
            erased.pop(opportunity_id, None)  # (route_batch gave the later of the two)
            erased[opportunity_id] = position
        while len(erased) > _ERASURES_KEPT:
            del erased[next(iter(erased))]


class SlaStage(BatchStage):
    """The SLA clock of its partitions of the SLA topic: notices in, reassignment requests out when time is up."""

    source = "sla"

    def __init__(self, settings: Settings, outbox: Outbox, metrics: Metrics, app: Any, table: Any) -> None:
        super().__init__(outbox, metrics, {"sla-state": table})
        self.settings = settings
        self.metrics = metrics
        self.app = app
        self.clocks: dict[str, dict[str, Any]] = {}  # opportunity id → state, for the running clocks
        self._generation: int | None = None
        self._fired: set[tuple[str, int]] = set()

    def decide(self, messages: Sequence[RecordLike]) -> Prepared:
        partition_of = {m.key: m.partition for m in messages if m.key is not None}

        def load(opportunity_id: str) -> bytes | None:
            key = opportunity_id.encode()
            return self.load("sla-state", key, partition_of[key])

        out, states = sla_batch(messages, load)
        writes: dict[str, list[Update]] = {
            "sla-state": [(k.encode(), v, partition_of[k.encode()]) for k, v in out.states.items()]
        }
        outputs = self.outbox.dead_letters(out.dead_letters)

        def done() -> None:
            for opportunity_id in out.erased - states.keys():
                self.clocks.pop(opportunity_id, None)
            for opportunity_id, state in states.items():
                if sla_pending(state):
                    self.clocks[opportunity_id] = state
                else:
                    self.clocks.pop(opportunity_id, None)
            if out.accepted:
                self.metrics.sla_accepted.inc(out.accepted)

        return Prepared(outputs, writes, done, out.dead_letters)

    def _rescan(self) -> None:
        """After a rebalance: the running clocks of the partitions this worker owns now, from the table."""
        clocks = {}
        for key, value in self.tables["sla-state"].data.items():
            state = orjson.loads(value)
            if sla_pending(state):
                clocks[key.decode()] = state
        self.clocks = clocks
        logger.info("%d SLA clocks running on this worker's partitions", len(clocks))

    async def tick(self) -> None:
        """Reassign (or escalate) every opportunity whose SLA ran out; called every LEADFLOW_SLA_CHECK_INTERVAL."""
        app = self.app
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            return
        generation = app.consumer_generation_id
        if generation != self._generation:
            self._rescan()
            self._generation = generation
        now = time.time()
        due = [
            d for d in sla_breaches(self.clocks, now) if (d[2]["opportunity_id"], d[2]["attempt"]) not in self._fired
        ]
        if not due:
            return
        s = self.settings
        messages = []
        for pool, request, notice in due:
            messages.append(Message(s.topic_route_requests, pool.encode(), orjson.dumps(request)))
            messages.append(Message(s.topic_sla, notice["opportunity_id"].encode(), orjson.dumps(notice)))
        await self.outbox.send(messages)
        for pool, _request, notice in due:
            self._fired.add((notice["opportunity_id"], notice["attempt"]))
            self.metrics.sla_breaches.labels(pool).inc()
            logger.info("SLA breached: opportunity %s, attempt %d", notice["opportunity_id"], notice["attempt"])
        if len(self._fired) > 100_000:
            self._fired = {f for f in self._fired if f[0] in self.clocks}


_FEEDBACK_TYPES = "'opportunity.accepted', 'opportunity.updated' or 'opportunity.closed'"


class FeedbackStage(BatchStage):
    """Forwards ``opportunity.accepted`` feedback to the SLA topic and ``opportunity.updated`` / ``.closed`` to the
    pipeline topic, keyed by opportunity id (no table): the sales side writes with its own keys and partitioner,
    leadflow's producer puts each on the partition of its opportunity's state."""

    source = "feedback"

    def __init__(self, settings: Settings, outbox: Outbox) -> None:
        super().__init__(outbox, outbox.metrics, {})
        self.settings = settings

    def decide(self, messages: Sequence[RecordLike]) -> Prepared:
        outputs: list[Message] = []
        failures: list[tuple[RecordLike, EventError]] = []
        for message in messages:
            try:
                outputs.append(self._forward(message))
            except EventError as exc:
                failures.append((message, exc))
        outputs += self.outbox.dead_letters(failures)
        return Prepared(outputs, {}, None, failures)

    def _forward(self, message: RecordLike) -> Message:
        try:
            key, value = accepted_notice(message.key, message.value)
            return Message(self.settings.topic_sla, key, value)
        except EventError as exc:
            if exc.reason != "unknown_event_type":
                raise
        try:
            event = parse_feedback(message.value)
        except EventError as exc:
            if exc.reason != "unknown_event_type":
                raise
            msg = f"{str(exc).split(';')[0]}; expected {_FEEDBACK_TYPES}"
            raise EventError(msg, reason="unknown_event_type") from None
        return Message(self.settings.topic_pipeline, event.opportunity_id.encode(), message.value or b"")
