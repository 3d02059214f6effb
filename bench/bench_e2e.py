"""End-to-end throughput: leadflow against two references, on one embedded broker, in one run.

For each pipeline the same N events are put on a fresh source topic first; then the pipeline's process starts
and we watch its output topic grow (its end offsets, not its records: reading them meanwhile would take a core's
share away from the pipeline). Throughput = the slope of outputs so far against time, fitted to the output
records' own timestamps (read afterwards), so start-up and group joins are not counted, nor is the step of a
batch pipeline's first batch (see ``output_rate``). CPU is the process's user+system time over the span in which
the output grew, as a share of one core.

``leadflow`` is the worker with ``LEADFLOW_ENGINE=reference``, ``columnar`` the same worker with
``LEADFLOW_ENGINE=columnar`` (issue #21): both engines are compared in one run.

    python bench/bench_e2e.py [--events 40000] [--leads 2000] [--rounds 3] [--only leadflow --only columnar ...]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.scoring.training import generate  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.stream.topics import ensure_topics  # noqa: E402
from worker.tools.broker import free_port, running_broker  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_events(n: int, leads: int) -> list[tuple[bytes, bytes]]:
    import datetime as dt

    data = generate(leads, seed=11, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=8)
    out = [(e["lead_id"].encode(), orjson.dumps(e)) for e in data.events]
    while len(out) < n:  # more events than the sample has: replay it under new event ids
        k = len(out)
        e = dict(data.events[k % len(data.events)])
        e["event_id"] = f"{e['event_id']}-r{k}"
        out.append((e["lead_id"].encode(), orjson.dumps(e)))
    return out[:n]


PIPELINES = ("faust", "raw", "leadflow", "columnar")
"""What ``--only`` picks, in the order a run takes them: the two references, then the worker on each engine."""

LEADFLOW_RUN = (sys.executable, "-m", "worker", "run")
"""The worker process the benchmarks run (``leadflow run``)."""


def bench_settings(broker_url: str, name: str) -> tuple[Settings, str]:
    """Settings naming fresh topics and a fresh consumer group for one run of ``name``, and the run's id."""
    run_id = uuid.uuid4().hex[:8]
    settings = Settings(
        broker_url=broker_url,
        app_id=f"bench-{name}-{run_id}",
        topic_leads=f"src-{run_id}",
        topic_decisions=f"out-{run_id}",
        topic_opportunities=f"opp-{run_id}",
        topic_dlq=f"dlq-{run_id}",
    )
    return settings, run_id


def leadflow_env(settings: Settings, run_id: str, state_dir: str | None = None) -> dict[str, str]:
    """The environment of a ``leadflow run`` worker on ``settings``' topics: RocksDB state in its own directory
    (``state_dir``, default one per run), its own metrics port, a short session timeout, warnings only."""
    return {
        "LEADFLOW_BROKER_URL": settings.broker_url,
        "LEADFLOW_APP_ID": settings.app_id,
        "LEADFLOW_TOPIC_LEADS": settings.topic_leads,
        "LEADFLOW_TOPIC_DECISIONS": settings.topic_decisions,
        "LEADFLOW_TOPIC_OPPORTUNITIES": settings.topic_opportunities,
        "LEADFLOW_TOPIC_DLQ": settings.topic_dlq,
        "LEADFLOW_STORE": "rocksdb",
        "LEADFLOW_STATE_DIR": state_dir or f"/tmp/bench-state-{run_id}",
        "LEADFLOW_WEB_PORT": str(free_port()),
        "LEADFLOW_WEB_HOST": "127.0.0.1",
        "LEADFLOW_SESSION_TIMEOUT": "2",
        "LEADFLOW_HEARTBEAT_INTERVAL": "0.5",
        "LEADFLOW_LOG_LEVEL": "WARNING",
    }


def setting_overrides(items: list[str]) -> dict[str, str]:
    """``LEADFLOW_NAME`` variables from ``NAME=VALUE`` items (``--set``), each checked against the settings now, so
    that a typo fails here and not in the process started later."""
    extra = {}
    for item in items:
        name, _, value = item.partition("=")
        extra[f"LEADFLOW_{name.upper().removeprefix('LEADFLOW_')}"] = value
        Settings.model_validate({name.lower().removeprefix("leadflow_"): value})
    return extra


def run_pipeline(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    settings: Settings,
    sink: str,
    events: list[tuple[bytes, bytes]],
    timeout: float,
) -> dict[str, float]:
    ensure_topics(settings, [settings.topic_leads, sink, settings.topic_opportunities, settings.topic_dlq])
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5, batch_size=512 * 1024)
    for key, value in events:
        producer.send(settings.topic_leads, key=key, value=value)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    partitions = [TopicPartition(sink, p) for p in sorted(consumer.partitions_for_topic(sink) or ())]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    log = open(f"/tmp/bench-{name}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    stamps: list[float] = []
    cpu_first = cpu_last = None
    seen_first = seen_last = 0.0
    deadline = time.monotonic() + timeout
    ends = -1
    try:
        while len(stamps) < len(events):
            # Watch the sink's end offsets while the pipeline runs (one small request every 0.1 s) instead of
            # consuming its output meanwhile: decoding 60,000 records took 60 % of a core away from the
            # pipelines. The records, with the timestamps that time the run, are read once the output stops
            # growing (ListOffsets may lag by a batch on the embedded broker, so they are what is counted).
            quiet_since = time.monotonic()
            while ends <= 0 or time.monotonic() - quiet_since < 1.5:  # until the output grew, then stopped
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"{name}: {len(stamps)} of {len(events)} outputs; see /tmp/bench-{name}.log")
                now_ends = sum(consumer.end_offsets(partitions).values())
                if now_ends != ends:
                    ends, quiet_since = now_ends, time.monotonic()
                    if now_ends > 0:
                        cpu_last, seen_last = cpu_seconds(process.pid), time.monotonic()
                        if cpu_first is None:
                            cpu_first, seen_first = cpu_last, seen_last
                time.sleep(0.1)
            while True:
                batches = consumer.poll(timeout_ms=500, max_records=50_000)
                if not batches:
                    break
                for records in batches.values():
                    stamps.extend(r.timestamp / 1000 for r in records)
    finally:
        if cmd[0] == "py-spy":
            process.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
        else:
            process.terminate()
        process.wait(30)
        consumer.close()
    if len(stamps) < 2 or cpu_first is None or cpu_last is None:
        raise SystemExit(f"{name}: no output seen; see /tmp/bench-{name}.log")
    cpu_span = max(1e-9, seen_last - seen_first)  # between the first and the last poll that saw the output grow
    return {**output_rate(stamps), "cpu_share": (cpu_last - cpu_first) / cpu_span}


def output_rate(stamps: list[float]) -> dict[str, float]:
    """Outputs per second from the output records' timestamps: the slope of a line fitted to (time, outputs so far).

    A batch pipeline's outputs come in steps, one per batch: outputs / (last − first) counts one batch more than
    the time between the first and the last output spans (with 12 batches of 5,000, 9 % too high); the fitted
    slope of the staircase is not biased that way, and equals outputs / span for outputs that come one by one.
    """
    times = np.sort(np.asarray(stamps, dtype=np.float64))
    times -= times[0]
    slope = float(np.polyfit(times, np.arange(len(times), dtype=np.float64), 1)[0])
    span = max(1e-9, float(times[-1]))
    return {"events_per_s": slope, "span_rate": len(times) / span, "seconds": span}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--leads", type=int, default=2_000)
    parser.add_argument("--only", choices=PIPELINES, action="append")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--py-spy", metavar="FILE", help="record the leadflow worker with py-spy (installed separately) into FILE"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="run every pipeline this many times, interleaved; report the best"
    )
    args = parser.parse_args()
    events = load_events(args.events, args.leads)
    results: dict[str, dict[str, float]] = {}
    names = (args.only or list(PIPELINES)) * args.rounds
    with running_broker() as broker:
        for name in names:
            settings, run_id = bench_settings(broker.url, name)
            env = {
                "BENCH_BROKER": broker.url,
                "BENCH_SOURCE": settings.topic_leads,
                "BENCH_SINK": settings.topic_decisions,
                "BENCH_ID": run_id,
            }
            if name in {"leadflow", "columnar"}:
                cmd = list(LEADFLOW_RUN)
                if args.py_spy:
                    cmd = ["py-spy", "record", "--format", "raw", "--rate", "250", "-o", args.py_spy, "--", *cmd]
                env.update(leadflow_env(settings, run_id))
                env["LEADFLOW_ENGINE"] = "columnar" if name == "columnar" else "reference"
            elif name == "faust":
                cmd = [sys.executable, str(ROOT / "bench" / "ref_faust_forward.py")]
            else:
                cmd = [sys.executable, str(ROOT / "bench" / "ref_raw_aiokafka.py")]
            r = run_pipeline(name, cmd, env, settings, settings.topic_decisions, events, args.timeout)
            if name not in results or r["events_per_s"] > results[name]["events_per_s"]:
                results[name] = r
            print(
                f"{name:9s} {r['events_per_s']:9,.0f} events/s  ({r['seconds']:.1f}s, "
                f"outputs/span {r['span_rate']:,.0f}, "
                f"process CPU {r['cpu_share']:.0%} of a core)",
                flush=True,
            )
    if args.rounds > 1:
        print(f"best of {args.rounds}:")
        for name, r in results.items():
            print(f"{name:9s} {r['events_per_s']:9,.0f} events/s  (process CPU {r['cpu_share']:.0%} of a core)")
    for worker in ("leadflow", "columnar"):
        if {worker, "faust", "raw"} <= results.keys():
            rate = results[worker]["events_per_s"]
            print(f"{worker} / faust per-event forward = {rate / results['faust']['events_per_s']:.2f}x")
            print(f"{worker} / raw aiokafka loop       = {rate / results['raw']['events_per_s']:.2f}x")


if __name__ == "__main__":
    main()
