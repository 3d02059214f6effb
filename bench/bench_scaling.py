"""Scaling: a backlog moved by one ``leadflow run`` process against two in the same consumer group.

Issue #21's target: two worker processes on two cores move >= 1.7x what one moves. For each run, on fresh topics
of 4 partitions (the worker's default, ``LEADFLOW_PARTITIONS``):

1. N worker processes (1 or 2) start in one consumer group, each with its own RocksDB directory, and are waited
   for until their assignments of the leads topic (read from each one's ``/metrics``) are stable, disjoint and
   cover the 4 partitions.
2. They are stopped (SIGSTOP), the same E events are put on the leads topic (as ``bench_e2e.py`` does), and they
   are continued (SIGCONT) together: no process starts on the backlog before the other, and no rebalance happens
   during the run (the session timeout is 30 s for this; the backlog is written in a few seconds).
3. As in ``bench_e2e.py``, the decision topic's end offsets are watched until they stop growing (nothing is
   decoded meanwhile), then the decisions are read and the rate is the slope of outputs against their records'
   timestamps. A decision goes to the partition of its lead, the one the lead's events came from, so each
   process's own rate is also fitted, from the decisions on its partitions; the aggregate includes the tail when
   one process has finished its share and the other has not.
4. CPU: each worker's and the broker's user + system time while the output grew, as shares of one core.

Rounds alternate the order (1 then 2, then 2 then 1, ...) on the same broker; the ratio two / one is per round.

    python bench/bench_scaling.py [--events 60000] [--rounds 3] [--processes 2]

Run it under ``flock /work/.cpu-lock`` on the shared build machine: on 2 vCPUs the broker and this process need
CPU too, which the report shows.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_e2e import LEADFLOW_RUN, bench_settings, cpu_seconds, leadflow_env, load_events, output_rate  # noqa: E402

from worker.stream.topics import ensure_topics  # noqa: E402
from worker.tools.broker import running_broker  # noqa: E402


def assigned_partitions(metrics_text: str, topic: str) -> set[int]:
    """The partitions of ``topic`` a worker reports as assigned to it (``leadflow_oldest_unprocessed_seconds`` has a
    sample for each, whether or not it holds records)."""
    found = set()
    for line in metrics_text.splitlines():
        if not line.startswith("leadflow_oldest_unprocessed_seconds{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if labels.get("topic") == topic and labels.get("partition", "").isdigit():
            found.add(int(labels["partition"]))
    return found


def split_evenly(assignments: Sequence[set[int]], partitions: int) -> bool:
    """Whether every process has partitions, none shares one, and together they cover all ``partitions``."""
    if any(not a for a in assignments):
        return False
    union: set[int] = set().union(*assignments)
    return union == set(range(partitions)) and sum(len(a) for a in assignments) == partitions


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text: str = response.read().decode()
    except OSError:  # not listening yet
        return ""
    return text


def run(
    broker_url: str, broker_pid: int, processes: int, events: list[tuple[bytes, bytes]], timeout: float
) -> dict[str, Any]:
    settings, run_id = bench_settings(broker_url, f"scale{processes}")
    topics = [settings.topic_leads, settings.topic_decisions, settings.topic_opportunities, settings.topic_dlq]
    ensure_topics(settings, topics)
    workers: list[tuple[subprocess.Popen[bytes], int]] = []
    logs = []
    for k in range(processes):
        env = leadflow_env(settings, run_id, state_dir=f"/tmp/bench-state-{run_id}-{k}")
        env["LEADFLOW_SESSION_TIMEOUT"] = "30"  # stopped while the backlog is written: no rebalance meanwhile
        env["LEADFLOW_HEARTBEAT_INTERVAL"] = "1"
        log = open(f"/tmp/bench-scaling-{k}.log", "wb")  # noqa: SIM115
        logs.append(log)
        env = {**os.environ, **env}
        process = subprocess.Popen(list(LEADFLOW_RUN), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        workers.append((process, int(env["LEADFLOW_WEB_PORT"])))
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    sink = settings.topic_decisions
    out_partitions = [TopicPartition(sink, p) for p in sorted(consumer.partitions_for_topic(sink) or ())]
    try:
        assignments = wait_until_assigned(workers, settings.topic_leads, settings.partitions, timeout)
        for process, _ in workers:
            process.send_signal(signal.SIGSTOP)
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5, batch_size=512 * 1024)
        written = time.monotonic()
        for key, value in events:
            producer.send(settings.topic_leads, key=key, value=value)
        producer.flush()
        producer.close()
        written = time.monotonic() - written
        for process, _ in workers:
            process.send_signal(signal.SIGCONT)
        cpu, seen = watch(consumer, out_partitions, workers, broker_pid, len(events), timeout)
    finally:
        for process, _ in workers:
            process.send_signal(signal.SIGCONT)
            process.terminate()
        for process, _ in workers:
            process.wait(30)
        for log in logs:
            log.close()
    stamps: dict[int, list[float]] = {p.partition: [] for p in out_partitions}
    consumer.assign(out_partitions)
    consumer.seek_to_beginning(*out_partitions)
    while True:
        batches = consumer.poll(timeout_ms=1000, max_records=50_000)
        if not batches:
            break
        for tp, records in batches.items():
            stamps[tp.partition].extend(r.timestamp / 1000 for r in records)
    consumer.close()
    every = [t for ts in stamps.values() for t in ts]
    span = max(1e-9, seen[1] - seen[0])
    per_process = []
    for (_, _), parts in zip(workers, assignments, strict=True):
        mine = [t for p in parts for t in stamps[p]]
        rate = output_rate(mine) if len(mine) > 1 else {"events_per_s": 0.0, "seconds": 0.0}
        per_process.append({"partitions": sorted(parts), "outputs": len(mine), **rate})
    return {
        "total": output_rate(every),
        "outputs": len(every),
        "per_process": per_process,
        "cpu": {name: used / span for name, used in cpu.items()},
        "written": written,
    }


def wait_until_assigned(
    workers: list[tuple[subprocess.Popen[bytes], int]], topic: str, partitions: int, timeout: float
) -> list[set[int]]:
    """Each worker's partitions of ``topic``, once they split the topic between them the same way for 2 s."""
    deadline = time.monotonic() + timeout
    last: list[set[int]] = []
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        for process, _ in workers:
            if process.poll() is not None:
                raise SystemExit("a worker stopped; see /tmp/bench-scaling-*.log")
        now = [assigned_partitions(scrape(port), topic) for _, port in workers]
        if now != last:
            last, stable_since = now, time.monotonic()
        elif split_evenly(now, partitions) and time.monotonic() - stable_since >= 2.0:
            return now
        time.sleep(0.5)
    raise SystemExit(f"the workers' assignments never split {topic}: {last}")


def watch(
    consumer: KafkaConsumer,
    partitions: list[TopicPartition],
    workers: list[tuple[subprocess.Popen[bytes], int]],
    broker_pid: int,
    expected: int,
    timeout: float,
) -> tuple[dict[str, float], tuple[float, float]]:
    """Watch the output's end offsets until they stop growing; the CPU each process used between the first and the
    last poll that saw them grow, and those two times."""
    pids = {f"worker{k + 1}": p.pid for k, (p, _) in enumerate(workers)} | {"broker": broker_pid}
    first: dict[str, float] | None = None
    last: dict[str, float] = {}
    seen = (0.0, 0.0)
    ends, quiet_since = -1, time.monotonic()
    deadline = time.monotonic() + timeout
    while ends <= 0 or (ends < expected and time.monotonic() - quiet_since < 3.0):
        if time.monotonic() > deadline or any(p.poll() is not None for p, _ in workers):
            raise SystemExit(f"{ends} of {expected} outputs; see /tmp/bench-scaling-*.log")
        now_ends = sum(consumer.end_offsets(partitions).values())
        if now_ends != ends:
            ends, quiet_since = now_ends, time.monotonic()
            if now_ends > 0:
                last = {name: cpu_seconds(pid) for name, pid in pids.items()} | {"bench": time.process_time()}
                stamp = time.monotonic()
                if first is None:
                    first, seen = last, (stamp, stamp)
                seen = (seen[0], stamp)
        time.sleep(0.1)
    assert first is not None
    return {name: last[name] - first[name] for name in last}, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--leads", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="the larger group, against one process")
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()
    events = load_events(args.events, args.leads)
    ratios = []
    with running_broker() as broker:
        for r in range(args.rounds):
            order = (1, args.processes) if r % 2 == 0 else (args.processes, 1)
            rates: dict[int, float] = {}
            for n in order:
                result = run(broker.url, broker.process.pid, n, events, args.timeout)
                rates[n] = result["total"]["events_per_s"]
                cpu = ", ".join(f"{name} {share:.0%}" for name, share in result["cpu"].items())
                print(
                    f"round {r + 1}, {n} process{'es' if n > 1 else ''}: {rates[n]:8,.0f} events/s "
                    f"({result['outputs']:,} outputs over {result['total']['seconds']:.1f}s; backlog written in "
                    f"{result['written']:.1f}s); CPU {cpu} of a core",
                    flush=True,
                )
                if n > 1:
                    for k, p in enumerate(result["per_process"]):
                        print(
                            f"    worker{k + 1}: partitions {p['partitions']}, {p['outputs']:,} outputs, "
                            f"{p['events_per_s']:,.0f} events/s over {p['seconds']:.1f}s"
                        )
            ratio = rates[args.processes] / rates[1]
            ratios.append(ratio)
            print(f"round {r + 1}: {args.processes} / 1 = {ratio:.2f}x", flush=True)
    print("ratios: " + ", ".join(f"{x:.2f}x" for x in ratios))


if __name__ == "__main__":
    main()
