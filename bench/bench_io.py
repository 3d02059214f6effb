"""What reading and writing the JSON alone costs, against the 6.7 µs an event that 150,000 events/s leaves (issue #21).

Over the synthetic sample's first events and the decisions the core writes for them, one core:
  loads     orjson.loads of each event (no validation): the least a per-event decoder costs
  parse     the contract's parse_event (pydantic-core, validation included): what the reference does
  fast      the columnar engine's decoder (msgspec, the contract's lead activities checked in C; pydantic for the
            rest): what the columnar engine does
  arrow     pyarrow.json.read_json of the whole batch as JSON lines, one thread: the events decoded into columns
  polars    polars.read_ndjson of the whole batch as JSON lines: the events decoded into columns by polars
  ids       the decision id of each event (a UUID5: SHA-1 of the lead and event ids), which any engine computes
  dumps     orjson.dumps of each decision (dicts decoded beforehand): the least a per-event encoder costs
  frame     the decisions' columns (flat Python lists: one per field, the factors' and matched rules' values with
            their offsets, as a columnar engine would hold them) made into a polars DataFrame through Arrow
  write     polars' write_ndjson of that DataFrame: the decisions encoded in bulk from columns (the same bytes
            as orjson's, checked by same_bytes())
  core      process_batch, the reference core, over the same events in one batch (a fresh state for each lead)

The garbage collector runs as in the worker (LEADFLOW_GC_THRESHOLD; Python's default collector makes every stage
that builds objects about twice as slow). The target is an absolute rate on a quiet machine, and this machine is
shared: the reference core's rate on a quiet day (REFERENCE_QUIET, bench_core's `batch`) sets the ratio the target
asks for, and each stage is shown against the budget that ratio leaves in this run (the core's µs an event in this
run divided by that ratio).

    python bench/bench_io.py [--events 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.json as arrow_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_core import best_rate  # noqa: E402

from worker.batch import Record, process_batch  # noqa: E402
from worker.columnar._decode import fast_parsed  # noqa: E402
from worker.core import Engine  # noqa: E402
from worker.engine import tune_gc  # noqa: E402
from worker.lead.ids import decision_id  # noqa: E402
from worker.lead.parse import parse_event  # noqa: E402
from worker.rules import default_ruleset_path, load_ruleset  # noqa: E402
from worker.scoring import default_model_path, load_model  # noqa: E402
from worker.scoring.training import generate  # noqa: E402
from worker.settings import Settings  # noqa: E402

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
    everything = list(range(len(records)))
    lines = b"\n".join(values)
    options = arrow_json.ReadOptions(use_threads=False, block_size=len(lines) + 1)
    columns = decision_columns(decisions)
    frame = decision_frame(columns)
    return {
        "loads": lambda: [orjson.loads(v) for v in values],
        "parse": lambda: [parse_event(k, v) for k, v in raw],
        "fast": lambda: fast_parsed(records, everything, engine.max_event_bytes, {}),
        "arrow": lambda: arrow_json.read_json(io.BytesIO(lines), read_options=options),
        "polars": lambda: pl.read_ndjson(io.BytesIO(lines), infer_schema_length=None),
        "ids": lambda: [decision_id(d["lead_id"], d["event_id"]) for d in decisions],
        "dumps": lambda: [orjson.dumps(d) for d in decisions],
        "frame": lambda: decision_frame(columns),
        "write": lambda: frame.write_ndjson(),
        "core": lambda: process_batch(engine, records, stored.get, 1.0),
    }


_FACTOR = pl.Struct({"feature": pl.String(), "label": pl.String(), "contribution": pl.Float64()})
_DECISION_SCHEMA: dict[str, pl.DataType] = {
    "schema_version": pl.Int64(),
    "decision_id": pl.String(),
    "event_id": pl.String(),
    "lead_id": pl.String(),
    "decided_at": pl.String(),
    "occurred_at": pl.String(),
    "ruleset_version": pl.String(),
    "model_version": pl.String(),
    "status": pl.String(),
    "previous_status": pl.String(),
    "points": pl.Float64(),
    "score": pl.Float64(),
    "factors": pl.List(_FACTOR),
    "matched_rules": pl.List(pl.String()),
    "action": pl.String(),
    "opportunity_id": pl.String(),
    "duplicate_of": pl.String(),
    "trigger": pl.String(),
}
"""The decision's fields in the order the core writes them, typed (a column of nulls keeps its type)."""


Columns = dict[str, list[Any]]


def decision_columns(decisions: list[dict[str, Any]]) -> Columns:
    """The decisions as flat lists, in the core's key order: one per plain field; the factors' features, labels and
    contributions and the matched rules' ids each as one list of values with its offsets (``<field>.offsets``)."""
    keys = list(decisions[0]) if decisions else list(_DECISION_SCHEMA)
    if keys != list(_DECISION_SCHEMA):
        msg = f"the decision's fields changed ({keys}): update _DECISION_SCHEMA"
        raise ValueError(msg)
    columns: Columns = {key: [d[key] for d in decisions] for key in keys if key not in ("factors", "matched_rules")}
    for key, parts in (("factors", ("feature", "label", "contribution")), ("matched_rules", ())):
        offsets = [0]
        for d in decisions:
            offsets.append(offsets[-1] + len(d[key]))
        columns[key + ".offsets"] = offsets
        if parts:
            for part in parts:
                columns[f"{key}.{part}"] = [item[part] for d in decisions for item in d[key]]
        else:
            columns[key] = [item for d in decisions for item in d[key]]
    return columns


def decision_frame(columns: Columns) -> pl.DataFrame:
    """The decisions' columns as one polars DataFrame in the core's field order, built through Arrow arrays."""
    arrays: dict[str, pa.Array] = {}
    for key, kind in _DECISION_SCHEMA.items():
        if key == "factors":
            values = pa.StructArray.from_arrays(
                [pa.array(columns[f"factors.{part}"], _ARROW[part]) for part in ("feature", "label", "contribution")],
                names=["feature", "label", "contribution"],
            )
            arrays[key] = pa.ListArray.from_arrays(pa.array(columns["factors.offsets"], pa.int32()), values)
        elif key == "matched_rules":
            offsets = pa.array(columns["matched_rules.offsets"], pa.int32())
            arrays[key] = pa.ListArray.from_arrays(offsets, pa.array(columns[key], pa.string()))
        else:
            arrays[key] = pa.array(columns[key], _ARROW[str(kind)])
    frame = pl.from_arrow(pa.table(arrays))
    assert isinstance(frame, pl.DataFrame)  # a table gives a frame
    return frame


_ARROW = {
    "String": pa.string(),
    "Float64": pa.float64(),
    "Int64": pa.int64(),
    "feature": pa.string(),
    "label": pa.string(),
    "contribution": pa.float64(),
}


def same_bytes(decisions: list[dict[str, Any]]) -> bool:
    """Whether polars' JSON lines of the decisions' columns are orjson's bytes of each decision, line by line."""
    written = decision_frame(decision_columns(decisions)).write_ndjson().encode()
    return written.splitlines() == [orjson.dumps(d) for d in decisions]


def decisions_of(events: int) -> list[dict[str, Any]]:
    """The decisions the reference core writes for the sample's first ``events`` events, decoded."""
    leads = events // 25 + 1
    while len(data := generate(leads, seed=11, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6).events) < events:
        leads *= 2
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    records = [Record(e["lead_id"].encode(), orjson.dumps(e), "leads", 0, i) for i, e in enumerate(data[:events])]
    stored: dict[str, bytes] = {}
    return [orjson.loads(v) for _, v in process_batch(engine, records, stored.get, 1.0).decisions]


def measure(events: int, repeat: int) -> dict[str, float]:
    """Microseconds an event of each stage (the fastest of ``repeat`` runs, as bench_core times its stages)."""
    return {name: 1e6 / best_rate(events, fn, repeat) for name, fn in stages(events).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tune_gc(Settings().gc_threshold)  # the worker's collector (LEADFLOW_GC_THRESHOLD), as bench_core runs
    micros = measure(args.events, args.repeat)
    decisions = decisions_of(args.events)
    budget = micros["core"] / (TARGET / REFERENCE_QUIET)
    print(f"{args.events:,} events of the synthetic sample; best of {args.repeat} runs; one core")
    ratio = TARGET / REFERENCE_QUIET
    print(f"budget: the core's {micros['core']:.1f} µs/event in this run / {ratio:.1f} = {budget:.1f} µs")
    for name, us in micros.items():
        print(f"  {name:<6} {1e6 / us:>10,.0f} events/s  {us:6.2f} µs/event  {us / budget:6.0%} of the budget")
    floor = micros["loads"] + micros["dumps"]
    print(f"JSON in and out, per event at the least: {floor:.2f} µs ({floor / budget:.0%} of the budget)")
    floor += micros["ids"]
    print(f"with the decision ids: {floor:.2f} µs ({floor / budget:.0%} of the budget)")
    bulk = micros["write"]
    print(f"decisions written in bulk from columns: {bulk:.2f} µs ({micros['dumps'] / bulk:.1f}x faster than orjson)")
    print(f"polars' lines are orjson's bytes for all {len(decisions):,} decisions: {same_bytes(decisions)}")


if __name__ == "__main__":
    main()
