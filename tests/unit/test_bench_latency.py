"""The latency and scaling benchmarks' pure parts: percentiles, the pacer's schedule, what /metrics says."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_latency import due, latencies, metric_totals, percentile, summary
from bench_scaling import assigned_partitions, split_evenly


def test_percentiles_are_nearest_rank_values_that_were_measured() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # no interpolation: the 2nd of 4
    # one slow value in 1,000 is under p99 (the 990th), the 11th slowest would be over it
    assert percentile([1.0] * 990 + [500.0] * 10, 99) == 1.0
    assert percentile([1.0] * 989 + [500.0] * 11, 99) == 500.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="not in"):
        percentile([1.0], 0)


def test_summary_reports_the_tail_and_the_count() -> None:
    stats = summary([float(v) for v in range(1, 1001)])
    assert stats == {"n": 1000.0, "p50": 500.0, "p90": 900.0, "p99": 990.0, "max": 1000.0}


def test_the_pacer_sends_evenly_and_catches_up_after_a_late_wake_up() -> None:
    rate, total = 100.0, 50
    assert due(-0.001, rate, total) == 0
    assert due(0.0, rate, total) == 1  # the first at once
    assert due(0.0099, rate, total) == 1
    assert due(0.01, rate, total) == 2  # send i at i / rate
    assert due(0.1, rate, total) == 11  # no drift from float steps: 0.1 * 100 is 10 due after the first
    assert due(0.3549, rate, total) == 36  # woke up late: every send due by now at once, the pace kept after
    assert due(100.0, rate, total) == total
    # over a second at 1,000/s, the sends come one per ms
    assert [due(k / 1000, 1000.0, 10_000) for k in range(5)] == [1, 2, 3, 4, 5]


def test_latencies_match_sends_to_decisions_by_event_id() -> None:
    sent = {"a": 100.000, "b": 100.010, "c": 100.020}
    decided = {"a": 100_012, "b": 100_030, "x": 1}  # ms; c has none, x was not sent in this phase
    ms, missing = latencies(sent, decided)
    assert ms == pytest.approx([12.0, 20.0])
    assert missing == 1


METRICS = """# HELP leadflow_batch_events Events per batch
# TYPE leadflow_batch_events histogram
leadflow_batch_events_bucket{le="1.0"} 3.0
leadflow_batch_events_count 12.0
leadflow_batch_events_sum 340.0
leadflow_oldest_unprocessed_seconds{partition="0",topic="src-1"} 0.0
leadflow_oldest_unprocessed_seconds{partition="3",topic="src-1"} 1.5
leadflow_oldest_unprocessed_seconds{partition="1",topic="leadflow-lead-state-changelog"} 0.0
leadflow_event_latency_seconds_sum{} 2.5
"""


def test_metric_totals_sum_each_named_sample() -> None:
    totals = metric_totals(METRICS, ["leadflow_batch_events_count", "leadflow_batch_events_sum", "absent"])
    assert totals == {"leadflow_batch_events_count": 12.0, "leadflow_batch_events_sum": 340.0, "absent": 0.0}
    assert metric_totals(METRICS, ["leadflow_event_latency_seconds_sum"]) == {"leadflow_event_latency_seconds_sum": 2.5}


def test_assignments_are_read_per_topic_and_must_split_the_topic() -> None:
    assert assigned_partitions(METRICS, "src-1") == {0, 3}
    assert assigned_partitions(METRICS, "other") == set()
    assert assigned_partitions("", "src-1") == set()
    assert split_evenly([{0, 3}, {1, 2}], 4)
    assert split_evenly([{0, 1, 2, 3}], 4)
    assert not split_evenly([{0, 1, 2, 3}, set()], 4)  # the second process has nothing yet
    assert not split_evenly([{0, 1, 2}, {2, 3}], 4)  # both think they have 2: a rebalance under way
    assert not split_evenly([{0}, {1}], 4)
