"""Faust's aiokafka transport with what leadflow needs changed.

1. High watermarks from a Fetch. Table recovery asks for each changelog partition's end offset with ListOffsets;
   some Kafka-protocol brokers (tansu 0.6, the embedded one) answer with the offset of the last *batch* rather
   than past its last record, so a table would silently miss its newest updates after a restart. The high
   watermark inside a Fetch response is right everywhere, so we ask both and take the larger.
2. A bounded fetch wait. Faust hard-codes ``fetch_max_wait_ms=1500``; an idle stream then waits up to 1.5 s
   for each new event. ``LEADFLOW_FETCH_MAX_WAIT_MS`` (default 100) bounds it.
3. A batch path. The messages of leadflow's topics (leads, and the routing stages' topics) go from the fetch loop
   to their handlers a fetch at a time, instead of one by one through Faust's conductor, channels and streams
   (see ``_drain_messages``).
4. Nothing stops the fetch loop: records the client cannot read arrive as markers (see :mod:`worker.stream._fetch`) and
   go to the dead-letter topic; a batch whose handler raises is split until the one message that fails is found,
   and that message goes to the dead-letter topic.
5. Seeks overtake fetches safely: records fetched before a seek (a rebalance, a table's recovery) are left once
   it happens, and come again from where it put the partition; and no record of leadflow's topics is taken from
   an assignment before Faust has sought it to the committed offsets (see :mod:`worker.stream._positions`).
6. What an operator needs, read from memory when scraped: each assigned partition's high watermark (from Fetch
   responses, right on tansu too), committed offset and first unprocessed record (``partition_states``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from aiokafka.protocol.fetch import FetchRequest
from faust.transport.drivers import aiokafka as faust_aiokafka

from worker.batch import RecordLike
from worker.exceptions import EventError
from worker.settings import Settings
from worker.stream._fetch import UNREADABLE, unreadable
from worker.stream._positions import AwaitingSeek, ReadPositions, Unprocessed
from worker.stream._stage import Stage, Waking
from worker.stream.metrics import PartitionState

__all__ = ["LeadflowTransport", "fetch_highwaters"]

logger = logging.getLogger(__name__)

_FETCH_WAIT_MS = 10

_IN_FETCH_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("leadflow_in_fetch_loop", default=False)
"""True in the fetch loop's task (and the tasks it starts), false in Faust's recovery."""

P = TypeVar("P")
T = TypeVar("T")


async def fetch_highwaters(consumer: Any, partitions: Iterable[Any]) -> dict[Any, int]:
    """End offsets of ``partitions``: the larger of ListOffsets and the high watermark of a Fetch."""
    tps = list(partitions)
    if not tps:
        return {}
    listed: Mapping[Any, int] = await consumer.end_offsets(tps)
    result = dict(listed)
    client = consumer._client  # aiokafka has no public API for a raw Fetch
    by_node: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(lambda: defaultdict(list))
    for tp in tps:
        node = client.cluster.leader_for_partition(tp)
        if node is None or node < 0:
            continue
        by_node[node][tp.topic].append((tp.partition, listed[tp], 64 * 1024))
    by_key = {(tp.topic, tp.partition): tp for tp in tps}
    answered: set[Any] = set()
    for node, topics in by_node.items():
        # max_wait 0 makes tansu answer with no partitions at all; 10 ms with min_bytes 0 returns at once anyway
        request = FetchRequest(_FETCH_WAIT_MS, 0, 1024 * 1024, 0, list(topics.items()))
        response = await client.send(node, request)
        for topic, parts in response.topics:
            for partition, error_code, highwater, *_ in parts:
                tp = by_key.get((topic, partition))
                if tp is None or error_code != 0:
                    continue
                answered.add(tp)
                if highwater > result[tp]:
                    logger.info(
                        "high watermark of %s[%d] is %d (ListOffsets said %d)",
                        topic,
                        partition,
                        highwater,
                        result[tp],
                    )
                    result[tp] = highwater
    unanswered = [f"{tp.topic}[{tp.partition}]" for tp in tps if tp not in answered]
    if unanswered:
        logger.warning(
            "no high watermark in the Fetch response for %s; using ListOffsets, which may be short on tansu",
            ", ".join(unanswered),
        )
    return result


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


def _settings(app: Any) -> Settings:
    settings: Settings = app.leadflow_settings  # set by worker.stream.app.build_app on every LeadflowApp
    return settings


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = _settings(self.app).fetch_max_wait_ms  # read when the consumer starts
        return consumer

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        if self.consumer.in_transaction or not _settings(self.app).highwater_from_fetch:
            return await super()._highwaters(partitions)
        return await fetch_highwaters(self._ensure_consumer(), partitions)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _own(self, name: str, make: Callable[[], T]) -> T:
        """This consumer's ``name``, made on first use."""
        value: T | None = self.__dict__.get(name)
        if value is None:
            value = self.__dict__[name] = make()
        return value

    @property
    def positions(self) -> ReadPositions:
        return self._own("_leadflow_positions", lambda: ReadPositions(self._read_offset))

    @property
    def awaiting_seek(self) -> AwaitingSeek:
        return self._own("_leadflow_awaiting_seek", AwaitingSeek)

    @property
    def _sought(self) -> asyncio.Event:
        """Set while no partition awaits its seek (see :meth:`_getmany`)."""
        return self._own("_leadflow_sought", _set_event)

    @property
    def unprocessed(self) -> Unprocessed:
        return self._own("_leadflow_unprocessed", Unprocessed)

    def partition_states(self, topics: Collection[str]) -> list[PartitionState]:
        """Every partition of ``topics`` assigned to this worker, from memory: the high watermark the last Fetch
        response reported (aiokafka keeps it per partition), the committed offset Faust tracks, the first record in
        hand and not yet processed. Read from the consumer's current assignment object (replaced, never changed,
        on a rebalance), so a partition and its state come from the same assignment."""
        consumer = self._thread._consumer  # aiokafka's, once started
        subscription = consumer._subscription.subscription if consumer is not None else None
        assignment = subscription.assignment if subscription is not None else None
        if assignment is None:  # not started, or between a revocation and the next assignment
            return []
        committed, unprocessed = self._committed_offset, self.unprocessed
        states = []
        for tp in assignment.tps:
            if tp.topic not in topics:
                continue
            state = assignment.state_value(tp)
            highwater = state.highwater if state is not None else None
            states.append(PartitionState(tp.topic, tp.partition, highwater, committed.get(tp), unprocessed.oldest(tp)))
        return states

    # Everything that moves or resets read positions: the records fetched before it are stale once it is done.
    async def seek(self, partition: Any, offset: int) -> None:
        self.positions.moved((partition,))
        try:
            await super().seek(partition, offset)
        finally:
            self.positions.moved((partition,))

    async def seek_wait(self, partitions: Mapping[Any, int]) -> None:
        self.positions.moved(partitions)
        try:
            await super().seek_wait(partitions)
        finally:
            self.positions.moved(partitions)

    async def seek_to_committed(self) -> Mapping[Any, int]:
        offsets: Mapping[Any, int] = await super().seek_to_committed()
        self.positions.moved(offsets)  # perform_seek sets their read offsets next, before anything else runs
        return offsets

    async def perform_seek(self) -> None:
        """Faust's seek of every assigned partition to its committed offset. The one its recovery makes once the
        tables are recovered releases the partitions of that assignment; the one the fetch loop makes itself (Faust's
        ``getmany``, given records fetched while the flow was stopped: a rebalance under way) releases nothing."""
        generation = self.app.consumer_generation_id
        by_recovery = not _IN_FETCH_LOOP.get()
        try:
            await super().perform_seek()
        finally:
            # after a timeout or an error Faust carries on, and so do the partitions, unless reassigned meanwhile
            if by_recovery and self.app.consumer_generation_id == generation and self.awaiting_seek.sought(generation):
                self._sought.set()
                logger.debug("stream partitions sought to their committed offsets (generation %d)", generation)

    async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
        """Records of the partitions not awaiting their seek: the others' stay in aiokafka's buffer (a seek that
        moves the partition drops them, and it is read from its new position)."""
        if active_partitions:
            fetchable = self.awaiting_seek.fetchable(active_partitions)
            if not fetchable:  # aiokafka takes an empty set for every partition: wait for the seek instead
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._sought.wait(), timeout)
                return {}
            active_partitions = fetchable
        return await super()._getmany(active_partitions, timeout)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.positions.moved(revoked)
        self.unprocessed.forget(revoked)
        try:
            await super().on_partitions_revoked(revoked)
        finally:
            self.positions.moved(revoked)

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        handled = getattr(self.app, "leadflow_handlers", None) or ()
        held = [tp for tp in assigned if tp.topic in handled]
        self.awaiting_seek.assigned(held, generation_id)  # until Faust's seek to the committed offsets (perform_seek)
        if held:
            self._sought.clear()
        else:
            self._sought.set()
        self.positions.moved(assigned)
        try:
            await super().on_partitions_assigned(assigned, generation_id)
        finally:
            self.positions.moved(assigned)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover  # runs inside the worker
        """Faust's fetch loop, but the messages of leadflow's topics go to their handlers a fetch at a time.

        Faust hands every message to its conductor, a channel queue, an event and a stream, which costs more
        than deciding the event. Here each fetch's messages of a handled topic are tracked and handed over as one
        batch, and acked only once the handler has sent every output and stored every state: offsets are
        committed (by Faust's commit loop) only for acked messages, so delivery stays at-least-once. While up to
        ``LEADFLOW_BATCHES_IN_FLIGHT`` batches are being committed (waiting for the broker), the next one is
        fetched and decided; each batch's outputs go out as soon as it is decided, its states only after the
        batch before it has stored its own, and its messages are acked after that batch's. Messages of any
        other topic take Faust's usual path. Between fetches, a step that decides batches as time passes (the lead
        step's wake-ups, :class:`~worker.stream._stage.Waking`) is asked for one, committed in line with the others.
        """
        handlers: dict[str, Stage[Any]] | None = getattr(self.app, "leadflow_handlers", None)
        if not handlers:
            await super()._drain_messages(fetcher)
            return
        _IN_FETCH_LOOP.set(True)  # this task's own context: see perform_seek
        settings = _settings(self.app)
        batch_size = settings.batch_size
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        positions = self.positions
        unprocessed = self.unprocessed
        in_hand = unprocessed.pending  # partition → records read and not yet processed (leadflow's own metric)
        # Consumer.track_message without its per-message sensor calls (leadflow counts its own events): the
        # message is pending until acked, which is what graceful shutdown and commits look at.
        track, ack = self._unacked_messages.add, self.ack
        in_flight = settings.batches_in_flight
        pending: dict[str, deque[asyncio.Future[None]]] = defaultdict(deque)  # topic → its batches being committed
        batches: dict[str, list[RecordLike]] = {}  # topic → the messages of this fetch not yet handed over
        waking = [(topic, handler) for topic, handler in handlers.items() if isinstance(handler, Waking)]

        async def hand_over(topic: str, prepared: Iterable[tuple[Any, list[RecordLike]]]) -> None:
            handler = handlers[topic]
            for batch_prepared, messages in prepared:
                committing = pending[topic]
                while len(committing) >= in_flight:
                    await committing.popleft()
                before = committing[-1] if committing else None
                commit = self._commit_batch(handler, batch_prepared, messages, ack, unprocessed, before)
                committing.append(asyncio.ensure_future(commit))

        async def flush(topic: str, batch: list[RecordLike]) -> None:
            await hand_over(topic, _prepared(handlers[topic], batch))

        async def flush_unreadable(topic: str, message: Any) -> None:
            batch = batches.pop(topic, None)  # the records before it first: their order is kept
            if batch:
                await flush(topic, batch)
            error = EventError(unreadable(message) or "unreadable records", reason="unreadable")
            await hand_over(topic, [(handlers[topic].refuse([message], error), [message])])

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                await self.sleep(0)
                if self.should_stop:
                    break
                batches.clear()
                first = True
                async for tp, message in self.getmany(timeout=1.0):
                    if first:
                        positions.fetched()
                        first = False
                    elif positions.stale(tp):  # a seek overtook this fetch: these records come again from there
                        continue
                    new, gap = positions.read(tp, message.offset)
                    if not new:
                        continue  # already read since the last seek
                    if gap is not None:
                        await self._add_gap(tp, *gap)  # e.g. transaction markers: commits may pass them
                    topic = message.topic
                    if topic not in handlers:
                        await callback(message)
                        continue
                    track(message)
                    headers: Any = message.headers
                    if headers and headers[0][0] is UNREADABLE:  # records the client could not read
                        unprocessed.read(tp, message.offset, None)  # no timestamp: it waits from now
                        await flush_unreadable(topic, message)
                        continue
                    in_hand[tp].append((message.offset, message.timestamp))
                    batch = batches.get(topic)
                    if batch is None:
                        batch = batches[topic] = []
                    batch.append(message)
                    if len(batch) >= batch_size:
                        await flush(topic, batch)
                        batches[topic] = []
                for topic, batch in batches.items():
                    if batch:
                        await flush(topic, batch)
                for topic, handler in waking:
                    await hand_over(topic, _due(handler))
                for topic, committing in pending.items():
                    while committing and not batches.get(topic):  # idle: finish the commits now, not later
                        await committing.popleft()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            unfinished = [f for committing in pending.values() for f in committing if not f.done()]
            if unfinished:
                # stopping: let the batches being committed finish, so that they are acked and not re-processed
                await asyncio.wait(unfinished, timeout=10)

    @staticmethod
    async def _commit_batch(
        handler: Stage[P],
        prepared: P,
        batch: list[RecordLike],
        ack: Callable[[Any], object],  # Faust's Consumer.ack, of its own Message type
        unprocessed: Unprocessed,
        before: asyncio.Future[None] | None,
    ) -> None:
        await handler.commit(prepared, before)
        for message in batch:
            ack(message)
        unprocessed.processed(batch)


def _prepared(handler: Stage[P], batch: list[RecordLike]) -> Iterator[tuple[P, list[RecordLike]]]:
    """The batch prepared by its handler, or, when preparing it raises (a bug: the core turns bad records into dead
    letters itself), its halves, down to the single message that fails, which becomes a dead letter: one message
    costs one dead letter, never the stream."""
    try:
        yield handler.prepare(batch), batch
        return
    except Exception as exc:
        if len(batch) == 1:
            (message,) = batch
            logger.exception(
                "%s[%d] offset %d could not be decided; it goes to the dead-letter topic",
                message.topic,
                message.partition,
                message.offset,
            )
            error = EventError(
                f"the worker failed on this record: {type(exc).__name__}: {exc}", reason="processing_error"
            )
            yield handler.refuse(batch, error), batch
            return
    middle = len(batch) // 2
    yield from _prepared(handler, batch[:middle])
    yield from _prepared(handler, batch[middle:])


def _due(handler: Waking) -> list[tuple[Any, list[RecordLike]]]:
    """The batch that time makes due at the handler, if any (no messages to ack); a failure is logged, never the
    fetch loop's end."""
    try:
        prepared = handler.prepare_due(time.time())
    except Exception:
        logger.exception("deciding what time made due failed; the next check tries again")
        return []
    return [] if prepared is None else [(prepared, [])]


class LeadflowTransport(faust_aiokafka.Transport):
    """The aiokafka transport with the changes above."""

    Consumer = _Consumer
