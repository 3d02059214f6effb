"""The end-to-end benchmark's rate: a batch pipeline's staircase of outputs is not counted one batch too high."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_e2e import output_rate


def test_batches_of_outputs_give_the_batch_rate_not_one_batch_more() -> None:
    # 6 batches of 10,000 outputs, one every 0.5 s (each batch sent over 20 ms): 20,000 outputs a second
    stamps = [k * 0.5 + i * 0.02 / 10_000 for k in range(6) for i in range(10_000)]
    rate = output_rate(stamps)
    assert rate["events_per_s"] == pytest.approx(20_000, rel=0.01)
    assert rate["span_rate"] == pytest.approx(60_000 / 2.52, rel=0.01)  # the old measure: 19 % too high


def test_outputs_one_by_one_give_the_same_rate_both_ways() -> None:
    stamps = [i / 4_000 for i in range(40_000)]
    rate = output_rate(stamps)
    assert rate["events_per_s"] == pytest.approx(4_000, rel=0.001)
    assert rate["span_rate"] == pytest.approx(4_000, rel=0.001)
