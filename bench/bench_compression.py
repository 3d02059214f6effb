"""Kafka's codecs on leadflow's own outputs: size, and CPU to compress and decompress, per codec and client.

The payloads are what the core produces for the demo's synthetic sample (2,000 leads, seed 42, six weeks; the
shipped ruleset and model): decisions, opportunities and lead states (the changelog), decided in batches of
``--batch`` events (LEADFLOW_BATCH_SIZE) as a worker does. They are cut into record batches the way the worker's
producer cuts them: per topic and partition (murmur2 of the key), up to 512 KiB each (the Outbox's
``max_batch_size``), built by aiokafka's record batch builder. Two shapes:

  backlog  a busy worker: each decided batch's records per partition, in 512 KiB record batches
  live     a quiet stream: a fetch of a few events, so a few records (``--live``) per record batch

For each codec, on each record batch's records (what a v2 batch compresses; its 61-byte header stays as it is):
  ratio     bytes of the batch compressed / uncompressed (header included), what the broker stores and sends,
            as aiokafka compresses (the worker's producers); in the summary also as kafka-python does
  comp      CPU to compress, µs per record, with the codec functions of aiokafka (cramjam: the worker's
            producers and consumers) and of kafka-python (lz4, python-snappy, zstandard: `leadflow produce`, the
            whole-topic readers)
  dec       CPU to decompress, µs per record, likewise

Building and parsing the records costs the same with every codec, so only the codec's own CPU is timed
(process CPU time, the best of ``--repeat``). The libraries' levels are their defaults, which differ: aiokafka
compresses gzip at level 9, lz4 at 9 (LZ4HC) and zstd at 3; kafka-python gzip at 9, lz4 at its fast level 0 and
zstd at 3.

    python bench/bench_compression.py [--leads 2000] [--batch 10000] [--live 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
from aiokafka import codec as aio_codec
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka import codec as kp_codec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.batch import Record, process_batch  # noqa: E402
from worker.core import Engine  # noqa: E402
from worker.rules import default_ruleset_path, load_ruleset  # noqa: E402
from worker.scoring import default_model_path, load_model  # noqa: E402
from worker.scoring.training import generate  # noqa: E402

HEADER = 61  # bytes of a v2 record batch's header, before its (compressed) records
MAX_BATCH = 512 * 1024  # the Outbox producers' max_batch_size
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
Codec = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]
CLIENTS: dict[str, dict[str, Codec]] = {
    "aiokafka": {
        "gzip": (aio_codec.gzip_encode, aio_codec.gzip_decode),
        "snappy": (aio_codec.snappy_encode, aio_codec.snappy_decode),
        "lz4": (aio_codec.lz4_encode, aio_codec.lz4_decode),
        "zstd": (aio_codec.zstd_encode, aio_codec.zstd_decode),
    },
    "kafka-python": {
        "gzip": (kp_codec.gzip_encode, kp_codec.gzip_decode),
        "snappy": (kp_codec.snappy_encode, kp_codec.snappy_decode),
        "lz4": (kp_codec.lz4_encode, kp_codec.lz4_decode),
        "zstd": (kp_codec.zstd_encode, kp_codec.zstd_decode),
    },
}
CPU_COLUMNS = (
    ("aiokafka", "comp", 15),
    ("aiokafka", "dec", 6),
    ("kafka-python", "comp", 19),
    ("kafka-python", "dec", 6),
)
CPU_HEADER = "".join(
    f"{(client + ' ' if what == 'comp' else '') + what:>{width}}" for client, what, width in CPU_COLUMNS
)
NEAR = 0.05  # a codec whose output is within 5 % of the smallest counts as small as the smallest
Batch = tuple[int, bytes]  # (records in it, the whole record batch, uncompressed)


def outputs(leads: int, batch: int) -> tuple[int, dict[str, list[list[tuple[bytes, bytes]]]]]:
    """The sample's events, and per payload the (key, value) records of each decided batch."""
    data = generate(leads, seed=42, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6)
    raw = [Record(e["lead_id"].encode(), orjson.dumps(e), "leads", 0, i) for i, e in enumerate(data.events)]
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    store: dict[str, bytes] = {}
    cache: dict[str, dict[str, object]] = {}
    out: dict[str, list[list[tuple[bytes, bytes]]]] = {"decisions": [], "opportunities": [], "lead states": []}
    for start in range(0, len(raw), batch):
        result = process_batch(engine, raw[start : start + batch], store.get, time.time(), cache)
        store.update(result.states)
        out["decisions"].append(result.decisions)
        out["opportunities"].append(result.opportunities)
        out["lead states"].append([(k.encode(), v) for k, v in result.states.items()])
    return len(raw), out


def record_batches(decided: list[list[tuple[bytes, bytes]]], partitions: int, live: int | None) -> list[Batch]:
    """Record batches as the worker's producer builds them: per partition, full (512 KiB) or of ``live`` records."""
    batches: list[Batch] = []
    for records in decided:
        by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for key, value in records:
            by_partition[(murmur2(key) & 0x7FFFFFFF) % partitions].append((key, value))
        for group in by_partition.values():
            builder, count = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, MAX_BATCH), 0
            for key, value in group:
                full = live is not None and count == live
                if full or builder.append(count, None, key=key, value=value, headers=[]) is None:
                    batches.append((count, bytes(builder.build())))
                    builder, count = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, MAX_BATCH), 0
                    builder.append(count, None, key=key, value=value, headers=[])
                count += 1
            if count:
                batches.append((count, bytes(builder.build())))
    return batches


def best_cpu(fn: Callable[[], object], repeat: int) -> float:
    """Process CPU seconds of the fastest of ``repeat`` runs (the least disturbed by the shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def measure(batches: Sequence[Batch], codec: str, repeat: int) -> dict[str, float]:
    """Compressed bytes, and compress and decompress CPU seconds per client, over ``batches``."""
    sections = [b[HEADER:] for _, b in batches]
    plain = sum(HEADER + len(s) for s in sections)
    if codec == "none":
        return {"bytes": plain, "plain": plain, "kafka-python bytes": plain}
    result: dict[str, float] = {"plain": plain}
    for client, codecs in CLIENTS.items():
        encode, decode = codecs[codec]
        packed = [encode(s) for s in sections]
        assert [decode(p) for p in packed] == sections, f"{client} {codec}: not the same bytes back"
        stored = sum(HEADER + min(len(p), len(s)) for p, s in zip(packed, sections, strict=True))
        result["bytes" if client == "aiokafka" else f"{client} bytes"] = stored
        result[f"{client} comp"] = best_cpu(lambda: [encode(s) for s in sections], repeat)  # noqa: B023
        result[f"{client} dec"] = best_cpu(lambda: [decode(p) for p in packed], repeat)  # noqa: B023
    return result


def cpu_cells(measured: dict[str, float], per: int) -> str:
    """The comp and dec columns of each client: µs of CPU per record or per event (``per`` of them)."""
    return "".join(
        f"{1e6 * measured[f'{client} {what}'] / per:{width}.2f}"
        if f"{client} {what}" in measured
        else f"{'-':>{width}}"
        for client, what, width in CPU_COLUMNS
    )


def check_round_trip(batch: bytes) -> None:
    """A record batch through aiokafka's real builder and reader in each codec: the codec is set, the records return."""
    records = [(r.key, r.value) for r in DefaultRecordBatch(batch)]
    for codec, ident in CODEC_IDS.items():
        builder = DefaultRecordBatchBuilder(2, ident, 0, -1, -1, 0, MAX_BATCH)
        for i, (key, value) in enumerate(records):
            builder.append(i, None, key=key, value=value, headers=[])
        built = DefaultRecordBatch(bytes(builder.build()))
        assert built.compression_type == ident, f"{codec}: the batch says codec {built.compression_type}"
        assert [(r.key, r.value) for r in built] == records, f"{codec}: records differ after a round trip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10_000, help="events decided at once (LEADFLOW_BATCH_SIZE)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the output topics")
    parser.add_argument("--live", type=int, default=4, help="records per record batch on a quiet stream")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    events, decided = outputs(args.leads, args.batch)
    print(
        f"{events:,} events of {args.leads:,} leads decided in batches of {args.batch:,}; {args.partitions} partitions;"
        f" best of {args.repeat} runs, process CPU (Python {sys.version.split()[0]})"
    )
    totals: dict[str, dict[str, dict[str, float]]] = {}
    for shape, live in (("backlog", None), ("live", args.live)):
        print(f"\n{shape}: " + ("record batches of up to 512 KiB" if live is None else f"{live} records a batch"))
        print(
            f"  {'payload':<14}{'codec':<8}{'batches':>8}{'rec/batch':>10}{'KiB/batch':>10}{'ratio':>7}{CPU_HEADER}"
            "   (µs a record)"
        )
        shape_totals = totals.setdefault(shape, {})
        for payload, per_batch in decided.items():
            batches = record_batches(per_batch, args.partitions, live)
            records = sum(n for n, _ in batches)
            if not records:
                continue
            check_round_trip(batches[0][1])
            for codec in CODEC_IDS:
                m = measure(batches, codec, args.repeat)
                total = shape_totals.setdefault(codec, defaultdict(float))
                for name, value in m.items():
                    total[name] += value
                print(
                    f"  {payload:<14}{codec:<8}{len(batches):>8,}{records / len(batches):>10,.1f}"
                    f"{m['plain'] / len(batches) / 1024:>10,.1f}{m['bytes'] / m['plain']:>7.3f}{cpu_cells(m, records)}"
                )
    print(f"\nall outputs, per decided event ({events:,} events)")
    print(f"  {'shape':<9}{'codec':<8}{'bytes':>8}{'ratio':>7}{CPU_HEADER}{'kafka-python ratio':>20}")
    for shape, by_codec in totals.items():
        for codec, t in by_codec.items():
            print(
                f"  {shape:<9}{codec:<8}{t['bytes'] / events:>8,.0f}{t['bytes'] / t['plain']:>7.3f}"
                + cpu_cells(t, events)
                + f"{t['kafka-python bytes'] / t['plain']:>20.3f}"
            )
    print("  (bytes: what the broker stores and sends per event; comp, dec: µs of CPU per event)")
    backlog = totals["backlog"]
    smallest = min(t["bytes"] for t in backlog.values())
    near = [c for c, t in backlog.items() if c != "none" and t["bytes"] <= smallest * (1 + NEAR)]
    best = min(near, key=lambda c: backlog[c]["aiokafka comp"])
    print(
        f"\nfits best: {best} (of the codecs within {NEAR:.0%} of the smallest backlog output, the one the worker's"
        " producers (aiokafka) compress with the least CPU)"
    )


if __name__ == "__main__":
    main()
