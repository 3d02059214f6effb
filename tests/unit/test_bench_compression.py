"""The compression benchmark cuts record batches as the worker's producer does, and loses no record."""

from __future__ import annotations

import sys
from pathlib import Path

from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_compression import MAX_BATCH, measure, record_batches


def test_record_batches_are_per_partition_full_or_of_the_live_size_and_hold_every_record() -> None:
    decided = [[(f"L-{i}".encode(), b"x" * 3000) for i in range(1600)], [(b"L-1", b"y" * 10)]]  # 1.2 MB a partition
    every = [record for batch in decided for record in batch]

    for live in (None, 4):
        batches = record_batches(decided, 4, live)
        read = [[(r.key, r.value) for r in DefaultRecordBatch(batch)] for _, batch in batches]
        assert sorted(r for records in read for r in records) == sorted(every)
        partitions = []
        for (count, batch), records in zip(batches, read, strict=True):
            assert count == len(records)
            (partition,) = {(murmur2(k) & 0x7FFFFFFF) % 4 for k, _ in records}  # one partition a batch
            partitions.append(partition)
            assert len(batch) <= MAX_BATCH
            assert count <= 4 if live else count > 1 or records == [(b"L-1", b"y" * 10)]
        if live is None:  # full: no batch of a partition could have taken the next one's records
            for i in range(len(batches) - 1):
                if partitions[i] == partitions[i + 1] and read[i + 1] != [(b"L-1", b"y" * 10)]:
                    assert len(batches[i][1]) + len(batches[i + 1][1]) > MAX_BATCH


def test_measure_compresses_and_times_each_client() -> None:
    batches = record_batches([[(f"L-{i}".encode(), b'{"status": "Open"}' * 20) for i in range(50)]], 1, None)
    plain, zstd = measure(batches, "none", 1), measure(batches, "zstd", 1)
    assert plain["bytes"] == plain["plain"] == zstd["plain"] > 4 * zstd["bytes"]
    assert {"aiokafka comp", "aiokafka dec", "kafka-python comp", "kafka-python dec"} <= set(zstd)
