"""The core benchmark's ``bare`` engine: next to no logic, but a real engine that decides every event."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_core import bare_engine, prepare

from worker.batch import Record, process_batch
from worker.scoring.training import generate


def test_the_bare_engine_has_one_rule_and_one_feature_and_decides_every_event() -> None:
    engine = bare_engine()
    assert len(engine.ruleset.scoring_rules) == 1
    assert engine.ruleset.qualification_rules == ()
    assert len(engine.model.features) == 1

    data = generate(20, seed=11, start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC), weeks=2)
    records = [Record(e["lead_id"].encode(), orjson.dumps(e), "leads", 0, i) for i, e in enumerate(data.events)]
    result = process_batch(engine, records, {}.get, 1.0)

    assert result.dead_letters == []  # a benchmark of dead letters would look fast and measure nothing
    assert len(result.decisions) == len(records)
    decisions = [orjson.loads(value) for _, value in result.decisions]
    assert {d["ruleset_version"] for d in decisions} == {engine.ruleset.version}
    assert any(d["matched_rules"] == ["has-email"] for d in decisions)
    assert all(len(d["factors"]) == 1 for d in decisions)


def test_the_columnar_stage_is_there_only_when_asked_for() -> None:
    _, _, reference = prepare(5, 10, 50)
    _, _, both = prepare(5, 10, 50, ("reference", "columnar"))
    _, _, columnar = prepare(5, 10, 50, ("columnar",))
    assert "columnar" not in reference
    assert {"batch", "columnar"} <= set(both)
    assert "batch" not in columnar
    columnar["columnar"]()  # it runs


def test_alternating_the_engines_keeps_the_pair_whatever_only_names() -> None:
    """``--alternate --only batch`` still times the two engines in turns (it stopped on a KeyError before)."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_core.py"
    args = ["--leads", "5", "--repeat", "1", "--engine", "both", "--alternate", "--only", "batch"]
    done = subprocess.run([sys.executable, str(bench), *args], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "pair 1: batch" in done.stdout
    assert "columnar / batch" in done.stdout
