"""One pattern for every step of the shell: prepare a batch purely, then send, store and commit it.

The transport (:mod:`worker.stream._transport`) hands each step the messages of its topic a fetch at a time, as a
:class:`Stage`: ``prepare`` decides a batch with the pure core (CPU only: nothing is sent or stored), ``commit``
sends its outputs and waits for the broker, then stores its tables' states, locally and in their changelogs;
only when ``commit`` returns are the messages acked. ``refuse`` turns messages that cannot be decided at all into
dead letters, committed like any batch.

:class:`TableStage` is that pattern written once: the one in-flight lookup (a batch still being committed has not
stored its states, so the next batch reads them from it), the one commit path, and the counting afterwards. The
lead step (:mod:`._lead_stage`) and the routing steps (:mod:`._route_stages`) say only how to decide a batch and
what a decided batch holds.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar, runtime_checkable

from worker.batch import RecordLike
from worker.exceptions import EventError
from worker.stream._outbox import Message, Outbox
from worker.stream._tables import TableStore, Update
from worker.stream.metrics import Metrics, Source

__all__ = ["BatchStage", "Failure", "Prepared", "Stage", "TableStage", "Waking"]

logger = logging.getLogger(__name__)

P = TypeVar("P")
Failure = tuple[RecordLike, EventError]
"""A record that goes to the dead-letter topic, and why."""


class Stage(Protocol[P]):
    """A step of the shell over one topic, as the transport drives it (``P`` is its decided batch)."""

    def prepare(self, messages: Sequence[RecordLike]) -> P:
        """Decide a batch (CPU only: nothing is sent or stored yet)."""
        ...

    def refuse(self, messages: Sequence[RecordLike], error: EventError) -> P:
        """Messages that cannot be decided at all, as dead letters (committed like any prepared batch)."""
        ...

    async def commit(self, prepared: P, before: Awaitable[None] | None = None) -> None:
        """Send, then store (after ``before``, the commit of the batch before, if still running); then ack."""
        ...


@runtime_checkable
class Waking(Protocol):
    """A step that also decides batches with no messages, when time has come for some of its keys (the lead step's
    wake-ups): the transport asks it between fetches and commits what it gives like any prepared batch."""

    def prepare_due(self, now: float) -> Any:
        """A batch of what is due by ``now`` (None: nothing), in flight until committed like a prepared batch."""
        ...


class Prepared(NamedTuple):
    """A decided batch of a routing step: what to send, what to store in which table, what to count."""

    outputs: list[Message]
    writes: dict[str, list[Update]]
    """Table name → updates; the tables are stored in this order, each before the next."""
    done: Callable[[], None] | None
    """What to do once committed (metrics, clocks)."""
    failures: Sequence[Failure] = ()
    """The records among ``outputs`` as dead letters."""


class TableStage(ABC, Generic[P]):
    """A step over one topic and some tables: ``prepare`` decides, ``commit`` sends, then stores, then counts.

    Batches are prepared and committed in the same order; the next batch may be prepared while the ones before
    it are being committed, since :meth:`load` finds their states among the batches in flight.
    """

    source: ClassVar[Source]

    def __init__(self, outbox: Outbox, metrics: Metrics, tables: Mapping[str, Any]) -> None:
        self.outbox = outbox
        self.metrics = metrics
        self.tables = dict(tables)
        """The Faust tables by name."""
        self._inflight: list[P] = []

    # --- what each step says ------------------------------------------------------------------------------------

    @abstractmethod
    def decide(self, messages: Sequence[RecordLike]) -> P:
        """The decided batch (pure but for :meth:`load`)."""

    @abstractmethod
    def refused(self, failures: Sequence[Failure]) -> P:
        """A batch of dead letters only."""

    @abstractmethod
    def outputs(self, prepared: P) -> list[Message]:
        """What to send."""

    @abstractmethod
    def writes(self, prepared: P) -> Iterable[tuple[TableStore, Sequence[Update]]]:
        """What to store, table by table, in the order to store them."""

    @abstractmethod
    def written(self, prepared: P, table: str, key: bytes) -> bytes | None:
        """The state ``prepared`` will store under ``key`` in ``table``, or None."""

    @abstractmethod
    def failures(self, prepared: P) -> Sequence[Failure]:
        """The records of ``prepared`` that go to the dead-letter topic."""

    def deletes(self, prepared: P, table: str, key: bytes) -> bool:  # a hook: only some steps delete
        """Whether ``prepared`` will delete ``key`` from ``table``."""
        return False

    def committed(self, prepared: P) -> None:  # a hook: most steps have nothing more to count
        """Count what a committed batch did (metrics, clocks)."""

    # --- the pattern, once ---------------------------------------------------------------------------------------

    def load(self, table: str, key: bytes, partition: int, store: TableStore | None = None) -> bytes | None:
        """The newest state: a batch still being committed has not stored its states yet, so it is read from
        there; else from ``table`` (``store``: the batch's reader of it, if it has one)."""
        for pending in reversed(self._inflight):
            value = self.written(pending, table, key)
            if value is not None:
                return value
            if self.deletes(pending, table, key):  # deleted there: the store's older value is gone
                return None
        return (store or TableStore(self.tables[table])).get(key, partition)

    def prepare(self, messages: Sequence[RecordLike]) -> P:
        prepared = self.decide(messages)
        self._inflight.append(prepared)
        return prepared

    def refuse(self, messages: Sequence[RecordLike], error: EventError) -> P:
        prepared = self.refused([(message, error) for message in messages])
        self._inflight.append(prepared)
        return prepared

    async def commit(self, prepared: P, before: Awaitable[None] | None = None) -> None:
        """Send a prepared batch's outputs, then store its states; when this returns, its messages may be acked.

        ``before`` is the commit of the batch before, if still running: this batch's outputs go out meanwhile,
        its states are stored only after that batch's, so that a key's newest state is stored last. The tables
        are stored in the order :meth:`writes` gives, each locally and in its changelog before the next: a crash
        in between leaves the first stored and the next not, whichever store restores them.
        """
        try:
            await self.outbox.send(self.outputs(prepared))  # outputs first: a crash after this re-sends the same ids
            if before is not None:
                await before
            for store, updates in self.writes(prepared):
                await store.write(self.outbox, updates)
        finally:
            self._inflight.remove(prepared)
        try:
            self.committed(prepared)
            self.metrics.count_dead_letters(self.source, (error.reason for _, error in self.failures(prepared)))
        except Exception:  # metrics and clocks are not worth the stream: the batch is sent and stored
            logger.exception("counting a committed %s batch failed", self.source)


class BatchStage(TableStage[Prepared]):
    """A :class:`TableStage` whose decided batch is a :class:`Prepared` (the routing steps)."""

    def refused(self, failures: Sequence[Failure]) -> Prepared:
        return Prepared(self.outbox.dead_letters(failures), {}, None, failures)

    def outputs(self, prepared: Prepared) -> list[Message]:
        return prepared.outputs

    def writes(self, prepared: Prepared) -> Iterable[tuple[TableStore, Sequence[Update]]]:
        for name, updates in prepared.writes.items():
            yield TableStore(self.tables[name]), updates

    def written(self, prepared: Prepared, table: str, key: bytes) -> bytes | None:
        for k, v, _ in prepared.writes.get(table) or ():
            if k == key:
                return v
        return None

    def deletes(self, prepared: Prepared, table: str, key: bytes) -> bool:
        return any(k == key and v is None for k, v, _ in prepared.writes.get(table) or ())

    def failures(self, prepared: Prepared) -> Sequence[Failure]:
        return prepared.failures

    def committed(self, prepared: Prepared) -> None:
        if prepared.done is not None:
            prepared.done()
