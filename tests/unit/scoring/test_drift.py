"""Drift: the PSI, the training distributions a model stores, and ``leadflow drift`` through ``worker.cli.main``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import orjson
import pytest

from worker.batch import trim_cache
from worker.cli import main
from worker.columnar import BatchEngine, EngineName, batch_engine
from worker.lead.state import LeadState
from worker.scoring import (
    default_model_path,
    distributions,
    load_model,
    measure_drift,
    psi,
    verdict,
)
from worker.scoring._features import Categorical, Numeric
from worker.scoring.training import generate, train_synthetic
from worker.scoring.training.train import SYNTHETIC_START, SYNTHETIC_WEEKS
from worker.tools import drift

TRAIN_LEADS = 1500  # enough that sampling noise stays well below PSI 0.1 (measured: at most 0.05)


def test_psi_of_a_hand_checked_example() -> None:
    # (0.25 - 0.5)·ln(0.25/0.5) + (0.75 - 0.5)·ln(0.75/0.5) = 0.25·0.6931 + 0.25·0.4055
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.27465, abs=1e-5)
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    # an empty training level counts as 0.0001: (0.1 - 0.0001)·ln(1000) + (0.4 - 0.5)·ln(0.8)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(0.0999 * math.log(1000) - 0.1 * math.log(0.8))


def test_verdicts_follow_the_conventional_thresholds() -> None:
    assert [verdict(v) for v in (0.0, 0.099, 0.1, 0.25, 0.251, 3.0)] == [
        "stable",
        "stable",
        "moderate shift",
        "moderate shift",
        "significant",
        "significant",
    ]


def test_distributions_use_the_model_levels_and_training_deciles_with_missing() -> None:
    source = Categorical("lead_source", "lead_source", "lead source", levels=("web", "event"))
    employees = Numeric("employees", "employees", "employees", missing_indicator=True)
    rows: list[dict[str, object]] = [{"lead_source": "Web", "employees": n} for n in range(1, 11)]
    rows += [{"lead_source": "Fax"}, {"lead_source": None, "employees": None}]
    stored = distributions([source, employees], rows)
    assert stored["rows"] == 12
    assert stored["features"]["lead_source"] == {
        "levels": ["web", "event", "(other)", "(missing)"],
        "shares": [round(10 / 12, 6), 0.0, round(1 / 12, 6), round(1 / 12, 6)],
    }
    numbers = stored["features"]["employees"]
    assert numbers["edges"] == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert numbers["range"] == [1.0, 10.0]
    assert numbers["levels"][0] == "< 2"
    assert numbers["levels"][-2:] == [">= 10", "(missing)"]
    assert numbers["shares"] == [round(1 / 12, 6)] * 10 + [round(2 / 12, 6)]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model trained on the synthetic generator, and two windows: another seed as is, and with one source only."""
    root = tmp_path_factory.mktemp("drift")
    model = root / "model.json"
    train_synthetic(seed=7, n_leads=TRAIN_LEADS, out=model, progress=False)
    events = generate(TRAIN_LEADS, seed=99, start=SYNTHETIC_START, weeks=SYNTHETIC_WEEKS).events
    same, shifted, short = root / "same.jsonl", root / "shifted.jsonl", root / "short.jsonl"
    same.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    short.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events[:2000]))
    for event in events:
        if "lead" in event:
            event["lead"]["lead_source"] = "Partner"
    shifted.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    (root / "short-shifted.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events[:2000]))
    return {
        "model": model,
        "same": same,
        "shifted": shifted,
        "short": short,
        "short-shifted": root / "short-shifted.jsonl",
        "root": root,
    }


def test_training_stores_a_distribution_for_every_feature(files: dict[str, Path]) -> None:
    model = load_model(files["model"])
    stored = model.training["distributions"]
    assert set(stored["features"]) == {f.name for f in model.features}
    for spec in stored["features"].values():
        assert len(spec["levels"]) == len(spec["shares"])
        assert sum(spec["shares"]) == pytest.approx(1.0, abs=1e-5)


def _drift(files: dict[str, Path], window: str, *extra: str) -> tuple[int, dict[str, object]]:
    out = files["root"] / f"{window}.json"
    code = main(["drift", "--model", str(files["model"]), "--events", str(files[window]), "--json", str(out), *extra])
    return code, json.loads(out.read_text(encoding="utf-8"))


def test_a_window_from_the_training_generator_has_not_drifted(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _drift(files, "same", "--last", "1000000", "--fail-on-drift")
    assert code == 0
    assert report["moved"] == []
    assert all(f["verdict"] == "stable" for f in report["features"])  # type: ignore[attr-defined]
    assert "no feature moved" in capsys.readouterr().out


def test_leads_from_one_source_only_are_flagged_as_a_significant_shift(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    html = files["root"] / "drift.html"
    code, report = _drift(files, "shifted", "--last", "1000000", "--html", str(html))
    assert code == 0  # without --fail-on-drift, drift is reported, not failed
    first = report["features"][0]  # type: ignore[index]
    assert (first["feature"], first["verdict"]) == ("lead_source", "significant")
    assert report["moved"] == ["lead_source"]
    printed = capsys.readouterr().out
    assert "PSI < 0.1 stable, 0.1 to 0.25 moderate shift, > 0.25 significant" in printed
    assert "moved: lead_source (significant" in printed
    assert "partner" in printed.splitlines()[4]  # the first row says which level took over
    assert "lead_source" in html.read_text(encoding="utf-8")
    assert _drift(files, "short-shifted", "--fail-on-drift")[0] == 1


def test_the_columnar_engine_gives_the_same_report(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """``LEADFLOW_ENGINE`` picks the engine drift replays the history with: the facts, so the report, are the same."""
    picked: list[str] = []

    def engine(name: EngineName) -> BatchEngine:
        picked.append(name)
        return batch_engine(name)

    monkeypatch.setattr(drift, "batch_engine", engine)
    monkeypatch.setenv("LEADFLOW_ENGINE", "reference")
    reference = _drift(files, "shifted", "--last", "3000")
    monkeypatch.setenv("LEADFLOW_ENGINE", "columnar")
    assert _drift(files, "shifted", "--last", "3000") == reference
    assert picked == ["reference", "columnar"]
    assert "lead_source" in reference[1]["moved"]  # type: ignore[operator]


def test_a_bounded_state_cache_gives_the_same_report(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """``LEADFLOW_STATE_CACHE_SIZE`` bounds the states drift keeps decoded between batches, as in the worker; leads
    trimmed away are decoded again from their stored state, so the report does not change."""
    trimmed: list[tuple[int, int, int]] = []  # the bound, states before, states after

    def trim(cache: dict[str, LeadState], size: int) -> None:
        before = len(cache)
        trim_cache(cache, size)
        trimmed.append((size, before, len(cache)))

    monkeypatch.setattr(drift, "trim_cache", trim)
    monkeypatch.setenv("LEADFLOW_BATCH_SIZE", "200")
    unbounded = _drift(files, "shifted", "--last", "3000")
    for bound in ("10", "0"):
        monkeypatch.setenv("LEADFLOW_STATE_CACHE_SIZE", bound)
        assert _drift(files, "shifted", "--last", "3000") == unbounded
    assert any(size == 10 and after < before for size, before, after in trimmed)  # the bound did drop states


def test_the_window_is_the_last_n_decided_events(files: dict[str, Path]) -> None:
    _, report = _drift(files, "short", "--last", "500")
    assert (report["window"], report["decided"]) == (500, 2000)


def test_a_model_without_training_distributions_is_refused_with_how_to_retrain(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old = files["root"] / "old.json"
    data = load_model(files["model"]).to_dict()
    del data["training"]["distributions"]
    old.write_text(json.dumps(data), encoding="utf-8")
    assert main(["drift", "--model", str(old), "--events", str(files["same"])]) == 2
    error = capsys.readouterr().err
    assert "has no training distributions" in error
    assert "leadflow train --synthetic --out MODEL.json" in error
    # the shipped model carries its distributions
    assert "distributions" in load_model(default_model_path()).training
    # it still loads and scores exactly as before
    facts = {"lead_source": "Web", "number_of_employees": 40}
    assert load_model(old).score(facts) == load_model(files["model"]).score(facts)


def test_no_events_and_an_unreachable_broker_are_clear_errors(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    empty = files["root"] / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    assert main(["drift", "--model", str(files["model"]), "--events", str(empty)]) == 2
    assert "holds no valid lead event" in capsys.readouterr().err
    code = main(["drift", "--model", str(files["model"]), "--topic", "leads", "--broker", "localhost:1"])
    assert code == 2
    assert "cannot reach the broker at 'kafka://localhost:1'" in capsys.readouterr().err


def test_measure_drift_compares_with_the_same_levels_and_bins(files: dict[str, Path]) -> None:
    model = load_model(files["model"])
    stored = model.training["distributions"]["features"]
    rows = [{"lead_source": "Web", "activity.page_view.count": 3}] * 4
    drifts = {d.feature: d for d in measure_drift(model, rows, "test")}
    assert drifts["lead_source"].levels == tuple(stored["lead_source"]["levels"])
    assert drifts["lead_source"].actual[stored["lead_source"]["levels"].index("web")] == 1.0
    assert drifts["number_of_employees"].missing == 1.0
    assert sum(drifts["activity.page_view.count"].actual) == pytest.approx(1.0)
