"""The fetch loop's read positions across Faust's seeks: nothing skipped, no gap that is not one."""

from __future__ import annotations

from worker.stream._positions import ReadPositions

TP = ("leads", 0)


def _fetch(positions: ReadPositions, offsets: list[int], seek_after: int | None = None, seek_to: int = 0) -> list[int]:
    """Read one fetch's records as the fetch loop does; Faust seeks to ``seek_to`` after ``seek_after`` of them
    (while the loop waits for the broker). Returns the offsets handed over."""
    handed: list[int] = []
    for n, offset in enumerate(offsets):
        if n == 0:
            positions.fetched()
        elif positions.stale():
            break
        new, gap = positions.read(TP, offset)
        assert gap is None, f"offset {offset}: a gap {gap} where every offset holds a record"
        if new:
            handed.append(offset)
        if seek_after is not None and n + 1 == seek_after:
            positions.moved()
            positions.read_offset[TP] = seek_to  # what Faust's seek writes: the offset to read next
            positions.moved()
    return handed


def test_records_are_handed_over_once_in_order() -> None:
    positions = ReadPositions({})
    assert _fetch(positions, [0, 1, 2]) == [0, 1, 2]
    assert _fetch(positions, [1, 3, 4]) == [3, 4]  # what was read already is not handed over again


def test_a_seek_back_during_a_fetch_leaves_the_rest_and_reads_everything_again_from_its_target() -> None:
    positions = ReadPositions({})
    assert _fetch(positions, list(range(10))) == list(range(10))
    # a rebalance: the partition goes back to its committed offset 4 while offsets 10.. are being read
    assert _fetch(positions, list(range(10, 20)), seek_after=3, seek_to=4) == [10, 11, 12]
    assert _fetch(positions, list(range(4, 20))) == list(range(4, 20))


def test_only_offsets_without_records_are_a_gap() -> None:
    positions = ReadPositions({})
    assert positions.read(TP, 5) == (True, None)
    assert positions.read(TP, 9) == (True, (6, 8))  # 6, 7 and 8 hold no record (transaction markers, say)
    assert positions.read(TP, 10) == (True, None)
    assert positions.read(TP, 7) == (False, None)
