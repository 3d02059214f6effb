"""Latency of a running worker: per-event time from a lead event's send to its decision, at a steady pace.

Issue #21's latency target: p99 <= 50 ms at half the sustainable rate, and the p50 of an idle stream as it was.

1. The sustainable rate: leadflow's throughput on a backlog, measured as ``bench_e2e.py`` does (its
   ``run_pipeline``: N events put on a fresh topic first, then a worker started, the output's slope fitted to the
   output records' timestamps). ``--rate`` skips this step and uses the rate given.
2. A fresh ``leadflow run`` worker (its own topics, 4 partitions, RocksDB state) is started and waited for (one
   probe event decided).
3. Idle stream: one event every ``--idle-interval`` s (default 0.2) for ``--idle-seconds``.
4. Paced stream: ``--fraction`` (default 0.5) of the sustainable rate for ``--warmup`` s, not counted, then for
   ``--seconds``, counted. A confluent-kafka (librdkafka) producer with ``linger.ms=0`` sends each event when its
   time comes (event i at i / rate from the start; after a late wake-up, the events due are sent at once and the
   pace is kept): it costs this process little CPU beside the worker and the broker on 2 cores.
5. The worker is stopped, then its decisions are read (not while it runs: reading them meanwhile would take a
   core's share from it). Decisions carry their event's ``event_id``; latency = the decision record's timestamp
   (CreateTime, set by the worker's producer when it appends the record to the batch it sends: tansu keeps
   CreateTime and has no LogAppendTime, so the broker's own append, about a round trip later, is not seen) - the
   time this process sent the event (``time.time()`` just before ``produce``; the input record's CreateTime is
   the same clock, in ms). Record timestamps are whole milliseconds.

Printed: p50, p90, p99 and max of each phase, the rate achieved and how late the pacer's sends were, the CPU of
the worker, the broker and this process over the paced phase (shares of one core), and the worker's own counts
(``/metrics``, read before and after the phase): batches, events per batch, the core's time per batch.

    python bench/bench_latency.py [--rate R | --backlog 40000] [--fraction 0.5 ...] [--seconds 30] [--warmup 5]
                                  [--idle-seconds 20] [--set FETCH_MAX_WAIT_MS=10 ...]

``--set NAME=VALUE`` sets ``LEADFLOW_NAME`` for the worker (and for the backlog run): e.g. the fetch wait,
``BATCHES_IN_FLIGHT``, ``COMMIT_INTERVAL``. Run it under ``flock /work/.cpu-lock`` on the shared build machine.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_e2e import (  # noqa: E402
    LEADFLOW_RUN,
    bench_settings,
    cpu_seconds,
    leadflow_env,
    load_events,
    run_pipeline,
    setting_overrides,
)

from worker.stream.topics import ensure_topics  # noqa: E402
from worker.tools.broker import running_broker  # noqa: E402

Event = tuple[bytes, bytes, str]
"""(key, value, event_id) of one lead event."""


# --- pure helpers (tests/unit/test_bench_latency.py) -----------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``q`` % of the values at or below it.

    No interpolation: p99 of 100 values is the 99th smallest, of 1,000 the 990th, and it is always a value that
    was measured.
    """
    if not values:
        return math.nan
    if not 0 < q <= 100:
        msg = f"percentile {q} is not in (0, 100]"
        raise ValueError(msg)
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 and max of ``values``, and how many there are."""
    return {
        "n": float(len(values)),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }


def due(elapsed: float, rate: float, total: int) -> int:
    """How many of ``total`` sends paced at ``rate`` a second are due ``elapsed`` seconds after the first: send i
    is due at i / rate, so the first is due at once."""
    if elapsed < 0:
        return 0
    return min(total, math.floor(elapsed * rate + 1e-9) + 1)


def machine_times(stat: str) -> tuple[float, float, float]:
    """(busy, steal, all) jiffies of every CPU, from the first line of ``/proc/stat``."""
    fields = [float(x) for x in stat.split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq, steal, sum(fields)


def metric_totals(text: str, names: Iterable[str]) -> dict[str, float]:
    """The sum over all label sets of each metric sample named in ``names``, from Prometheus' text format."""
    wanted = set(names)
    totals = dict.fromkeys(wanted, 0.0)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if match and match.group(1) in wanted:
            totals[match.group(1)] += float(match.group(3))
    return totals


# --- the worker and the stream ---------------------------------------------------------------------------------------

_COUNTS = (
    "leadflow_batch_events_count",
    "leadflow_batch_events_sum",
    "leadflow_batch_processing_seconds_sum",
    "leadflow_event_latency_seconds_count",
    "leadflow_event_latency_seconds_sum",
)


@dataclass
class Paced:
    """What a paced phase sent: each event's send time (wall clock, s) and how late each send was against its
    schedule (s)."""

    sent: dict[str, float] = field(default_factory=dict)
    late: list[float] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0


def send_paced(producer: Producer, topic: str, events: Sequence[Event], rate: float) -> Paced:
    """Send ``events`` at ``rate`` a second, each when its time comes (sleeping between), not in bursts."""
    out = Paced()
    total = len(events)
    start = time.perf_counter()
    out.started = time.time()
    i = 0
    while i < total:
        now = time.perf_counter()
        for k in range(i, due(now - start, rate, total)):
            key, value, event_id = events[k]
            out.late.append(max(0.0, time.perf_counter() - start - k / rate))
            out.sent[event_id] = time.time()
            producer.produce(topic, value=value, key=key)
            i = k + 1
        producer.poll(0)  # delivery reports: keeps librdkafka's queue short
        if i < total:
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
    out.ended = time.time()
    producer.flush(30)
    return out


def end_offsets(consumer: KafkaConsumer, partitions: list[TopicPartition]) -> int:
    ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
    return sum(ends.values())


def wait_for_outputs(
    consumer: KafkaConsumer,
    partitions: list[TopicPartition],
    at_least: int,
    alive: Callable[[], bool],
    timeout: float,
    quiet: float = 2.0,
) -> int:
    """Wait until the output holds ``at_least`` records, or stops growing for ``quiet`` s after it did (tansu's
    ListOffsets may lag by a batch); watched by end offsets every 0.2 s, so nothing is decoded meanwhile."""
    deadline = time.monotonic() + timeout
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        if not alive():
            raise SystemExit("the worker stopped; see /tmp/bench-latency-worker.log")
        now = end_offsets(consumer, partitions)
        if now != seen:
            seen, since = now, time.monotonic()
        if now >= at_least or (now > 0 and time.monotonic() - since > quiet):
            return now
        time.sleep(0.2)
    raise SystemExit(f"only {seen} outputs of {at_least} after {timeout:.0f}s")


def read_decided(bootstrap: str | list[str], topic: str) -> dict[str, int]:
    """event_id → the timestamp (ms) of its first decision record, over the whole topic."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        out: dict[str, int] = {}
        while True:
            batches = consumer.poll(timeout_ms=1000, max_records=50_000)
            if not batches:
                return out
            for records in batches.values():
                for r in records:
                    event_id = orjson.loads(r.value).get("event_id")
                    if isinstance(event_id, str) and event_id not in out:
                        out[event_id] = r.timestamp
    finally:
        consumer.close()


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    return metric_totals(text, _COUNTS)


def latencies(sent: dict[str, float], decided: dict[str, int]) -> tuple[list[float], int]:
    """Milliseconds from each send to its decision record, and how many sent events have no decision."""
    out = [decided[e] - s * 1000 for e, s in sent.items() if e in decided]
    return out, len(sent) - len(out)


def events_with_ids(n: int, leads: int) -> list[Event]:
    return [(k, v, str(orjson.loads(v)["event_id"])) for k, v in load_events(n, leads)]


def line(name: str, stats: dict[str, float]) -> str:
    return (
        f"{name:7s} n={stats['n']:,.0f}  p50 {stats['p50']:.1f} ms  p90 {stats['p90']:.1f} ms  "
        f"p99 {stats['p99']:.1f} ms  max {stats['max']:.1f} ms"
    )


def sustainable_rate(broker_url: str, events: int, leads: int, extra: dict[str, str], timeout: float) -> float:
    settings, run_id = bench_settings(broker_url, "rate")
    env = {**leadflow_env(settings, run_id), **extra}
    events_in = load_events(events, leads)
    r = run_pipeline("leadflow", list(LEADFLOW_RUN), env, settings, settings.topic_decisions, events_in, timeout)
    print(
        f"sustainable: {r['events_per_s']:,.0f} events/s on a backlog of {events:,} ({r['seconds']:.1f}s, "
        f"worker CPU {r['cpu_share']:.0%} of a core)",
        flush=True,
    )
    return r["events_per_s"]


def measure(args: argparse.Namespace, broker_url: str, broker_pid: int, rate: float, extra: dict[str, str]) -> None:
    settings, run_id = bench_settings(broker_url, "latency")
    leadflow = args.pipeline == "leadflow"
    if leadflow:
        cmd, env = list(LEADFLOW_RUN), {**leadflow_env(settings, run_id), **extra}
    else:  # the floor: a raw aiokafka consume -> produce loop forwarding each event (its event_id too) as it is
        cmd = [sys.executable, str(ROOT / "bench" / "ref_raw_aiokafka.py")]
        env = {"BENCH_BROKER": broker_url, "BENCH_SOURCE": settings.topic_leads,
               "BENCH_SINK": settings.topic_decisions, "BENCH_ID": run_id}  # fmt: skip
    topics = [settings.topic_leads, settings.topic_decisions, settings.topic_opportunities, settings.topic_dlq]
    ensure_topics(settings, topics)
    idle_n = round(args.idle_seconds / args.idle_interval)
    paced_n = round(rate * (args.warmup + args.seconds))
    stream = events_with_ids(1 + idle_n + paced_n, args.leads)
    probe, idle, paced = stream[:1], stream[1 : 1 + idle_n], stream[1 + idle_n :]
    warm_n = round(rate * args.warmup)

    def producer(linger_ms: float) -> Producer:
        config = {"bootstrap.servers": ",".join(settings.bootstrap_servers), "linger.ms": linger_ms, "acks": "all"}
        return Producer({**config, "enable.idempotence": False})

    single, pacer = producer(0), producer(args.linger_ms)  # the idle stream's events go out one by one, at once
    watcher = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    out_topic = settings.topic_decisions
    partitions = [TopicPartition(out_topic, p) for p in sorted(watcher.partitions_for_topic(out_topic) or ())]
    log = open("/tmp/bench-latency-worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

    def alive() -> bool:
        return worker.poll() is None

    def counts() -> dict[str, float]:
        return scrape(int(env["LEADFLOW_WEB_PORT"])) if leadflow else dict.fromkeys(_COUNTS, 0.0)

    try:
        send_paced(single, settings.topic_leads, probe, 1.0)
        wait_for_outputs(watcher, partitions, 1, alive, args.timeout, quiet=0.5)
        time.sleep(1.0)
        idle_sent = send_paced(single, settings.topic_leads, idle, 1 / args.idle_interval)
        if idle:
            wait_for_outputs(watcher, partitions, 1 + len(idle), alive, args.timeout)
            time.sleep(1.0)
        before = counts()
        cpu = {"worker": cpu_seconds(worker.pid), "broker": cpu_seconds(broker_pid), "bench": time.process_time()}
        machine = machine_times(Path("/proc/stat").read_text())
        paced_sent = send_paced(pacer, settings.topic_leads, paced, rate)
        outputs = wait_for_outputs(watcher, partitions, 1 + len(idle) + len(paced), alive, args.timeout)
        span = time.time() - paced_sent.started
        used = {
            "worker": cpu_seconds(worker.pid) - cpu["worker"],
            "broker": cpu_seconds(broker_pid) - cpu["broker"],
            "bench": time.process_time() - cpu["bench"],
        }
        machine_after = machine_times(Path("/proc/stat").read_text())
        after = counts()
    finally:
        worker.terminate()
        worker.wait(30)
        watcher.close()
        log.close()
    decided = read_decided(settings.bootstrap_servers, out_topic)
    idle_ms, idle_missing = latencies(idle_sent.sent, decided)
    counted = {e: paced_sent.sent[e] for _, _, e in paced[warm_n:]}
    paced_ms, paced_missing = latencies(counted, decided)
    first, last = min(counted.values()), max(counted.values())
    achieved = (len(counted) - 1) / max(1e-9, last - first)
    late_ms = [x * 1000 for x in paced_sent.late[warm_n:]]
    missing = f"idle {idle_missing}, paced {paced_missing}"
    print(f"{args.pipeline}: outputs on the decision topic: {outputs:,}; events without a decision: {missing}")
    print(f"{line('idle', summary(idle_ms))}  (one event every {args.idle_interval * 1000:.0f} ms)")
    pace = f"target {rate:,.0f}/s, achieved {achieved:,.0f}/s over {last - first:.1f}s"
    print(f"{line('paced', summary(paced_ms))}  ({pace}, after {args.warmup:g}s not counted)")
    late = " ".join(f"{q} {summary(late_ms)[q]:.2f} ms" for q in ("p50", "p99", "max"))
    print(f"pacer: sends late by {late}")
    shares = ", ".join(f"{k} {v / span:.0%}" for k, v in used.items())
    busy, steal, total = (b - a for a, b in zip(machine, machine_after, strict=True))
    cores = os.cpu_count() or 1
    others = busy / total * cores - sum(used.values()) / span
    print(
        f"CPU over the paced phase ({span:.1f}s): {shares} of a core; the machine's {cores} CPUs "
        f"{busy / total:.0%} busy, of which other processes {others:.0%} of a core; steal {steal / total:.0%}"
    )
    delta = {k: after[k] - before[k] for k in _COUNTS}
    batches = delta["leadflow_batch_events_count"]
    if batches:
        per_batch = delta["leadflow_batch_events_sum"] / batches
        core_ms = delta["leadflow_batch_processing_seconds_sum"] / batches * 1000
        own = delta["leadflow_event_latency_seconds_sum"] / max(1, delta["leadflow_event_latency_seconds_count"])
        print(
            f"worker over the paced phase (warm-up included): {batches:,.0f} batches, {per_batch:,.1f} events a "
            f"batch, core {core_ms:.2f} ms a batch; its own latency (record timestamp to committed) mean "
            f"{own * 1000:.1f} ms"
        )
    if args.series:
        for second, stats in by_second(counted, decided, first).items():
            print(f"  t+{second:3d}s {line('', stats)}")
    sys.stdout.flush()


def by_second(sent: dict[str, float], decided: dict[str, int], first: float) -> dict[int, dict[str, float]]:
    """The latencies of the events sent in each second from ``first``, summarised."""
    groups: dict[int, list[float]] = {}
    for event_id, at in sent.items():
        if event_id in decided:
            groups.setdefault(int(at - first), []).append(decided[event_id] - at * 1000)
    return {k: summary(v) for k, v in sorted(groups.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, help="the sustainable rate, events/s (default: measure it)")
    parser.add_argument("--backlog", type=int, default=40_000, help="events of the backlog the rate is measured on")
    parser.add_argument(
        "--fraction", type=float, nargs="+", default=[0.5], help="of the sustainable rate, for the paced phase (each)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="paced phase, counted")
    parser.add_argument("--warmup", type=float, default=5.0, help="paced phase before, not counted")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--idle-interval", type=float, default=0.2, help="seconds between idle events")
    parser.add_argument(
        "--linger-ms", type=float, default=0.0, help="the paced producer's linger.ms (librdkafka's default: 5)"
    )
    parser.add_argument("--leads", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=1, help="idle and paced phases, each with a fresh worker")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument(
        "--pipeline",
        choices=["leadflow", "raw"],
        default="leadflow",
        help="raw: bench_e2e's aiokafka consume -> produce loop instead of leadflow (the client and broker floor)",
    )
    parser.add_argument("--series", action="store_true", help="also the paced latencies by second of sending")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="LEADFLOW_NAME=VALUE")
    args = parser.parse_args()
    extra = setting_overrides(args.set)
    if extra:
        print("worker settings: " + " ".join(f"{k}={v}" for k, v in extra.items()))
    with running_broker() as broker:
        rate = args.rate or sustainable_rate(broker.url, args.backlog, args.leads, extra, args.timeout)
        for k in range(args.rounds):
            for fraction in args.fraction:
                target = rate * fraction
                round_ = f"round {k + 1}: " if args.rounds > 1 else ""
                pace = f"{fraction:g} x {rate:,.0f} = {target:,.0f} events/s, linger.ms {args.linger_ms:g}"
                print(f"{round_}paced at {pace}", flush=True)
                measure(args, broker.url, broker.process.pid, target, extra)


if __name__ == "__main__":
    main()
