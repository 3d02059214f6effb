"""What the fetch loop has read of each partition, kept true across Faust's seeks.

Faust keeps, per partition, the offset last read (``Consumer._read_offset``): a record below it was read already and
is skipped, a record past it leaves a gap (offsets that hold no record: transaction markers, compacted records) that
Faust's commits may pass. Faust's own seeks (after a rebalance, after a table's recovery, on revocation) reset it to
the offset to read next, and the consumer then fetches from there. Records fetched *before* such a seek can still be
in the hands of the fetch loop after it: had they been taken for new ones, the read offset would jump past the seek's
target, the records between would look like a gap that commits may pass, and when they came again they would be
skipped as read. :class:`ReadPositions` notes the partitions that moved; a fetch's records of a partition that moved
after it are left (they come again, from where the seek put the partition); the other partitions' records are not
touched, since the consumer's positions there are past them already.

:class:`Unprocessed` keeps, per partition, the records read and not yet processed (acked), in order: the first of
them is the oldest unprocessed record the worker holds (``leadflow_oldest_unprocessed_seconds``).

:class:`AwaitingSeek` keeps, for the current assignment, the partitions of leadflow's topics that Faust has not yet
sought to their committed offsets. Faust resumes them (and the fetcher runs, reading the changelogs) before that
seek; a record taken from them meanwhile would be decided before the seek, and then either read again (the seek
moves the partition back) or left as stale while the seek moved nothing (a partition never committed: aiokafka
seeks only to offsets above 0), and never read again. Their records stay in the client's buffer until the seek is
done: the seek drops that buffer when it moves the partition, and keeps it, from the reset position, when not.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterable, MutableMapping
from typing import Any

__all__ = ["AwaitingSeek", "ReadPositions", "Unprocessed"]


class ReadPositions:
    """The offset last read per partition (Faust's mapping, shared with its seeks), and the partitions moved since
    the fetch being read began."""

    __slots__ = ("_moved", "read_offset")

    def __init__(self, read_offset: MutableMapping[Any, int | None]) -> None:
        self.read_offset = read_offset
        self._moved: set[Any] = set()

    def moved(self, partitions: Iterable[Any]) -> None:
        """A seek, revocation or assignment of ``partitions`` began or ended: their records fetched before it are
        stale. Other partitions' records are not: their positions did not move."""
        self._moved.update(partitions)

    def fetched(self) -> None:
        """A fetch's first record is here: its records are current until a partition moves."""
        self._moved.clear()

    def stale(self, tp: Any) -> bool:
        """Whether ``tp`` moved since the fetch being read (its records come again from where it moved to)."""
        return tp in self._moved

    def read(self, tp: Any, offset: int) -> tuple[bool, tuple[int, int] | None]:
        """Note the record at ``offset`` as read: whether it is new (False: read before, skip it), and the gap before
        it (first and last offset, both included) when offsets between it and the last one read hold no record."""
        last = self.read_offset.get(tp)
        gap = None
        if last is not None:
            if offset < last:
                return False, None
            if offset - last > 1:
                gap = (last + 1, offset - 1)
        self.read_offset[tp] = offset
        return True, gap


class AwaitingSeek:
    """The partitions of leadflow's topics in the current assignment whose seek to the committed offsets is not
    done; the fetch loop takes no record from them (see the module's docstring)."""

    __slots__ = ("_generation", "partitions")

    def __init__(self) -> None:
        self.partitions: frozenset[Any] = frozenset()
        self._generation: int | None = None

    def assigned(self, partitions: Iterable[Any], generation: int) -> None:
        """The group assigned ``partitions`` (those of leadflow's topics) in ``generation``: they wait for its seek."""
        self.partitions = frozenset(partitions)
        self._generation = generation

    def sought(self, generation: int) -> bool:
        """Faust's seek to the committed offsets, begun in ``generation``, is done: the partitions of that
        generation's assignment are read from now on. A seek begun before a later assignment releases nothing.
        Returns whether partitions were released."""
        if generation != self._generation or not self.partitions:
            return False
        self.partitions = frozenset()
        return True

    def fetchable(self, active: set[Any]) -> set[Any]:
        """The partitions of ``active`` whose records may be taken now."""
        return active - self.partitions if self.partitions else active


class Unprocessed:
    """Per partition, the records read and not yet processed, oldest first, as ``(offset, timestamp)``.

    The fetch loop reads a partition's records in offset order and its batches are acked in that order, so the
    first entry is the partition's first unprocessed record. The loop appends to :attr:`pending` itself (a few
    hundred nanoseconds a record); a record without a timestamp (a marker standing for records the client could
    not read) goes through :meth:`read`, and counts from when it was read.
    """

    __slots__ = ("_clock", "pending")

    def __init__(self, clock: Any = time.time) -> None:
        self.pending: defaultdict[Any, deque[tuple[int, float]]] = defaultdict(deque)
        """Partition → its records in hand, ``(offset, record timestamp in epoch seconds)``, in offset order."""
        self._clock = clock

    def read(self, tp: Any, offset: int, timestamp: float | None) -> None:
        """The record at ``offset`` of ``tp`` is in the worker's hands."""
        stamp = timestamp if timestamp is not None and timestamp > 0 else self._clock()
        self.pending[tp].append((offset, stamp))

    def processed(self, records: Iterable[Any]) -> None:
        """The records (anything with ``topic``, ``partition`` and ``offset``) are processed, and so are those read
        before them on their partitions."""
        last = {}
        for record in records:
            last[record.topic, record.partition] = record.offset
        pending = self.pending
        for tp, offset in last.items():
            queue = pending.get(tp)
            while queue and queue[0][0] <= offset:
                queue.popleft()

    def forget(self, partitions: Iterable[Any]) -> None:
        """The partitions were revoked: what is in hand of them is no longer this worker's to process."""
        for tp in partitions:
            self.pending.pop(tp, None)

    def oldest(self, tp: Any) -> float | None:
        """The timestamp of the first unprocessed record of ``tp``, or None when none is in hand."""
        queue = self.pending.get(tp)
        if not queue:
            return None
        timestamp = queue[0][1]
        return timestamp if timestamp is not None and timestamp > 0 else None  # none known: the age says 0
