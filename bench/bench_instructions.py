"""Machine instructions per event of the core's stages, by valgrind: the same on a busy machine or a quiet one.

Timings on this shared machine move by ±20 % from run to run; instruction counts of the same code on the same
input do not (two runs of a stage agree to a few instructions per event). They are not seconds (memory stalls are
not counted), but for a change to the core's Python they say reliably which way it went and by how much.

Each stage of ``bench/bench_core.py`` runs once and twice in two processes under ``valgrind --tool=callgrind``;
the difference, divided by the events, is what one pass costs without the start-up and the preparation.

    python bench/bench_instructions.py [--stages batch,decide] [--leads 200] [--batch 50]

Needs valgrind (``apt-get install valgrind``). ``--batch 50`` over 200 leads keeps about as many leads in a batch
as the worker's 500-event batches over 2,000 leads, at a tenth of the work (a few minutes for all stages).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def count(stage: str, passes: int, leads: int, batch: int) -> tuple[int, int]:
    """Instructions of a whole process that prepares the sample and runs ``stage`` ``passes`` times, and the
    sample's number of events."""
    cmd = [
        *(["setarch", platform.machine(), "--addr-no-randomize"] if shutil.which("setarch") else []),
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--run",
        stage,
        "--passes",
        str(passes),
        "--leads",
        str(leads),
        "--batch",
        str(batch),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # string hashes, hence dict layouts, the same in every run
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1)), int(done.stdout.split()[-1])


def run(stage: str, passes: int, leads: int, batch: int) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_core import prepare

    n, _, stages = prepare(leads, drift_sample=10, batch=batch, engines=("reference", "columnar"))
    gc.freeze()
    for _ in range(passes):
        stages[stage]()
    print(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--stages", default="parse,merge,rules,score,decide,batch", help="comma-separated; also columnar, bare"
    )
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50, help="events per batch of the batch stage")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # inside valgrind: run one stage
    parser.add_argument("--passes", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run(args.run, args.passes, args.leads, args.batch)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    print(f"{args.leads:,} leads, batches of {args.batch}; instructions per event (valgrind)", flush=True)
    for stage in args.stages.split(","):
        twice, n = count(stage, 2, args.leads, args.batch)
        once, _ = count(stage, 1, args.leads, args.batch)
        print(f"  {stage:<8} {(twice - once) / n:>10,.0f}   ({n:,} events)", flush=True)


if __name__ == "__main__":
    main()
