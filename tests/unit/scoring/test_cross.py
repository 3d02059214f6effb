"""Interactions: two columns read together as one additive factor, trained, stored, loaded and served alike."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.unit.scoring.tabular_data import MAPPING, served_score, train_export
from worker.exceptions import ModelError, TrainingError
from worker.scoring import default_model_path, load_model
from worker.scoring._features import OTHER, Categorical, Cross, Flag
from worker.scoring._lead import facts_from_fields
from worker.scoring.training import TableReport, parse_mapping

CROSSED = MAPPING + "interactions:\n  - [Origin, Newsletter]\n"
FACTS = [
    {"custom": {"origin": "API", "newsletter": "Yes", "visits": 3}},
    {"custom": {"origin": "Form", "newsletter": "No"}},
    {"custom": {"origin": "Partner Portal", "newsletter": "Yes"}},  # a rare origin: the pair is (other)
    {"custom": {"newsletter": "No"}, "lead_source": "Referral"},  # origin missing
    {},
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TableReport, Path]:
    return train_export(tmp_path_factory, CROSSED)


def _cross(report: TableReport) -> Cross:
    assert report.model is not None
    return next(f for f in report.model.features if isinstance(f, Cross))


def test_an_interaction_is_one_feature_over_the_frequent_pairs(trained: tuple[TableReport, Path]) -> None:
    report, _ = trained
    cross = _cross(report)
    assert cross.name == "custom.origin*custom.newsletter"
    assert cross.paths == ("custom.origin", "custom.newsletter")
    assert "api × yes" in cross.levels
    assert cross.value({"custom.origin": "Partner Portal", "custom.newsletter": "Yes"}) == OTHER
    leakage = {f["feature"]: f["column"] for f in report.leakage}
    assert leakage[cross.name] == "Origin × Newsletter"
    assert set(report.metrics) >= {"naive Bayes (Odoo)", "points"}  # the baselines read each column once


def test_factors_with_an_interaction_add_up_and_match_the_training_encoding(trained: tuple[TableReport, Path]) -> None:
    report, _ = trained
    model = report.model
    assert model is not None
    for fields in FACTS * 2:  # twice: the second time from the served pairs' cache
        facts = facts_from_fields(fields, "L1")
        score = model.score(facts)
        assert score.logit == pytest.approx(score.baseline + math.fsum(c for _, c in score.contributions), abs=1e-12)
        contributions = dict(score.contributions)
        for feature, w in zip(model.features, model.weights, strict=True):
            x = feature.encode(facts)
            expected = math.fsum(c * (v - m) / s for c, v, m, s in zip(w.coef, x, w.mean, w.scale, strict=True))
            assert contributions[feature.name] == pytest.approx(expected, abs=1e-9), feature.name


def test_an_interaction_factor_names_both_values() -> None:
    origin = Categorical("custom.origin", "custom.origin", "origin", levels=("api", "form"), display=("API", "Form"))
    newsletter = Flag("custom.newsletter", "custom.newsletter", "newsletter")
    cross = Cross("a*b", "origin × newsletter", (origin, newsletter), levels=("api × yes",))
    assert cross.describe({"custom.origin": "API", "custom.newsletter": "Yes"}) == "origin = API and newsletter: yes"
    assert cross.describe({"custom.origin": "Form", "custom.newsletter": "Yes"}) == (
        "origin = Form and newsletter: yes (a rare pair)"
    )


def test_a_model_with_an_interaction_is_format_2_and_loads_and_serves_as_trained(
    trained: tuple[TableReport, Path],
) -> None:
    report, out = trained
    data = json.loads((out / "model.json").read_text())
    assert data["format_version"] == 2
    model = load_model(out / "model.json")
    assert model.version == report.version
    for i, fields in enumerate(FACTS):
        trained_facts = facts_from_fields(dict(fields), f"L{i}")  # as training reads a row with these cells
        assert served_score(model, fields, f"L{i}") == pytest.approx(model.score(trained_facts).probability, abs=1e-12)


def test_a_model_without_interactions_stays_format_1() -> None:
    data = json.loads(default_model_path().read_text())
    assert data["format_version"] == 1
    assert load_model(default_model_path()).to_dict()["format_version"] == 1


def _model_with_cross(out: Path, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "model.json").read_text())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format_version": 1}, "kind 'cross' needs format_version 2, got 1"),
        ({"format_version": 4}, "format_version 4 is not supported; this leadflow reads versions 1 to 3"),
    ],
)
def test_a_cross_in_an_old_or_future_format_is_refused(
    trained: tuple[TableReport, Path], tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    _, out = trained
    path = tmp_path / "model.json"
    path.write_text(json.dumps(_model_with_cross(out, **change)))
    with pytest.raises(ModelError, match=message):
        load_model(path)


def test_a_cross_level_that_is_no_pair_of_its_parts_levels_is_refused(
    trained: tuple[TableReport, Path], tmp_path: Path
) -> None:
    _, out = trained
    data = _model_with_cross(out)
    entry = next(f for f in data["features"] if f["kind"] == "cross")
    entry["levels"] = [*entry["levels"][:-1], "api × maybe"]
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    with pytest.raises(
        ModelError, match=r"levels must be distinct pairs 'a × b' of the parts' levels, got \['api × maybe'\]"
    ):
        load_model(path)


@pytest.mark.parametrize(
    ("interactions", "message"),
    [
        ("[[Origin, Origin]]", "interactions[0]: a column cannot interact with itself"),
        ("[[Origin, Orign]]", "interactions[0]: 'Orign' is not a mapped column (did you mean 'Origin'?)"),
        ("[[Origin, Visits]]", "interactions[0]: 'Visits' is numeric; interactions read text or yes/no columns"),
        ("[Origin]", "interactions[0]: expected a pair [column, column], got 'Origin'"),
    ],
)
def test_interaction_mistakes_say_which_and_why(interactions: str, message: str) -> None:
    with pytest.raises(TrainingError) as info:
        parse_mapping(MAPPING + f"interactions: {interactions}\n")
    assert message in str(info.value)


def test_a_worker_refuses_a_cross_whose_second_column_the_stream_cannot_feed(
    trained: tuple[TableReport, Path], tmp_path: Path
) -> None:
    from worker.artifacts import check_servable

    _, out = trained
    data = _model_with_cross(out)
    cross = next(f for f in data["features"] if f["kind"] == "cross")
    cross["parts"][1]["path"] = "Newsletter Opt-In"  # a CSV column name, not a fact of the stream
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"feature reads 'Newsletter Opt-In'"):
        check_servable(load_model(path), str(path))
    check_servable(load_model(out / "model.json"), "trained")  # as trained: both parts are facts
