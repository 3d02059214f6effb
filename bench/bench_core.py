"""The pure core's speed on one core, stage by stage, over the synthetic sample (no broker, no Faust).

Stages, each timed over the same events:
  parse      bytes -> validated event (pydantic, JSON)
  merge      the event merged into the lead's state, and the flat facts built from it
  rules      Ruleset.evaluate on precomputed facts
  score      Model.score + Model.factors on precomputed facts
  decide     state merge + facts + score + rules + decision/opportunity dicts (events already parsed)
  batch      process_batch as the worker runs it: bytes in, JSON bytes out, 500 events a batch (--batch), states
             serialised at the end of each batch and kept decoded in the worker's state cache between batches, with the
             drift sample of the worker's default settings (features checked on 1 event in 10)
  columnar   the columnar engine (worker.columnar, LEADFLOW_ENGINE=columnar) on the same batches as `batch`: the same
             outputs byte for byte, a batch of WHOLE_FROM (5,000) events or more decided in one block over columns,
             a smaller one by the reference itself (issue #21); run with --engine
  bare       the same process_batch with next to no logic: a ruleset of one scoring rule and no qualification
             rules, a model of one feature (the default model's first); what the core costs around its rules and
             model (parse, state, ids, decision, JSON), a floor for the batch stage

    python bench/bench_core.py [--leads 2000] [--repeat 3] [--drift-sample 10] [--gc-threshold 50000] [--batch 500]
                               [--engine reference|columnar|both] [--only STAGE ...] [--profile N]

``--engine`` picks what decides the batches of ``batch``: the reference (the default), the columnar engine (the
stage is then called ``columnar``), or both, one after the other in the same run (compare their ratio). With
``--alternate`` (and ``--engine both``) the two are timed in turns instead, a reference run then a columnar run,
``--repeat`` pairs: a change of the shared machine's speed then shows in both, and each pair's ratio is printed.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.batch import Record, process_batch  # noqa: E402
from worker.columnar import BatchEngine, process_columnar  # noqa: E402
from worker.core import Engine, decide  # noqa: E402
from worker.engine import tune_gc  # noqa: E402
from worker.lead.parse import parse_event  # noqa: E402
from worker.lead.state import apply_event, build_facts, event_digest, new_state  # noqa: E402
from worker.rules import default_ruleset_path, load_ruleset, parse_ruleset  # noqa: E402
from worker.scoring import Model, default_model_path, load_model  # noqa: E402
from worker.scoring.training import generate  # noqa: E402
from worker.settings import Settings  # noqa: E402


def best_rate(n: int, fn: Callable[[], object], repeat: int) -> float:
    """Events per second of the fastest of ``repeat`` runs (the least disturbed by the shared machine)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return n / best


_BARE_RULESET = """\
version: "1"
name: bare
scoring:
  - {id: has-email, when: {field: email, op: is_not_null}, points: 1}
"""


def bare_engine() -> Engine:
    """An engine with next to no logic: one scoring rule, no qualification rules, one model feature."""
    data = orjson.loads(default_model_path().read_bytes())
    data["features"] = data["features"][:1]
    return Engine(parse_ruleset(_BARE_RULESET, "<bare ruleset>"), Model.from_dict(data, source="<bare model>"))


def prepare(
    leads: int, drift_sample: int, batch: int = 500, engines: tuple[str, ...] = ("reference",)
) -> tuple[int, Engine, dict[str, Callable[[], None]]]:
    """The synthetic sample's events and one function per stage, each running the stage over all of them."""
    data = generate(leads, seed=11, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=6)
    raw = [(e["lead_id"].encode(), orjson.dumps(e)) for e in data.events]
    n = len(raw)
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    parsed = [parse_event(k, v) for k, v in raw]

    # facts as the core sees them, for the rules and score stages on their own
    states: dict[str, dict[str, object]] = {}
    facts_list = []
    for event in parsed:
        now = event.occurred_at.timestamp()
        state = states.setdefault(event.lead_id, new_state(event.lead_id, now))
        apply_event(state, event, event_digest(event.event_id), now, 64)
        facts = build_facts(state, now, event)
        facts["score"] = 0.2
        facts_list.append(facts)

    ruleset, model = engine.ruleset, engine.model

    def run_parse() -> None:
        for k, v in raw:
            parse_event(k, v)

    def run_merge() -> None:
        live: dict[str, dict[str, object]] = {}
        for event in parsed:
            now = event.occurred_at.timestamp()
            state = live.get(event.lead_id)
            if state is None:
                state = live[event.lead_id] = new_state(event.lead_id, now)
            apply_event(state, event, event_digest(event.event_id), now, 64)
            build_facts(state, now, event)

    def run_rules() -> None:
        for facts in facts_list:
            ruleset.evaluate(dict(facts))

    def run_score() -> None:
        for facts in facts_list:
            model.factors(model.score(facts), facts, 5)

    def run_decide() -> None:
        live: dict[str, dict[str, object]] = {}
        for event in parsed:
            state, _ = decide(engine, live.get(event.lead_id), event, 1.0)
            live[event.lead_id] = state

    records = [Record(k, v, "leads", 0, i) for i, (k, v) in enumerate(raw)]

    def batches(engine: Engine, decide: BatchEngine = process_batch) -> None:
        store: dict[str, bytes] = {}
        cache: dict[str, dict[str, object]] = {}
        for start in range(0, n, batch):
            result = decide(engine, records[start : start + batch], store.get, 1.0, cache, drift_sample=drift_sample)
            store.update(result.states)

    bare = bare_engine()

    def run_batch() -> None:
        batches(engine)

    def run_columnar() -> None:
        batches(engine, process_columnar)

    def run_bare() -> None:
        batches(bare)

    stages = {
        "parse": run_parse,
        "merge": run_merge,
        "rules": run_rules,
        "score": run_score,
        "decide": run_decide,
        "batch": run_batch,
        "columnar": run_columnar,
        "bare": run_bare,
    }
    if "reference" not in engines:
        del stages["batch"]
    if "columnar" not in engines:
        del stages["columnar"]
    return n, engine, stages


def alternate(n: int, reference: Callable[[], object], columnar: Callable[[], object], repeat: int) -> None:
    """The two engines timed in turns, ``repeat`` pairs: each pair's rates and ratio, then the median ratio."""
    ratios = []
    for pair in range(1, repeat + 1):
        first = best_rate(n, reference, 1)
        second = best_rate(n, columnar, 1)
        ratios.append(second / first)
        print(f"  pair {pair}: batch {first:>9,.0f}  columnar {second:>9,.0f} events/s   {second / first:.2f}x")
    print(f"  columnar / batch, median of {repeat} pairs: {statistics.median(ratios):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--drift-sample", type=int, default=10, help="as LEADFLOW_DRIFT_SAMPLE (0: off)")
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=Settings().gc_threshold,
        help="as LEADFLOW_GC_THRESHOLD, the worker's default unless given (0: Python's own settings)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=500,
        help="events per batch for the batch stage (500, a few fetches' worth; the worker takes up to "
        "LEADFLOW_BATCH_SIZE, 10,000, from a backlog, about 10 %% faster here)",
    )
    parser.add_argument(
        "--engine",
        choices=("reference", "columnar", "both"),
        default="reference",
        help="what decides the batch stage's batches (both: one after the other, in the same run)",
    )
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="with --engine both: time the two engines in turns, --repeat pairs, and print each pair's ratio",
    )
    parser.add_argument("--only", action="append", default=[], metavar="STAGE", help="run only these stages")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="run each stage once more under cProfile; print its top N"
    )
    args = parser.parse_args()
    engines = ("reference", "columnar") if args.engine == "both" else (args.engine,)
    if args.alternate and args.engine != "both":
        parser.error("--alternate compares the two engines: give --engine both")
    n, engine, stages = prepare(args.leads, args.drift_sample, args.batch, engines)
    if args.only:
        wanted = {*args.only, "batch", "columnar"} if args.alternate else set(args.only)  # the pair it alternates
        stages = {name: fn for name, fn in stages.items() if name in wanted}
    ruleset, model = engine.ruleset, engine.model
    print(
        f"{n:,} events of {args.leads:,} leads; best of {args.repeat} runs; one core (Python {sys.version.split()[0]})"
    )
    print(f"ruleset {ruleset.version}, model {model.version}, gc threshold {args.gc_threshold or 'Python default'}")
    # The inputs prepared above are millions of long-lived objects that a worker would not hold; freezing them
    # keeps the garbage collector from rescanning them, as it would not have them to scan in the worker. The
    # collector runs as often as in the worker (LEADFLOW_GC_THRESHOLD).
    tune_gc(args.gc_threshold)
    gc.freeze()
    if args.alternate:
        alternate(n, stages.pop("batch"), stages.pop("columnar"), args.repeat)
    for name, fn in stages.items():
        rate = best_rate(n, fn, args.repeat)
        print(f"  {name:<8} {rate:>12,.0f} events/s   {1e6 / rate:7.2f} µs/event")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(fn)
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
