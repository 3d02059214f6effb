"""Training end to end: synthetic data → replay through the worker's own code → fit → evaluate → JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.scoring import load_model
from worker.scoring.training import TrainReport, train_synthetic


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainReport:
    out = tmp_path_factory.mktemp("train") / "model.json"
    return train_synthetic(seed=3, n_leads=1500, out=out, progress=False)


def test_train_synthetic_learns(trained: TrainReport) -> None:
    report = trained
    assert report.auc > 0.75
    assert report.brier < 0.15
    assert 0.1 < report.base_rate < 0.3
    assert report.n_train + report.n_test == report.n_leads == 1500
    assert sum(b.n for b in report.calibration) == report.n_test
    assert sum(b.n for b in report.calibration_last) == report.n_test
    assert report.auc_last > 0.75
    assert all(b.lo <= b.predicted <= b.hi for b in report.calibration)


def test_the_written_model_is_the_reported_one(trained: TrainReport) -> None:
    report = trained
    assert report.path is not None
    model = load_model(report.path)
    assert model.version == report.version
    assert model.version.startswith("synthetic-s3-")
    assert model.training["holdout"]["random_event"]["auc"] == report.auc
    assert model.training["holdout"]["last_event"]["auc"] == report.auc_last
    text = str(report)
    assert f"AUC {report.auc:.3f}" in text
    assert str(report.path) in text


def test_training_is_deterministic_and_quiet(
    trained: TrainReport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = trained
    again = train_synthetic(seed=3, n_leads=1500, out=tmp_path / "again.json")  # progress: only on a terminal
    assert again.version == report.version
    assert (tmp_path / "again.json").read_bytes() == Path(str(report.path)).read_bytes()
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""


def test_repeated_splits_evaluate_the_synthetic_model_without_changing_it(trained: TrainReport, tmp_path: Path) -> None:
    again = train_synthetic(seed=3, n_leads=1500, out=tmp_path / "again.json", progress=False, splits=3)
    assert (tmp_path / "again.json").read_bytes() == Path(str(trained.path)).read_bytes()  # the same model file
    assert trained.spread == {}  # no splits asked for: none run
    spread = again.spread["model"]["roc_auc"]
    assert spread.n == 3
    assert spread.min <= spread.mean <= spread.max
    assert {v.baseline for v in again.verdicts} == {"naive Bayes (Odoo)", "points"}
    assert "over 3 repeated stratified 25% splits of the leads (seeds 0-2" in str(again)
