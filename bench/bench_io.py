"""What reading and writing the JSON alone costs, against the 6.7 µs an event that 150,000 events/s leaves (issue #21).

Over the synthetic sample's first events and the decisions the core writes for them, one core:
  loads     orjson.loads of each event (no validation): the least a per-event decoder costs
  parse     the contract's parse_event (pydantic-core, validation included): what the core does today
  arrow     pyarrow.json.read_json of the whole batch as JSON lines, one thread: the events decoded into columns
  dumps     orjson.dumps of each decision (dicts decoded beforehand): the least a per-event encoder costs
  core      process_batch, the reference core, over the same events in one batch (a fresh state for each lead)

The target is an absolute rate on a quiet machine, and this machine is shared: the reference core's rate on a quiet
day (REFERENCE_QUIET, bench_core's `batch`) sets the ratio the target asks for, and each stage is shown against the
budget that ratio leaves in this run (the core's µs an event in this run divided by that ratio).

    python bench/bench_io.py [--events 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow.json as arrow_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_core import best_rate  # noqa: E402

from worker.batch import Record, process_batch  # noqa: E402
from worker.core import Engine  # noqa: E402
from worker.lead.parse import parse_event  # noqa: E402
from worker.rules import default_ruleset_path, load_ruleset  # noqa: E402
from worker.scoring import default_model_path, load_model  # noqa: E402
from worker.scoring.training import generate  # noqa: E402

TARGET = 150_000
"""Events a second on one core: issue #21's target for the whole core."""
REFERENCE_QUIET = 24_612
"""bench_core's `batch` on a quiet day of the 2-core build machine (docs/PERFORMANCE.md)."""


def stages(events: int) -> dict[str, Callable[[], object]]:
    """One function per stage, each over the same ``events`` events (or their decisions)."""
    leads = events // 25 + 1
    while len(data := generate(leads, seed=11, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6).events) < events:
        leads *= 2
    raw = [(e["lead_id"].encode(), orjson.dumps(e)) for e in data][:events]
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    records = [Record(k, v, "leads", 0, i) for i, (k, v) in enumerate(raw)]
    stored: dict[str, bytes] = {}
    decisions = [orjson.loads(v) for _, v in process_batch(engine, records, stored.get, 1.0).decisions]
    values = [v for _, v in raw]
    lines = b"\n".join(values)
    options = arrow_json.ReadOptions(use_threads=False, block_size=len(lines) + 1)
    return {
        "loads": lambda: [orjson.loads(v) for v in values],
        "parse": lambda: [parse_event(k, v) for k, v in raw],
        "arrow": lambda: arrow_json.read_json(io.BytesIO(lines), read_options=options),
        "dumps": lambda: [orjson.dumps(d) for d in decisions],
        "core": lambda: process_batch(engine, records, stored.get, 1.0),
    }


def measure(events: int, repeat: int) -> dict[str, float]:
    """Microseconds an event of each stage (the fastest of ``repeat`` runs, as bench_core times its stages)."""
    return {name: 1e6 / best_rate(events, fn, repeat) for name, fn in stages(events).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    micros = measure(args.events, args.repeat)
    budget = micros["core"] / (TARGET / REFERENCE_QUIET)
    print(f"{args.events:,} events of the synthetic sample; best of {args.repeat} runs; one core")
    ratio = TARGET / REFERENCE_QUIET
    print(f"budget: the core's {micros['core']:.1f} µs/event in this run / {ratio:.1f} = {budget:.1f} µs")
    for name, us in micros.items():
        print(f"  {name:<6} {1e6 / us:>10,.0f} events/s  {us:6.2f} µs/event  {us / budget:6.0%} of the budget")
    floor = micros["loads"] + micros["dumps"]
    print(f"JSON in and out, per event at the least: {floor:.2f} µs ({floor / budget:.0%} of the budget)")


if __name__ == "__main__":
    main()
