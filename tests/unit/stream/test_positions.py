"""The fetch loop's read positions across Faust's seeks: nothing skipped, no gap that is not one."""

from __future__ import annotations

from worker.stream._positions import AwaitingSeek, ReadPositions

P0, P1 = ("leads", 0), ("leads", 1)
CHANGELOG = ("lf-lead-state-changelog", 0)


def _fetch(
    positions: ReadPositions,
    records: list[tuple[tuple[str, int], int]],
    seek_after: int | None = None,
    seek: tuple[tuple[str, int], int] = (P0, 0),
) -> list[tuple[tuple[str, int], int]]:
    """Read one fetch's records (partition, offset) as the fetch loop does; Faust seeks ``seek`` (a partition, the
    offset to read next) after ``seek_after`` of them, while the loop waits for the broker. Returns the records
    handed over."""
    handed = []
    for n, (tp, offset) in enumerate(records):
        if n == 0:
            positions.fetched()
        elif positions.stale(tp):
            continue
        new, gap = positions.read(tp, offset)
        assert gap is None, f"{tp} offset {offset}: a gap {gap} where every offset holds a record"
        if new:
            handed.append((tp, offset))
        if seek_after is not None and n + 1 == seek_after:
            moved, target = seek
            positions.moved([moved])
            positions.read_offset[moved] = target  # what Faust's seek writes: the offset to read next
            positions.moved([moved])
    return handed


def _of(tp: tuple[str, int], offsets: range) -> list[tuple[tuple[str, int], int]]:
    return [(tp, offset) for offset in offsets]


def test_records_are_handed_over_once_in_order() -> None:
    positions = ReadPositions({})
    assert _fetch(positions, _of(P0, range(3))) == _of(P0, range(3))
    assert _fetch(positions, [(P0, 1), (P0, 3), (P0, 4)]) == _of(P0, range(3, 5))  # 1 was read already


def test_a_seek_back_during_a_fetch_leaves_the_rest_and_reads_everything_again_from_its_target() -> None:
    positions = ReadPositions({})
    assert _fetch(positions, _of(P0, range(10))) == _of(P0, range(10))
    # a rebalance: the partition goes back to its committed offset 4 while offsets 10.. are being read
    assert _fetch(positions, _of(P0, range(10, 20)), seek_after=3, seek=(P0, 4)) == _of(P0, range(10, 13))
    assert _fetch(positions, _of(P0, range(4, 20))) == _of(P0, range(4, 20))


def test_a_seek_of_one_partition_leaves_the_others_records_to_be_read() -> None:
    """The consumer's position of a partition that did not move is past the records of the fetch: leaving them
    would lose them until the next restart (and hold its commits back meanwhile)."""
    positions = ReadPositions({})
    interleaved = [record for pair in zip(_of(P0, range(10)), _of(P1, range(10)), strict=True) for record in pair]
    handed = _fetch(positions, interleaved, seek_after=4, seek=(P0, 1))
    assert [offset for tp, offset in handed if tp == P1] == list(range(10))
    assert [offset for tp, offset in handed if tp == P0] == [0, 1]
    assert _fetch(positions, _of(P0, range(1, 10))) == _of(P0, range(1, 10))


def test_only_offsets_without_records_are_a_gap() -> None:
    positions = ReadPositions({})
    assert positions.read(P0, 5) == (True, None)
    assert positions.read(P0, 9) == (True, (6, 8))  # 6, 7 and 8 hold no record (transaction markers, say)
    assert positions.read(P0, 10) == (True, None)
    assert positions.read(P0, 7) == (False, None)


def test_an_assignment_is_read_only_once_its_seek_to_the_committed_offsets_is_done() -> None:
    """Faust resumes the partitions before it seeks them: until the seek is done their records stay in the
    client's buffer; the partitions Faust reads meanwhile (a changelog) are read."""
    awaiting = AwaitingSeek()
    assert awaiting.fetchable({P0, CHANGELOG}) == {P0, CHANGELOG}  # nothing assigned yet
    awaiting.assigned([P0, P1], generation=3)
    assert awaiting.fetchable({P0, P1, CHANGELOG}) == {CHANGELOG}
    assert awaiting.fetchable({P0}) == set()
    assert awaiting.sought(generation=3)
    assert awaiting.fetchable({P0, P1, CHANGELOG}) == {P0, P1, CHANGELOG}
    assert not awaiting.sought(generation=3)  # a later seek of the same assignment changes nothing


def test_a_seek_begun_before_a_new_assignment_releases_nothing_of_it() -> None:
    awaiting = AwaitingSeek()
    awaiting.assigned([P0], generation=3)
    awaiting.assigned([P0, P1], generation=4)  # a rebalance while the seek of generation 3 was under way
    assert not awaiting.sought(generation=3)
    assert awaiting.fetchable({P0, P1}) == set()
    assert awaiting.sought(generation=4)
    assert awaiting.fetchable({P0, P1}) == {P0, P1}


def test_an_assignment_without_leadflows_partitions_holds_nothing() -> None:
    awaiting = AwaitingSeek()
    awaiting.assigned([P0], generation=1)
    awaiting.assigned([], generation=2)  # the partitions went to another worker before their seek
    assert awaiting.fetchable({CHANGELOG}) == {CHANGELOG}
    assert not awaiting.sought(generation=2)
