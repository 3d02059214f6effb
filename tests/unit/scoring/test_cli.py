"""``leadflow train`` and ``leadflow score`` through ``worker.cli.main``: exit codes, output, files written."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from tests.builders import v1_state
from tests.unit.scoring.tabular_data import MAPPING, write_export
from worker.cli import main
from worker.scoring import default_model_path, load_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, int]:
    root = tmp_path_factory.mktemp("cli")
    data = write_export(root / "leads.csv")
    mapping = root / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    out = root / "out"
    buffer = io.StringIO()  # a module fixture cannot use capsys
    with contextlib.redirect_stdout(buffer):
        # The tiny export's signal is additive over independent columns, where naive Bayes is about as good as
        # the model (test_no_better.py checks that rule on purpose-made data): allowed, so model.json is written.
        code = main(["train", "--data", str(data), "--mapping", str(mapping), "--out", str(out), "--allow-no-better"])
    return data, out, buffer.getvalue(), code


def test_train_writes_the_model_the_card_and_charts_and_prints_the_comparison(
    trained: tuple[Path, Path, str, int],
) -> None:
    _, out, printed, code = trained
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "calibration.png",
        "factors.png",
        "lift.png",
        "model-card.html",
        "model.json",
        "roc.png",
        "scores.png",
    ]
    model = load_model(out / "model.json")
    assert printed.startswith(f"model {model.version}: 600 leads")
    stored = model.training["distributions"]  # for 'leadflow drift': every feature, on the training rows
    assert set(stored["features"]) == {f.name for f in model.features}
    assert stored["rows"] == model.training["data"]["used"] == 600  # the written model is fitted on every row
    assert "naive Bayes (Odoo)" in printed
    assert "LEAKAGE? column 'Sales Tag'" in printed


def test_train_with_a_bad_mapping_exits_2_naming_the_column(
    trained: tuple[Path, Path, str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = trained[0]
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING.replace("Source: lead_source", "Sourse: lead_source"), encoding="utf-8")
    assert main(["train", "--data", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "leadflow: error: " in err
    assert "column 'Sourse' is not in" in err
    assert "(did you mean 'Source'?)" in err
    assert not (tmp_path / "o").exists()


def test_train_needs_synthetic_or_data_with_a_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path / "m")]) == 2
    assert "train needs either --synthetic or --data FILE --mapping MAPPING.yaml" in capsys.readouterr().err
    assert main(["train", "--data", "x.csv", "--out", str(tmp_path / "m")]) == 2
    assert "--data needs --mapping MAPPING.yaml" in capsys.readouterr().err


def test_score_prints_the_score_and_factors_that_add_up(
    trained: tuple[Path, Path, str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = trained[1]
    lead = tmp_path / "lead.json"
    lead.write_text(json.dumps({"lead_source": "Referral", "custom": {"origin": "API", "visits": 9}}), encoding="utf-8")
    assert main(["score", "--lead", str(lead), "--model", str(out / "model.json"), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    model = load_model(out / "model.json")
    assert lines[0].startswith("score ")
    assert model.version in lines[0]
    assert "  Origin = API (+" in "\n".join(lines[2:4])
    assert lines[4].startswith("  2 other factors (")
    logit = float(lines[1].split()[1])
    baseline = float(lines[1].split()[4])
    parts = [float(line.rsplit("(", 1)[1].rstrip(")")) for line in lines[2:]]
    assert logit == pytest.approx(baseline + sum(parts), abs=0.02)  # rounded to 2 decimals each


def test_score_reads_json_lines_events_with_the_default_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [
        {"schema_version": 1, "event_id": "e1", "occurred_at": "2024-03-01T10:00:00+00:00", "lead_id": "L1",
         "event_type": "lead.upserted", "lead": {"lead_source": "Referral", "title": "VP of Sales"}},
        {"schema_version": 1, "event_id": "e2", "occurred_at": "2024-03-01T11:00:00+00:00", "lead_id": "L1",
         "event_type": "lead.activity", "activity": {"type": "demo_request"}},
    ]  # fmt: skip
    lead = tmp_path / "events.jsonl"
    lead.write_text("\n".join(json.dumps(e) for e in events) + "\n", encoding="utf-8")
    assert main(["score", "--lead", str(lead)]) == 0
    printed = capsys.readouterr().out
    assert load_model(default_model_path()).version in printed
    assert "demo requests: 1 (+" in printed


def test_score_errors_exit_2_with_the_file_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--lead", str(tmp_path / "none.json")]) == 2
    assert "none.json: lead file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"lead_source": 12', encoding="utf-8")
    assert main(["score", "--lead", str(bad)]) == 2
    assert "bad.json: not JSON or JSON lines" in capsys.readouterr().err
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"number_of_employees": -4}', encoding="utf-8")
    assert main(["score", "--lead", str(invalid)]) == 2
    assert "invalid.json: " in capsys.readouterr().err


V1_STATE = v1_state(  # as a leadflow before layout version 2 stored it, before the history existed too
    "L7",
    profile={"lead_source": "Referral", "title": "VP of Sales"},
    activity={"demo_request": [2, 1_700_000_100.0]},
    last_activity_at=1_700_000_100.0,
    events=3,
)
del V1_STATE["history"]


@pytest.mark.parametrize("layout", ["current", "version 1"])
def test_score_reads_a_state_as_the_worker_stores_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str
) -> None:
    from worker.lead.state import upgrade

    state = upgrade(V1_STATE) if layout == "current" else V1_STATE
    lead = tmp_path / "state.json"
    lead.write_text(json.dumps(state), encoding="utf-8")
    assert main(["score", "--lead", str(lead), "--top", "3"]) == 0
    printed = capsys.readouterr().out
    assert "demo requests: 2 (+" in printed
    assert "lead source = Referral (+" in printed


def test_score_refuses_a_state_of_a_newer_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lead = tmp_path / "state.json"
    lead.write_text(json.dumps({**V1_STATE, "v": 9}), encoding="utf-8")
    assert main(["score", "--lead", str(lead)]) == 2
    err = capsys.readouterr().err
    assert "state.json: stored state of lead 'L7' has layout version 9" in err
    assert "reads versions 1 and 2" in err


def test_train_synthetic_still_works_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model.json"
    assert main(["train", "--synthetic", "--seed", "3", "--leads", "300", "--out", str(out), "--splits", "0"]) == 0
    assert load_model(out).version.startswith("synthetic-s3-")
    assert f"written to {out}" in capsys.readouterr().out


def test_train_synthetic_on_too_few_leads_is_not_better_than_a_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """300 leads: over 10 splits the points table does as well as the model, so the model is not written."""
    out = tmp_path / "model.json"
    assert main(["train", "--synthetic", "--seed", "3", "--leads", "300", "--out", str(out)]) == 3
    printed = capsys.readouterr().out
    assert "over 10 repeated stratified 25% splits of the leads (seeds 0-9" in printed
    assert "points does as well as the model: mean ROC AUC" in printed
    assert "NOT BETTER: " in printed
    assert "not written (pass --allow-no-better to write it anyway)" in printed
    assert not out.exists()
    assert main(["train", "--synthetic", "--seed", "3", "--leads", "300", "--out", str(out), "--allow-no-better"]) == 0
    assert out.exists()
