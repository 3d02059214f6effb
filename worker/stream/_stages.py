"""The routing stages of the Faust shell: the pool owner, the SLA clock and the feedback forwarder.

Each stage gets its topic's messages a fetch at a time from the transport (like the leads handler), decides them
with the pure functions of :mod:`worker.routing.flow`, then sends every output and waits for the broker, then stores
its tables' states (locally and in their changelogs); only then are the messages acked. A crash re-processes
messages (at-least-once); requests already answered are recognised by their id, so a pointer never advances twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import orjson
import rocksdict
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from faust.streams import _current_event  # the context variable Faust's stores read
from faust.types import TP

from worker.exceptions import EventError
from worker.routing import Target
from worker.routing.flow import route_batch
from worker.routing.sla import accepted_notice, sla_batch, sla_breaches, sla_pending
from worker.settings import Settings
from worker.stream._sender import BatchSender, Message
from worker.stream.metrics import Metrics, Source, observe_many

__all__ = ["FeedbackStage", "Outbox", "RouteStage", "SlaStage", "TableStore"]

logger = logging.getLogger(__name__)

_MAX_BACKOFF = 10.0
_LARGE_VALUE = 64 * 1024


class Outbox:
    """The worker's producers: sends lists of messages and retries until the broker has them all.

    Two lanes, each its own producer and connection: ``outputs`` (decisions, opportunities, routing, dead
    letters) and ``changelog`` (the tables' state). A producer has one request in flight per broker, so with one
    lane a batch's states could wait behind outputs handed over meanwhile (another stage's, or the next batch's
    with ``LEADFLOW_BATCHES_IN_FLIGHT`` above 1). Within a lane, messages go out in the order they are handed
    over. Both compress their record batches with ``LEADFLOW_COMPRESSION``.
    """

    LANES = ("outputs", "changelog")

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.senders: dict[str, BatchSender] = {}
        self._users = 0
        self._starting: asyncio.Lock | None = None

    async def start(self) -> None:
        self._users += 1
        if self._starting is None:
            self._starting = asyncio.Lock()  # created here, in the worker's event loop
        async with self._starting:  # the agents start together: one producer per lane, not one per agent
            await self._start_lanes()

    async def _start_lanes(self) -> None:
        s = self.settings
        for lane in self.LANES:
            if lane in self.senders:
                continue
            producer = AIOKafkaProducer(
                bootstrap_servers=s.bootstrap_servers,
                client_id=f"{s.app_id}-{lane}",
                acks="all",
                linger_ms=0,  # we hand over whole batches; nothing to wait for
                max_batch_size=512 * 1024,
                max_request_size=s.max_event_bytes + 256 * 1024,
                compression_type=s.compression_type,
                **s.kafka_auth(),
            )
            await producer.start()
            self.senders[lane] = BatchSender(producer)

    async def stop(self) -> None:
        self._users = max(0, self._users - 1)
        if self._users == 0:
            senders, self.senders = self.senders, {}
            for sender in senders.values():
                await sender.producer.stop()

    async def send(self, messages: list[Message], lane: str = "outputs") -> dict[tuple[str, int], int]:
        """Send and wait until the broker has every message; on errors retry (nothing is acked meanwhile).

        A broker that is away is waited for: the Kafka error is logged (without a traceback; repeats are held
        back, see :mod:`worker.stream._logs`), and once the messages are sent, how long it took.
        """
        backoff = 0.1
        failures = 0
        first_failure = 0.0
        while True:
            sender = self.senders.get(lane)
            if sender is None:
                await self.start()
                sender = self.senders[lane]
            try:
                offsets = await sender.send(messages)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.send_retries.inc()
                if isinstance(exc, MessageSizeTooLargeError | RecordListTooLargeError):
                    shrunk = self._without_large_values(messages)
                    if shrunk is not None:  # the broker takes less than the record that came from it
                        messages = shrunk
                        continue
                if not failures:
                    first_failure = time.monotonic()
                failures += 1
                if isinstance(exc, KafkaError):
                    logger.warning(
                        "sending %d records failed (%r); retrying in %.1fs (nothing is acked meanwhile)",
                        len(messages),
                        exc,
                        backoff,
                    )
                else:
                    logger.exception("sending a batch failed; retrying in %.1fs (the batch is not acked)", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            if failures:
                took = time.monotonic() - first_failure
                logger.info("sent %d records after %d failed attempts over %.0fs", len(messages), failures, took)
            return offsets

    def _without_large_values(self, messages: list[Message]) -> list[Message] | None:
        """The messages with every large dead letter's value left out (a header says how large it was), or None
        when there is none to leave out.

        A record that only just fit the broker's limit on its own topic can be refused on the dead-letter topic,
        where its headers make it larger; its key, reason and position (topic, partition, offset) still go, and
        the value stays on the source topic. Nothing else is too large: outputs and states are bounded.
        """
        dlq = self.settings.topic_dlq
        out, changed = [], False
        for m in messages:
            if m.topic == dlq and m.value is not None and len(m.value) > _LARGE_VALUE:
                headers = [*(m.headers or []), ("leadflow.value_omitted", str(len(m.value)).encode())]
                m = m._replace(value=None, headers=headers)
                changed = True
            out.append(m)
        if not changed:
            return None
        logger.warning("the broker refused a dead letter as too large; sending them without values over 64 KiB")
        return out

    def dead_letters(self, failures: Sequence[tuple[Any, EventError]]) -> list[Message]:
        """Dead-letter records: the original key and value, with the reason and position in headers."""
        out = []
        failed_at = dt.datetime.now(dt.UTC).isoformat().encode()
        for record, error in failures:
            headers = [
                ("leadflow.reason", error.reason.encode()),
                ("leadflow.error_class", type(error).__name__.encode()),
                ("leadflow.error_message", str(error)[:2000].encode("utf-8", "backslashreplace")),
                ("leadflow.source_topic", record.topic.encode()),
                ("leadflow.source_partition", str(record.partition).encode()),
                ("leadflow.source_offset", str(record.offset).encode()),
                ("leadflow.failed_at", failed_at),
            ]
            out.append(Message(self.settings.topic_dlq, record.key, record.value, headers=headers))
        return out


class _PartitionOf:
    """Stands in for a Faust event where the store only needs ``event.message.partition``."""

    __slots__ = ("__weakref__", "message", "partition")

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.message = self


class TableStore:
    """A Faust table's store, read and written a batch at a time, by partition.

    With RocksDB each partition has its own database: reads go straight to it and writes go in one write batch
    per partition. Other stores (memory, in tests) are used through Faust's mapping interface, which finds the
    partition through Faust's ``current_event`` context variable; that variable holds a weak reference, so the
    stand-ins are kept here for as long as the batch.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.store = table.data
        self._rocksdb = hasattr(self.store, "_db_for_partition")
        self._holders: dict[int, _PartitionOf] = {}

    def get(self, key: bytes, partition: int) -> bytes | None:
        if self._rocksdb:
            value: bytes | None = self.store._db_for_partition(partition).get(key)
            return value
        self._use(partition)
        stored: bytes | None = self.store.get(key)
        return stored

    def put_many(self, updates: Sequence[tuple[bytes, bytes, int]]) -> None:
        """Store ``(key, value, partition)`` triples."""
        if self._rocksdb:
            batches: dict[int, Any] = {}
            for key, value, partition in updates:
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
                batch.put(key, value)
            for partition, batch in batches.items():
                self.store._db_for_partition(partition).write(batch)
            return
        for key, value, partition in updates:
            self._use(partition)
            self.store[key] = value

    def _use(self, partition: int) -> None:
        holder = self._holders.get(partition)
        if holder is None:
            holder = self._holders[partition] = _PartitionOf(partition)
        _current_event.set(weakref.ref(holder))  # type: ignore[arg-type]  # the store reads .message.partition

    async def write(self, outbox: Outbox, updates: list[tuple[bytes, bytes, int]]) -> None:
        """Store the updates locally and in the table's changelog, and note the changelog offsets as persisted."""
        if not updates:
            return
        self.put_many(updates)
        changelog = self.table.changelog_topic.get_topic_name()
        offsets = await outbox.send([Message(changelog, k, v, p) for k, v, p in updates], lane="changelog")
        for (topic, partition), offset in offsets.items():
            self.store.set_persisted_offset(TP(topic, partition), offset)


class _Prepared(NamedTuple):
    outputs: list[Message]
    writes: dict[str, list[tuple[bytes, bytes, int]]]  # table name → updates
    done: Callable[[], None] | None  # what to do once committed (metrics, clocks)
    failures: Sequence[tuple[Any, EventError]] = ()  # the records among ``outputs`` as dead letters


class _Stage:
    """A stage over one topic and some tables: ``prepare`` decides (CPU only), ``commit`` sends then stores."""

    source: Source  # what its refused records are counted as

    def __init__(self, outbox: Outbox, tables: dict[str, Any]) -> None:
        self.outbox = outbox
        self.tables = tables
        self._inflight: list[_Prepared] = []

    def load(self, table: str, key: bytes, partition: int) -> bytes | None:
        """The newest value: a batch still being committed has not stored its states yet."""
        for pending in reversed(self._inflight):
            updates: list[tuple[bytes, bytes, int]] = pending.writes.get(table) or []
            for k, v, _ in updates:
                if k == key:
                    return v
        return TableStore(self.tables[table]).get(key, partition)

    def prepare(self, messages: Sequence[Any]) -> _Prepared:
        prepared = self.decide(messages)
        self._inflight.append(prepared)
        return prepared

    def decide(self, messages: Sequence[Any]) -> _Prepared:
        raise NotImplementedError

    def refuse(self, messages: Sequence[Any], error: EventError) -> _Prepared:
        """Messages that cannot be decided at all, as dead letters (committed like any prepared batch)."""
        failures = [(message, error) for message in messages]
        prepared = _Prepared(self.outbox.dead_letters(failures), {}, None, failures)
        self._inflight.append(prepared)
        return prepared

    async def commit(self, prepared: _Prepared, before: Awaitable[None] | None = None) -> None:
        """Send the outputs, then (after the batch ``before``, if still being committed) store the tables' states.

        The tables are stored in the order of ``prepared.writes``, each locally and in its changelog before the
        next: a crash in between leaves the first stored and the next not, whichever store restores them.
        """
        try:
            await self.outbox.send(prepared.outputs)  # outputs first: a crash after this re-sends the same ids
            if before is not None:
                await before
            for name, updates in prepared.writes.items():
                await TableStore(self.tables[name]).write(self.outbox, updates)
        finally:
            self._inflight.remove(prepared)
        try:
            if prepared.done is not None:
                prepared.done()
            self.outbox.metrics.count_dead_letters(self.source, (error.reason for _, error in prepared.failures))
        except Exception:  # metrics and clocks are not worth the stream: the batch is sent and stored
            logger.exception("counting a committed %s batch failed", self.source)


class RouteStage(_Stage):
    """Owns the pools of its partitions of the route-requests topic: assigns requests in order, exactly once."""

    source = "route_requests"

    def __init__(
        self, settings: Settings, outbox: Outbox, metrics: Metrics, engine: Callable[[], Any], tables: dict[str, Any]
    ) -> None:
        super().__init__(outbox, tables)
        self.settings = settings
        self.metrics = metrics
        self.engine = engine  # the current Engine (it changes on reloads)

    def decide(self, messages: Sequence[Any]) -> _Prepared:
        s = self.settings
        partition_of = {m.key: m.partition for m in messages if m.key is not None}
        ruleset = self.engine().ruleset

        def load_pool(name: str) -> bytes | None:
            key = name.encode()
            return self.load("pool-state", key, partition_of[key])

        def load_done(request_id: str, pool: str) -> bytes | None:
            return self.load("route-done", f"{request_id}@{pool}".encode(), partition_of[pool.encode()])

        now = time.time()
        fallback = Target("queue", ruleset.conversion.queue)
        out = route_batch(ruleset.routing, messages, load_pool, load_done, now, ruleset.version, fallback)
        outputs = [Message(s.topic_opportunities, k, v) for k, v in out.opportunities]
        outputs += [Message(s.topic_routing_decisions, k, v) for k, v in out.routing_decisions]
        outputs += [Message(s.topic_sla, k, v) for k, v in out.sla_notices]
        outputs += [Message(s.topic_route_requests, k, v) for k, v in out.forwards]
        outputs += self.outbox.dead_letters(out.dead_letters)
        # the answers before the pools' states (tables are stored in this order, each before the next): after a
        # crash between the two, a request whose answer is stored is answered again as before, while a pool that
        # had moved on without the answer would assign the request a second time, to its next member
        writes = {
            "route-done": [(f"{r}@{p}".encode(), v, partition_of[p.encode()]) for (r, p), v in out.done.items()],
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
            if out.created:
                m.opportunities.inc(out.created)
            observe_many(m.time_to_assignment, out.waits)

        return _Prepared(outputs, writes, done, out.dead_letters)


class SlaStage(_Stage):
    """The SLA clock of its partitions of the SLA topic: notices in, reassignment requests out when time is up."""

    source = "sla"

    def __init__(self, settings: Settings, outbox: Outbox, metrics: Metrics, app: Any, table: Any) -> None:
        super().__init__(outbox, {"sla-state": table})
        self.settings = settings
        self.metrics = metrics
        self.app = app
        self.clocks: dict[str, dict[str, Any]] = {}  # opportunity id → state, for the running clocks
        self._generation: int | None = None
        self._fired: set[tuple[str, int]] = set()

    def decide(self, messages: Sequence[Any]) -> _Prepared:
        partition_of = {m.key: m.partition for m in messages if m.key is not None}

        def load(opportunity_id: str) -> bytes | None:
            key = opportunity_id.encode()
            return self.load("sla-state", key, partition_of[key])

        out, states = sla_batch(messages, load)
        writes = {"sla-state": [(k.encode(), v, partition_of[k.encode()]) for k, v in out.states.items()]}
        outputs = self.outbox.dead_letters(out.dead_letters)

        def done() -> None:
            for opportunity_id, state in states.items():
                if sla_pending(state):
                    self.clocks[opportunity_id] = state
                else:
                    self.clocks.pop(opportunity_id, None)
            if out.accepted:
                self.metrics.sla_accepted.inc(out.accepted)

        return _Prepared(outputs, writes, done, out.dead_letters)

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


class FeedbackStage(_Stage):
    """Forwards ``opportunity.accepted`` feedback to the SLA topic, keyed by opportunity id (no table)."""

    source = "feedback"

    def __init__(self, settings: Settings, outbox: Outbox) -> None:
        super().__init__(outbox, {})
        self.settings = settings

    def decide(self, messages: Sequence[Any]) -> _Prepared:
        outputs: list[Message] = []
        failures: list[tuple[Any, EventError]] = []
        for message in messages:
            try:
                key, value = accepted_notice(message.key, message.value)
            except EventError as exc:
                failures.append((message, exc))
                continue
            outputs.append(Message(self.settings.topic_sla, key, value))
        outputs += self.outbox.dead_letters(failures)
        return _Prepared(outputs, {}, None, failures)
