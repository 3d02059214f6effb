"""What one lead costs to score and explain: ``Model.score`` + ``Model.factors(top=5)``, per model file.

    .venv/bin/python bench/bench_model_cost.py MODEL.json [MODEL.json ...] [--data ../shared/data/x-education-leads.csv]
                                            [--mapping examples/x-education/mapping.yaml] [--leads 1000] [--runs 300]

The facts are those of the export's first ``--leads`` rows as ``leadflow train`` builds them (so every model given
should read that export's facts). The models are timed in turns, each run over every lead, and the best run of
``--runs`` is kept for each: on a shared machine the least disturbed run is the closest to the cost itself.
"""

from __future__ import annotations

import argparse
import gc
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.scoring import load_model  # noqa: E402
from worker.scoring.training import load_mapping  # noqa: E402
from worker.scoring.training._export import prepare, read_table  # noqa: E402
from worker.scoring.training._progress import Bar as _Bar  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "x-education-leads.csv")
    parser.add_argument("--mapping", type=Path, default=ROOT / "examples" / "x-education" / "mapping.yaml")
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    facts = prepare(read_table(args.data), load_mapping(args.mapping), _Bar()).facts[: args.leads]
    models = [load_model(path) for path in args.models]
    gc.collect()
    gc.freeze()  # the facts are long-lived: keep the collector from rescanning them
    best = {model.version: [float("inf"), float("inf")] for model in models}
    for _ in range(args.runs):
        for model in models:
            score, factors = model.score, model.factors
            alone = timeit.timeit(lambda: [score(f) for f in facts], number=1)  # noqa: B023
            both = timeit.timeit(lambda: [factors(score(f), f, 5) for f in facts], number=1)  # noqa: B023
            times = best[model.version]
            times[0], times[1] = min(times[0], alone), min(times[1], both)
    print(f"{len(facts):,} leads of {args.data.name}; best of {args.runs} runs (Python {sys.version.split()[0]})")
    for model, path in zip(models, args.models, strict=True):
        alone, both = (t / len(facts) * 1e6 for t in best[model.version])
        name = f"{model.version} ({path}, {len(model.features)} features)"
        print(f"  {name}: score {alone:.2f} µs, score + factors(top=5) {both:.2f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
