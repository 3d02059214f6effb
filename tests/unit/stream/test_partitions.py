"""Consumer lag and the oldest unprocessed record, per partition, as the /metrics page reports them."""

from __future__ import annotations

import os
import time

import pytest
from prometheus_client import CollectorRegistry

from worker.batch import Record
from worker.stream._positions import Unprocessed
from worker.stream.metrics import Metrics, PartitionState, consumer_lag, unprocessed_age

NOW = 1_800_000_000.0
P0, P1 = ("leads", 0), ("leads", 1)


@pytest.mark.parametrize(
    ("highwater", "committed", "lag"),
    [
        (0, None, 0),  # an empty partition, nothing committed
        (120, None, 120),  # nothing committed yet: every record from offset 0 (Faust keeps a committed 0 as None)
        (120, 100, 20),
        (120, 120, 0),  # drained and committed
        (100, 120, 0),  # a high watermark older than a commit (the fetch before it): never negative
    ],
)
def test_lag_is_the_high_watermark_minus_the_committed_offset(highwater: int, committed: int | None, lag: int) -> None:
    assert consumer_lag(highwater, committed) == lag


def test_age_is_now_minus_the_record_timestamp_and_0_when_nothing_is_in_hand() -> None:
    assert unprocessed_age(NOW, NOW - 42.5) == 42.5
    assert unprocessed_age(NOW, None) == 0
    assert unprocessed_age(NOW, NOW + 3) == 0  # a producer's clock ahead of ours


def _record(tp: tuple[str, int], offset: int) -> Record:
    return Record(None, None, tp[0], tp[1], offset)


def test_the_first_unprocessed_record_is_the_oldest_until_its_batch_is_processed() -> None:
    unprocessed = Unprocessed(clock=lambda: NOW)
    assert unprocessed.oldest(P0) is None
    for offset, timestamp in [(10, NOW - 30), (11, NOW - 40), (12, NOW - 5)]:  # timestamps need not be in order
        unprocessed.read(P0, offset, timestamp)
    unprocessed.read(P1, 7, NOW - 1)
    assert unprocessed.oldest(P0) == NOW - 30  # the first in line, whatever the others' timestamps
    unprocessed.processed([_record(P0, 10), _record(P0, 11)])  # a batch of 10 and 11 acked
    assert unprocessed.oldest(P0) == NOW - 5
    assert unprocessed.oldest(P1) == NOW - 1  # another partition is its own line
    unprocessed.processed([_record(P0, 12)])
    assert unprocessed.oldest(P0) is None
    unprocessed.processed([_record(P0, 12)])  # acked again: nothing to pop
    assert unprocessed.oldest(P0) is None


def test_a_record_without_a_timestamp_counts_from_when_it_was_read() -> None:
    unprocessed = Unprocessed(clock=lambda: NOW)
    unprocessed.read(P0, 3, -0.001)  # a marker for records the client could not read: no timestamp
    unprocessed.read(P1, 3, None)
    assert unprocessed.oldest(P0) == NOW
    assert unprocessed.oldest(P1) == NOW


def test_revoked_partitions_are_forgotten() -> None:
    unprocessed = Unprocessed()
    unprocessed.read(P0, 1, NOW - 10)
    unprocessed.read(P1, 1, NOW - 10)
    unprocessed.forget([P0])
    assert unprocessed.oldest(P0) is None
    assert unprocessed.oldest(P1) == NOW - 10


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["topic"], s.labels["partition"]): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_the_page_shows_every_assigned_partition_read_when_scraped_and_drops_revoked_ones() -> None:
    registry = CollectorRegistry()
    waiting_since = time.time() - 12
    assigned = [
        PartitionState("leads", 0, highwater=500, committed=450, oldest_unprocessed=waiting_since),
        PartitionState("leads", 1, highwater=80, committed=80, oldest_unprocessed=None),
        PartitionState("feedback", 0, highwater=None, committed=None, oldest_unprocessed=None),  # not fetched yet
    ]
    metrics = Metrics(registry)
    metrics.watch_partitions(lambda: assigned)
    lag = _samples(registry, "leadflow_consumer_lag_records")
    age = _samples(registry, "leadflow_oldest_unprocessed_seconds")
    assert lag == {("leads", "0"): 50, ("leads", "1"): 0}  # no high watermark known: no lag sample
    assert age[("leads", "1")] == 0
    assert age[("feedback", "0")] == 0
    assert 12 <= age[("leads", "0")] < 12 + 600  # the clock is the real one here
    assigned.pop(0)  # a rebalance took leads[0] away
    assert ("leads", "0") not in _samples(registry, "leadflow_consumer_lag_records")
    assert ("leads", "0") not in _samples(registry, "leadflow_oldest_unprocessed_seconds")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process metrics are read from Linux's /proc")
def test_process_cpu_and_memory_are_on_the_workers_registry() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    assert (registry.get_sample_value("process_resident_memory_bytes") or 0) > 0
    assert registry.get_sample_value("process_cpu_seconds_total") is not None
    assert registry.get_sample_value("python_info", _python_info_labels(registry)) == 1


def _python_info_labels(registry: CollectorRegistry) -> dict[str, str]:
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "python_info":
                return sample.labels
    return {}
