"""Load test of ``leadflow intake``: requests/s and latency percentiles of form posts, end to end to the broker.

Starts the embedded broker and a real ``leadflow intake`` process (rate limit lifted), then posts N distinct,
valid urlencoded forms with an aiohttp client at a fixed concurrency. Every answer counted is a 202, given after
the broker acknowledged both events (acks=all); anything else is reported and fails the run. The client runs in
this process on the same 2-core machine, so it takes a share of the CPU from the service.

    python bench/bench_intake.py [--requests 3000] [--concurrency 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import numpy as np
from kafka import KafkaConsumer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.settings import Settings  # noqa: E402
from worker.stream.topics import ensure_topics  # noqa: E402
from worker.tools.broker import free_port, running_broker  # noqa: E402


def form(i: int, run: str) -> bytes:
    return urllib.parse.urlencode(
        {
            "first_name": "Ada",
            "last_name": f"Load{i}",
            "email": f"ada.{run}.{i}@engines.example",
            "company": "Analytical Engines",
            "URL": "engines.example",
            "employees": "250",
            "lead_source": "Web",
            "zip": "N1 9GU",
            "form": "bench",
            "hp_name": "",
        }
    ).encode()


async def load(url: str, n: int, concurrency: int) -> tuple[float, list[float], dict[int, int]]:
    """Post n forms, ``concurrency`` at a time; (seconds, latencies, count by status)."""
    run = uuid.uuid4().hex[:6]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(range(n))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    async def client(session: aiohttp.ClientSession) -> None:
        for i in queue:
            started = time.perf_counter()
            async with session.post(f"{url}/leads", data=form(i, run), headers=headers) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, statuses


def records_in(settings: Settings, expected: int, timeout: float = 30) -> int:
    """Distinct records on the leads topic (read back, not end offsets), once ``expected`` or after ``timeout``."""
    consumer = KafkaConsumer(
        settings.topic_leads,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    seen: set[tuple[bytes | None, bytes]] = set()
    try:
        deadline = time.monotonic() + timeout
        while len(seen) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                seen.update((r.key, r.value) for r in records)
        return len(seen)
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    with running_broker() as broker:
        suffix = uuid.uuid4().hex[:8]
        settings = Settings(broker_url=broker.url, topic_leads=f"bench-intake-{suffix}")
        ensure_topics(settings)
        port = free_port()
        env = {
            **os.environ,
            "LEADFLOW_BROKER_URL": broker.url,
            "LEADFLOW_TOPIC_LEADS": settings.topic_leads,
            "LEADFLOW_INTAKE_HOST": "127.0.0.1",
            "LEADFLOW_INTAKE_PORT": str(port),
            "LEADFLOW_INTAKE_RATE": "1000000",
            "LEADFLOW_INTAKE_BURST": "1000000",
            "LEADFLOW_LOG_LEVEL": "WARNING",
        }
        service = subprocess.Popen([sys.executable, "-m", "worker", "intake"], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=1).close()  # noqa: S310  # our own service
                    break
                except OSError:
                    if time.monotonic() > deadline or service.poll() is not None:
                        raise SystemExit("leadflow intake did not start") from None
                    time.sleep(0.2)
            warm_up = min(200, args.requests)
            asyncio.run(load(url, warm_up, args.concurrency))  # the producer and the connections
            print(
                f"leadflow intake, {args.requests:,} form posts per round, {args.concurrency} at a time, "
                f"embedded broker, acks=all (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)"
            )
            for r in range(1, args.rounds + 1):
                seconds, latencies, statuses = asyncio.run(load(url, args.requests, args.concurrency))
                ms = np.percentile(np.array(latencies) * 1000, [50, 90, 99])
                print(
                    f"  round {r}: {args.requests / seconds:,.0f} requests/s   p50 {ms[0]:.1f} ms   p90 {ms[1]:.1f} ms"
                    f"   p99 {ms[2]:.1f} ms   statuses {dict(sorted(statuses.items()))}"
                )
                if set(statuses) != {202}:
                    raise SystemExit(f"not every post was accepted: {statuses}")
            expected = 2 * (warm_up + args.requests * args.rounds)
            stored = records_in(settings, expected)
            print(f"  {stored:,} records on the leads topic for {expected // 2:,} accepted posts (2 events each)")
            if stored != expected:
                raise SystemExit(f"{stored} records stored, {expected} acknowledged")
        finally:
            service.terminate()
            service.wait(timeout=15)


if __name__ == "__main__":
    main()
