"""Training on a CRM export: placeholders, rare values, leakage, the files written, and serving what was trained."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path

import pytest

from tests.unit.scoring.tabular_data import MAPPING, write_export
from worker.core import Engine, decide
from worker.exceptions import TrainingError
from worker.lead.events import LeadFields, LeadUpserted
from worker.rules import default_ruleset_path, load_ruleset
from worker.scoring import load_model
from worker.scoring._features import MISSING, OTHER, Categorical, Flag, Numeric
from worker.scoring._lead import facts_from_fields
from worker.scoring.training import TableReport, parse_mapping, train_table
from worker.scoring.training._export import read_table


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_export(tmp_path_factory.mktemp("export") / "leads.csv")


@pytest.fixture(scope="module")
def trained(export: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TableReport, Path]:
    out = tmp_path_factory.mktemp("model")
    return train_table(export, parse_mapping(MAPPING), out, progress=False), out


def _rows(export: Path) -> dict[str, dict[str, str]]:
    with export.open(encoding="utf-8") as handle:
        return {str(line): row for line, row in enumerate(csv.DictReader(handle), start=2)}


def test_the_planted_leaky_column_is_flagged_by_name_and_left_out(trained: tuple[TableReport, Path]) -> None:
    report, _ = trained
    flagged = [f for f in report.leakage if f["flagged"]]
    assert [f["column"] for f in flagged] == ["Sales Tag"]
    assert flagged[0]["auc"] >= 0.85
    assert all(f["auc"] < 0.85 for f in report.leakage if not f["flagged"])
    assert "custom.sales_tag" not in report.features
    assert "LEAKAGE? column 'Sales Tag'" in str(report)
    assert report.other_variant is not None
    assert report.other_variant["label"] == "with the flagged columns"
    assert report.other_variant["metrics"]["model"]["roc_auc"] > report.metrics["model"]["roc_auc"] + 0.1


def test_keeping_flagged_columns_reports_the_model_without_them(export: Path) -> None:
    mapping = parse_mapping(MAPPING + "leakage: {max_auc: 0.85, drop_flagged: false}\n")
    report = train_table(export, mapping, progress=False)
    assert "custom.sales_tag" in report.features
    assert report.other_variant is not None
    assert report.other_variant["label"] == "without the flagged columns"
    assert report.metrics["model"]["roc_auc"] > report.other_variant["metrics"]["model"]["roc_auc"]


def test_placeholders_are_missing_and_rare_values_are_other(trained: tuple[TableReport, Path]) -> None:
    report, _ = trained
    assert report.model is not None
    origin = next(f for f in report.model.features if f.name == "custom.origin")
    assert isinstance(origin, Categorical)
    assert set(origin.levels) == {"api", "form", "import"}  # "Partner Portal" (3 rows) is grouped, "Select" missing
    assert origin.value({"custom.origin": "Partner Portal"}) == OTHER
    assert origin.value({"custom.origin": " select "}) == MISSING
    model = report.model
    assert model.score({"custom.origin": "Select"}) == model.score({})
    assert model.score({"custom.origin": "N/A"}) == model.score({})


def test_features_read_the_facts_a_producer_sends(trained: tuple[TableReport, Path]) -> None:
    report, _ = trained
    assert report.model is not None
    kinds = {f.name: type(f) for f in report.model.features}
    assert kinds == {
        "custom.origin": Categorical,
        "lead_source": Categorical,
        "custom.visits": Numeric,
        "custom.newsletter": Flag,
    }
    facts = facts_from_fields({"lead_source": "Referral", "custom": {"origin": "API", "visits": 5}}, "L1")
    assert facts["lead_source"] == "Referral"
    assert facts["custom.visits"] == 5


def test_a_trained_model_served_by_the_core_scores_as_training_predicted(
    trained: tuple[TableReport, Path], export: Path
) -> None:
    report, out = trained
    engine = Engine(ruleset=load_ruleset(default_ruleset_path()), model=load_model(out / "model.json"))
    rows = _rows(export)
    predicted = report.curves["served"]  # the written model's scores of one split's held-out rows
    checked = 0
    for line, p in list(zip(report.curves["lines"], predicted, strict=True))[:40]:
        row = rows[line]
        custom: dict[str, object] = {"newsletter": row["Newsletter"]}  # as a producer would send them
        if row["Origin"] != "Select":
            custom["origin"] = row["Origin"]
        if row["Visits"]:
            custom["visits"] = int(row["Visits"])
        fields = {"custom": custom, **({"lead_source": row["Source"]} if row["Source"] else {})}
        event = LeadUpserted(
            event_id=f"e-{line}",
            occurred_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
            lead_id=row["Lead ID"],
            event_type="lead.upserted",
            lead=LeadFields(**fields),
        )
        _, decided = decide(engine, None, event, decided_at=0.0)
        assert decided.decision["score"] == pytest.approx(p, abs=1e-12)
        assert decided.decision["model_version"] == report.version
        checked += 1
    assert checked == 40


def test_factors_add_up_to_the_log_odds_exactly(trained: tuple[TableReport, Path]) -> None:
    report, _ = trained
    model = report.model
    assert model is not None
    assert model.training["calibration"]["method"] == "platt"  # the calibration map is in the weights
    for visits in (None, 0, 3, 7, 11, 40, 2.5):
        for origin in ("API", "Import", "Select", "Partner Portal", None):
            custom = {k: v for k, v in (("visits", visits), ("origin", origin), ("newsletter", "Yes")) if v is not None}
            facts = facts_from_fields({"custom": custom}, "L1")
            score = model.score(facts)
            assert score.logit == pytest.approx(
                score.baseline + math.fsum(c for _, c in score.contributions), abs=1e-12
            )
            assert score.probability == pytest.approx(1 / (1 + math.exp(-score.logit)), abs=1e-15)
            factors = model.factors(score, facts, 10)
            assert sum(f["contribution"] for f in factors) == pytest.approx(score.logit - score.baseline, abs=1e-3)


def test_the_fast_paths_agree_with_the_training_encoding(trained: tuple[TableReport, Path]) -> None:
    """Served contributions (lookup tables, binned lines) equal Σ coef·(x − mean)/scale over the encoded columns."""
    report, _ = trained
    model = report.model
    assert model is not None
    for custom in ({"visits": 0}, {"visits": 4}, {"visits": 9}, {"visits": 100}, {}, {"newsletter": True}):
        facts = facts_from_fields({"custom": custom}, "L1")
        score = dict(model.score(facts).contributions)
        for feature, w in zip(model.features, model.weights, strict=True):
            x = feature.encode(facts)
            expected = math.fsum(c * (v - m) / s for c, v, m, s in zip(w.coef, x, w.mean, w.scale, strict=True))
            assert score[feature.name] == pytest.approx(expected, abs=1e-9), feature.name


def test_the_model_file_round_trips_with_its_training_metadata(trained: tuple[TableReport, Path], export: Path) -> None:
    report, out = trained
    model = load_model(out / "model.json")
    assert model.version == report.version
    assert report.model is not None
    assert model.to_dict() == report.model.to_dict()
    meta = model.training
    assert meta["data"]["sha256"] == read_table(export).sha256
    assert meta["mapping"]["outcome"]["column"] == "Converted"
    assert meta["metrics"]["model"]["roc_auc"] == report.metrics["model"]["roc_auc"]
    assert [f["column"] for f in meta["features"]] == ["Origin", "Source", "Visits", "Newsletter"]
    assert meta["sklearn_version"]
    assert meta["leadflow_version"]
    dt.datetime.fromisoformat(meta["trained_at"])
    assert "pickle" not in (out / "model.json").read_text(encoding="utf-8")
    json.loads((out / "model.json").read_text(encoding="utf-8"))


def test_the_model_card_and_charts_are_written(trained: tuple[TableReport, Path]) -> None:
    report, out = trained
    page = (out / "model-card.html").read_text(encoding="utf-8")
    for name in ("roc", "calibration", "scores", "lift", "factors"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.count('src="data:image/png;base64,') == 5
    assert "naive Bayes (Odoo)" in page
    assert f"{report.metrics['model']['roc_auc']:.4f}" in page
    assert "Sales Tag" in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained


def test_the_baselines_are_evaluated_on_the_same_rows(trained: tuple[TableReport, Path]) -> None:
    report, _ = trained
    n = report.n_test
    assert {m["n"] for m in report.metrics.values()} == {n}
    assert set(report.metrics) == {"model", "model, uncalibrated", "naive Bayes (Odoo)", "points"}
    assert report.n_train + report.n_test == 600


def test_a_date_column_makes_the_holdout_the_latest_leads(export: Path) -> None:
    mapping = parse_mapping(MAPPING.replace("exclude: [Notes, Created]", "exclude: [Notes]\ndate: Created"))
    report = train_table(export, mapping, progress=False)
    assert report.split == "latest 30% by 'Created'"  # one split: time cannot be resampled
    assert report.spread["model"]["roc_auc"].n == 1
    assert report.curves["which"] == "latest 30% by 'Created'"
    rows = _rows(export)
    held_out = {rows[line]["Created"] for line in report.curves["lines"]}
    trained_on = {r["Created"] for line, r in rows.items() if line not in set(report.curves["lines"])}
    assert min(held_out) >= max(trained_on)


def test_a_numeric_column_holding_text_names_the_column_line_and_value(export: Path, tmp_path: Path) -> None:
    text = export.read_text(encoding="utf-8").splitlines()
    cells = text[5].split(",")
    cells[4] = "lots"
    text[5] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(text) + "\n", encoding="utf-8")
    with pytest.raises(TrainingError, match=r"bad\.csv:6: column 'Visits' is numeric but holds 'lots'") as info:
        train_table(bad, parse_mapping(MAPPING), progress=False)
    assert info.value.column == "Visits"


def test_an_outcome_with_one_class_says_what_it_saw(export: Path) -> None:
    mapping = parse_mapping(MAPPING.replace('positive: ["Yes"]', 'positive: ["Won"]'))
    with pytest.raises(TrainingError, match=r"gives 0 converted .* \(positive values \['won'\], seen \['No', 'Yes'\]"):
        train_table(export, mapping, progress=False)


def test_parquet_without_pyarrow_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)
    data = tmp_path / "leads.parquet"
    data.write_bytes(b"PAR1")
    with pytest.raises(TrainingError, match=r"leads\.parquet: reading Parquet needs pyarrow"):
        read_table(data)


def test_a_parquet_export_trains_the_same_model_as_the_csv(
    export: Path, trained: tuple[TableReport, Path], tmp_path: Path
) -> None:
    from pyarrow import csv as pa_csv
    from pyarrow import parquet as pq

    data = tmp_path / "leads.parquet"
    pq.write_table(pa_csv.read_csv(export), data)  # typed columns, as a real Parquet export has: numbers, nulls
    report = train_table(data, parse_mapping(MAPPING), tmp_path / "model", progress=False)
    from_csv = load_model(trained[1] / "model.json").to_dict()
    from_parquet = load_model(tmp_path / "model" / "model.json").to_dict()
    assert from_parquet["features"] == from_csv["features"]
    assert from_parquet["intercept"] == from_csv["intercept"]
    assert report.metrics == trained[0].metrics


def test_a_missing_data_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"nope\.csv: data file not found"):
        read_table(tmp_path / "nope.csv")
