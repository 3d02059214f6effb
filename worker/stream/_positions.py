"""What the fetch loop has read of each partition, kept true across Faust's seeks.

Faust keeps, per partition, the offset last read (``Consumer._read_offset``): a record below it was read already and
is skipped, a record past it leaves a gap (offsets that hold no record: transaction markers, compacted records) that
Faust's commits may pass. Faust's own seeks (after a rebalance, after a table's recovery, on revocation) reset it to
the offset to read next, and the consumer then fetches from there. Records fetched *before* such a seek can still be
in the hands of the fetch loop after it: had they been taken for new ones, the read offset would jump past the seek's
target, the records between would look like a gap that commits may pass, and when they came again they would be
skipped as read. :class:`ReadPositions` counts the seeks; a fetch whose records are overtaken by a seek is left
there (its records come again, from where the seek put the partition).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

__all__ = ["ReadPositions"]


class ReadPositions:
    """The offset last read per partition (Faust's mapping, shared with its seeks), and the seeks so far."""

    __slots__ = ("_fetched_at", "moves", "read_offset")

    def __init__(self, read_offset: MutableMapping[Any, int | None]) -> None:
        self.read_offset = read_offset
        self.moves = 0  # seeks, revocations and assignments so far
        self._fetched_at = 0

    def moved(self) -> None:
        """A seek, revocation or assignment began or ended: the records fetched before it are stale."""
        self.moves += 1

    def fetched(self) -> None:
        """A fetch's first record is here: its records are current until the next move."""
        self._fetched_at = self.moves

    def stale(self) -> bool:
        """Whether a move happened since the fetch being read (its records come again; leave them)."""
        return self.moves != self._fetched_at

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
