"""Backtest of N events (default 10^6) end to end from a JSON-lines file, each engine in its own process.

Issue #21's target: "Backtest: 10^6 events end to end from a JSON-lines file".

1. The history: N synthetic lead events written as JSON lines, one at a time (the file is streamed, not built in
   memory), as ``bench_e2e.py``'s ``load_events`` makes them: the seeded generator's leads (seed 11, from
   2026-09-01, 8 weeks), each with its own events in the generator's order; once every lead's history is written,
   the histories again under fresh event ids (``<event id>-r<line>``), so no event is a replay. ``--leads`` above
   ``--chunk`` are drawn ``--chunk`` leads at a time (seed 11, 12, ...; the lead and event ids of chunk c > 0 end
   in ``-c<c>``), so that only one chunk's events are held: ``--leads 2000`` is exactly ``load_events(N, 2000)``,
   and at the generator's spread (about 38 events a lead) 10^6 events hold about 26,400 leads.
2. ``leadflow backtest --rules <the shipped ruleset> --events FILE --json OUT`` (the shipped model), run as a
   subprocess per engine (``LEADFLOW_ENGINE``) and batch size (``LEADFLOW_BATCH_SIZE``): wall time from start to
   exit (start-up, the file's count pass and the report included), events/s = N / wall time, peak RSS of that
   process (``os.wait4``'s ``ru_maxrss``).
3. The ``--json`` reports of every run are compared: every engine and batch size must report the same numbers.

    python bench/bench_backtest.py [--events 1000000] [--leads 2000] [--file PATH] [--engine reference ...]
                                   [--batch-size 10000 ...] [--set STATE_CACHE_SIZE=5000 ...]

``--file PATH`` keeps the history there (and reuses it when it already holds N lines). Run it under
``flock /work/.cpu-lock`` on the shared build machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_e2e import setting_overrides  # noqa: E402

from worker.rules import default_ruleset_path  # noqa: E402
from worker.scoring.training import generate  # noqa: E402
from worker.settings import Settings  # noqa: E402

START = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
SEED = 11
WEEKS = 8
"""The generator's arguments, as ``bench_e2e.load_events`` passes them."""

LEADFLOW_BACKTEST = (sys.executable, "-m", "worker", "backtest")
"""The command the benchmark times (``leadflow backtest``)."""


# --- the history (tests/unit/test_bench_backtest.py) -----------------------------------------------------------------


def chunk_events(index: int, leads: int) -> list[dict[str, Any]]:
    """The events of chunk ``index`` (``leads`` leads, seed 11 + index), lead and event ids made unique to it."""
    events = generate(leads, seed=SEED + index, start=START, weeks=WEEKS).events
    if index:
        for event in events:
            event["lead_id"] = f"{event['lead_id']}-c{index}"
            event["event_id"] = f"{event['event_id']}-c{index}"
    return events


def chunk_sizes(leads: int, chunk: int) -> list[int]:
    """How many leads each chunk holds: ``chunk`` each, the last one the rest."""
    if leads < 1 or chunk < 1:
        msg = f"need leads >= 1 and chunk >= 1, got leads={leads}, chunk={chunk}"
        raise ValueError(msg)
    full, rest = divmod(leads, chunk)
    return [chunk] * full + ([rest] if rest else [])


def history(n: int, leads: int, chunk: int = 2_000) -> Iterator[bytes]:
    """``n`` JSON lines (without their newline): every lead's events, then again under fresh event ids.

    One chunk's events are held at a time; with a single chunk they are drawn once and replayed from memory.
    """
    sizes = chunk_sizes(leads, chunk)
    held: list[dict[str, Any]] = []
    written = turn = 0
    while written < n:
        index = turn % len(sizes)
        if not held or len(sizes) > 1:
            held = chunk_events(index, sizes[index])
        if not held:
            msg = f"the generator made no events for {sizes[index]} leads"
            raise ValueError(msg)
        for event in held[: n - written]:
            if turn >= len(sizes):  # a second pass over the leads: the same events under new ids
                event = {**event, "event_id": f"{event['event_id']}-r{written}"}
            yield orjson.dumps(event)
            written += 1
        turn += 1


def write_history(path: Path, n: int, leads: int, chunk: int = 2_000, show: bool = False) -> None:
    """Write ``history(n, leads, chunk)`` to ``path``, one event a line (with a progress bar when ``show``)."""
    columns = (TextColumn("writing events"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with path.open("wb", buffering=1 << 20) as out, Progress(*columns, disable=not show, transient=True) as bar:
        task = bar.add_task("write", total=n)
        for k, line in enumerate(history(n, leads, chunk), 1):
            out.write(line + b"\n")
            if k % 10_000 == 0 or k == n:
                bar.update(task, completed=k)


def count_lines(path: Path) -> int:
    """Lines in ``path`` (0 when it does not exist)."""
    if not path.is_file():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


# --- the runs --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measured:
    """One backtest process: what it ran on, how long it took, its peak RSS, the report it wrote."""

    engine: str
    batch_size: int
    seconds: float
    max_rss_kib: int
    report: dict[str, Any]

    def events_per_s(self, events: int) -> float:
        """Events of the history per second of the whole process."""
        return events / max(self.seconds, 1e-9)


def backtest_env(engine: str, batch_size: int, extra: dict[str, str]) -> dict[str, str]:
    """The environment of one backtest process: this one's, the engine, the batch size, then ``extra``."""
    return {**os.environ, "LEADFLOW_ENGINE": engine, "LEADFLOW_BATCH_SIZE": str(batch_size), **extra}


def run_backtest(
    events: Path, engine: str, batch_size: int, out_dir: Path, extra: dict[str, str] | None = None
) -> Measured:
    """``leadflow backtest`` of ``events`` with the shipped ruleset and model in a process of its own, timed."""
    report = out_dir / f"report-{engine}-{batch_size}.json"
    cmd = [*LEADFLOW_BACKTEST, "--rules", str(default_ruleset_path()), "--events", str(events), "--json", str(report)]
    log = out_dir / f"backtest-{engine}-{batch_size}.log"
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            cmd, env=backtest_env(engine, batch_size, extra or {}), stdout=output, stderr=subprocess.STDOUT, cwd=ROOT
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"backtest ({engine}, batch {batch_size}) exited {process.returncode}; see {log}")
    return Measured(engine, batch_size, seconds, usage.ru_maxrss, orjson.loads(report.read_bytes()))


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """The paths at which two JSON values differ (empty: equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(a.keys() | b.keys())
        return [d for k in keys for d in differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for k, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{where}[{k}]")]
    return [] if a == b else [where or "."]


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The counts a reader checks first in a report: events decided, replays, bad events, leads, converted leads."""
    run = report["rulesets"][0]
    return {
        "decided": run["events"]["valid"],
        "replays": run["events"]["duplicates"],
        "bad": run["bad_events"]["total"],
        "leads": run["leads"],
        "converted": run["converted"],
    }


def table(results: list[Measured], events: int) -> str:
    """The runs as a small table."""
    lines = [f"{'engine':10s} {'batch':>6s} {'seconds':>8s} {'events/s':>9s} {'peak RSS':>10s}"]
    for r in results:
        lines.append(
            f"{r.engine:10s} {r.batch_size:6d} {r.seconds:8.1f} {r.events_per_s(events):9,.0f} "
            f"{r.max_rss_kib / 1024:7,.0f} MiB"
        )
    return "\n".join(lines)


def compare(results: list[Measured]) -> str:
    """Whether every run's report equals the first one's, and where not."""
    first = results[0]
    said = []
    for r in results[1:]:
        diff = differences(first.report, r.report)
        same = "the same report" if not diff else f"DIFFERENT reports at {', '.join(diff[:10])}"
        said.append(f"{r.engine}/{r.batch_size} against {first.engine}/{first.batch_size}: {same}")
    return "\n".join(said)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--leads", type=int, default=2_000, help="distinct leads (at most: N events may hold fewer)")
    parser.add_argument("--chunk", type=int, default=2_000, help="leads drawn at a time (held in memory)")
    parser.add_argument("--file", type=Path, help="keep the history here (reused when it holds N lines)")
    parser.add_argument("--engine", action="append", choices=["reference", "columnar"], help="default: both")
    parser.add_argument(
        "--batch-size", type=int, action="append", help=f"LEADFLOW_BATCH_SIZE (default {Settings().batch_size})"
    )
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="LEADFLOW_NAME=VALUE")
    args = parser.parse_args()
    extra = setting_overrides(args.set)
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        path = args.file or Path(tmp) / "events.jsonl"
        if count_lines(path) != args.events:
            started = time.perf_counter()
            write_history(path, args.events, args.leads, args.chunk, show=True)
            print(f"wrote {args.events:,} events to {path} in {time.perf_counter() - started:.1f}s", flush=True)
        else:
            print(f"reusing {path} ({args.events:,} events)", flush=True)
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {' '.join(args.set)}", flush=True)
        results = []
        for batch_size in args.batch_size or [Settings().batch_size]:
            for engine in args.engine or ["reference", "columnar"]:
                results.append(run_backtest(path, engine, batch_size, Path(tmp), extra))
                r = results[-1]
                print(f"{engine}, batch {batch_size}: {r.seconds:.1f}s, {headline(r.report)}", flush=True)
        print(table(results, args.events))
        if len(results) > 1:
            print(compare(results))


if __name__ == "__main__":
    main()
