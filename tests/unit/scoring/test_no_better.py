"""``leadflow train --data`` against its baselines over repeated splits, C chosen by cross-validation, and the exit.

Two small exports with a known answer: independent yes/no columns that add up on the log-odds (naive Bayes is the
right model there, so it must tie), and an outcome that is the exclusive or of two columns (each column alone says
nothing, so naive Bayes and points stay at chance while the model, given the pair as an interaction, must win).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import random
from pathlib import Path

import pytest

from worker.cli import main
from worker.scoring import load_model
from worker.scoring.training import TableReport, parse_mapping, train_table

COLUMNS = """
outcome: {column: Won, positive: ["1"]}
columns:
  A: {field: custom.a, kind: yes_no}
  B: {field: custom.b, kind: yes_no}
  C: {field: custom.c, kind: yes_no}
"""
INDEPENDENT = "name: independent" + COLUMNS + "evaluation: {holdout: 0.3, seed: 3, splits: 5}\n"
XOR = (
    "name: xor"
    + COLUMNS
    + "interactions: [[A, B]]\n"
    + "leakage: {max_auc: 0.99, drop_flagged: true}  # the pair alone reaches AUC 0.9: a real signal, not a leak\n"
)


def write(path: Path, n: int, logit: object, seed: int = 11) -> Path:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["A", "B", "C", "Won"])
        for _ in range(n):
            a, b, c = (rng.random() < 0.5 for _ in range(3))
            z = logit(a, b, c)  # type: ignore[operator]
            won = rng.random() < 1 / (1 + math.exp(-z))
            writer.writerow(["Yes" if a else "No", "Yes" if b else "No", "Yes" if c else "No", int(won)])
    return path


@pytest.fixture(scope="module")
def independent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("independent") / "leads.csv"
    return write(path, 500, lambda a, b, c: -0.5 + 1.0 * a + 0.7 * b - 0.6 * c)


@pytest.fixture(scope="module")
def xor(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("xor")
    mapping = root / "mapping.yaml"
    mapping.write_text(XOR, encoding="utf-8")
    return write(root / "leads.csv", 400, lambda a, b, c: 2.0 if a != b else -2.0), mapping


@pytest.fixture(scope="module")
def xor_cli(xor: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    data, mapping = xor
    out = tmp_path_factory.mktemp("xor-model")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["train", "--data", str(data), "--mapping", str(mapping), "--out", str(out)])
    return code, buffer.getvalue(), out


def test_on_independent_columns_naive_bayes_does_as_well_and_the_card_says_so(
    independent: Path, tmp_path: Path
) -> None:
    report = train_table(independent, parse_mapping(INDEPENDENT), tmp_path, progress=False)
    nb = next(v for v in report.verdicts if v.baseline == "naive Bayes (Odoo)")
    assert nb.as_good
    assert nb.lead.n == 5
    assert "naive Bayes (Odoo) does as well as the model: mean ROC AUC" in str(report)
    assert "NOT BETTER: naive Bayes (Odoo)" in str(report)
    page = (tmp_path / "model-card.html").read_text(encoding="utf-8")
    assert "Not better than a baseline: naive Bayes (Odoo)" in page
    assert "naive Bayes (Odoo) does as well as the model" in page
    assert (tmp_path / "model.json").exists()  # the library default allows it; the command line does not


def test_the_command_refuses_a_model_that_is_not_better_unless_allowed(
    independent: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(INDEPENDENT, encoding="utf-8")
    refused, allowed = tmp_path / "refused", tmp_path / "allowed"
    args = ["train", "--data", str(independent), "--mapping", str(mapping), "--splits", "3"]
    assert main([*args, "--out", str(refused)]) == 3
    printed = capsys.readouterr().out
    assert "evaluated on 3 stratified 30% splits, seeds 0-2" in printed
    assert "model.json not written (pass --allow-no-better to write it anyway)" in printed
    assert not (refused / "model.json").exists()
    assert (refused / "model-card.html").exists()  # the card says why
    assert main([*args, "--out", str(allowed), "--allow-no-better"]) == 0
    assert "written anyway" in capsys.readouterr().out
    assert load_model(allowed / "model.json").training["split"]["splits"] == 3


def test_with_an_interaction_the_model_beats_both_baselines_and_the_command_exits_0(
    xor_cli: tuple[int, str, Path],
) -> None:
    code, printed, out = xor_cli
    assert code == 0
    assert "evaluated on 10 stratified 30% splits, seeds 0-9" in printed  # the default
    assert "the model beats naive Bayes (Odoo)" in printed
    assert "the model beats points" in printed
    assert "NOT BETTER" not in printed
    training = load_model(out / "model.json").training
    assert [v["as_good"] for v in training["baselines"]] == [False, False]
    spread = training["spread"]
    assert spread["model"]["roc_auc"]["mean"] > 0.8
    assert spread["naive Bayes (Odoo)"]["roc_auc"]["mean"] < 0.6  # each column alone says nothing
    assert len(training["per_split"]) == 10
    assert spread["model"]["roc_auc"]["min"] <= spread["model"]["roc_auc"]["mean"] <= spread["model"]["roc_auc"]["max"]


def test_c_is_chosen_by_cross_validation_and_recorded_in_the_model_and_card(xor_cli: tuple[int, str, Path]) -> None:
    _, printed, out = xor_cli
    reg = load_model(out / "model.json").training["regularisation"]
    assert reg["grid"] == [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]
    assert reg["C"] in reg["grid"]
    assert reg["log_loss"][reg["grid"].index(reg["C"])] == min(reg["log_loss"])  # the best mean CV log loss
    assert len(reg["per_split"]) == 10
    assert f"C = {reg['C']:g}, chosen by 5-fold stratified cross-validation on the training rows" in printed
    page = (out / "model-card.html").read_text(encoding="utf-8")
    assert f"C = <strong>{reg['C']:g}</strong>" in page
    assert "mean cross-validated log loss" in page


def test_a_fixed_c_in_the_mapping_is_used_as_is(independent: Path) -> None:
    report: TableReport = train_table(
        independent, parse_mapping(INDEPENDENT + "model: {C: 0.5}\n"), progress=False, splits=2
    )
    assert report.regularisation == {"C": 0.5, "chosen_by": "mapping (model.C)"}
    assert report.model is not None
    assert report.model.training["C"] == 0.5
    assert "C = 0.5, fixed by the mapping (model.C)" in str(report)


def test_a_progress_bar_counts_the_splits(independent: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train_table(independent, parse_mapping(INDEPENDENT + "model: {C: 1}\n"), progress=True, splits=2)
    shown = capsys.readouterr()
    (line,) = [line for line in (shown.out + shown.err).splitlines() if line.startswith("splits ")]
    assert "2/2" in line


def test_splits_below_one_are_refused(independent: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(INDEPENDENT, encoding="utf-8")
    out = str(tmp_path / "o")
    assert main(["train", "--data", str(independent), "--mapping", str(mapping), "--out", out, "--splits", "0"]) == 2
    assert "--splits must be at least 1, got 0" in capsys.readouterr().err
    assert main(["train", "--synthetic", "--out", out, "--splits", "-1"]) == 2
    assert "--splits must be 0 or more with --synthetic, got -1" in capsys.readouterr().err
