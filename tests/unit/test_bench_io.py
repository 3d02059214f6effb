"""The JSON in-and-out benchmark measures what it says: every stage over the same events, all of them decided."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_io import measure, stages


def test_each_stage_handles_every_event() -> None:
    runs = {name: fn() for name, fn in stages(200).items()}
    assert [len(runs[name]) for name in ("loads", "parse", "dumps")] == [200, 200, 200]  # type: ignore[arg-type]
    assert runs["arrow"].num_rows == 200  # type: ignore[attr-defined]
    assert set(measure(50, 1)) == {"loads", "parse", "arrow", "dumps", "core"}
    assert len(runs["core"].decisions) == 200  # type: ignore[attr-defined]
