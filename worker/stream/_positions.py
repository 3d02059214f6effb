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
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

__all__ = ["ReadPositions"]


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
