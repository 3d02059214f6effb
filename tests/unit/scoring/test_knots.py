"""Knots: a number read as a curve through learned values at its training quantiles, still one additive factor."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from tests.unit.scoring.tabular_data import MAPPING, served_score, train_export, write_export
from worker.artifacts import check_servable
from worker.exceptions import ModelError, TrainingError
from worker.scoring import Model, load_model
from worker.scoring._features import Numeric, feature_from_dict
from worker.scoring._lead import facts_from_fields
from worker.scoring.training import TableReport, parse_mapping, train_table
from worker.scoring.training.train import fit, matrix

KNOTTED = MAPPING.replace("kind: numeric, bins: 4}", "kind: numeric, bins: 0, knots: 5, label: visits}")
ASCENDING = "knots must be a list of at least 2 strictly ascending finite numbers"
VISITS: list[object] = [None, 0, 1, 2.5, 3, 4, 7, 11, 12, 40, -3, 10**12, "5", True, float("nan"), float("inf")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TableReport, Path]:
    return train_export(tmp_path_factory, KNOTTED)


def _visits(model: Model) -> Numeric:
    feature = next(f for f in model.features if f.name == "custom.visits")
    assert isinstance(feature, Numeric)
    return feature


def _encoded_contribution(model: Model, name: str, facts: dict[str, object]) -> float:
    """What the training encoding gives: Σ coef × (x − mean) / scale over the group's columns."""
    i = [f.name for f in model.features].index(name)
    feature, w = model.features[i], model.weights[i]
    x = feature.encode(facts)
    return math.fsum(c * (v - m) / s for c, v, m, s in zip(w.coef, x, w.mean, w.scale, strict=True))


def test_knots_are_the_training_quantiles_from_the_smallest_to_the_largest_value(
    trained: tuple[TableReport, Path],
) -> None:
    report, _ = trained
    assert report.model is not None
    visits = _visits(report.model)
    assert visits.bins == ()
    assert visits.knots[0] == visits.clip[0] == 0.0
    assert visits.knots[-1] == visits.clip[1] == 11.0
    assert len(visits.knots) == 5
    assert list(visits.knots) == sorted(set(visits.knots))
    assert visits.columns[-5:] == tuple(f"custom.visits|knot{k}" for k in range(5))


def test_a_value_is_shared_between_the_two_knots_around_it_on_the_transformed_scale() -> None:
    number = Numeric("n", "n", "n", transform="log1p", clip=(0.0, 100.0), knots=(0.0, 3.0, 15.0))
    assert number.encode({"n": 3}) == [math.log1p(3), 0.0, 1.0, 0.0]
    w = (math.log1p(7) - math.log1p(3)) / (math.log1p(15) - math.log1p(3))
    assert number.encode({"n": 7}) == pytest.approx([math.log1p(7), 0.0, 1 - w, w], abs=1e-15)
    assert number.encode({"n": 60})[1:] == [0.0, 0.0, 1.0]  # beyond the last knot: flat
    assert number.encode({"n": -5})[1:] == [1.0, 0.0, 0.0]  # clipped to 0, the first knot


def test_contributions_add_up_and_the_fast_path_agrees_with_the_training_encoding(
    trained: tuple[TableReport, Path],
) -> None:
    report, _ = trained
    model = report.model
    assert model is not None
    knots = list(_visits(model).knots)
    for visits in [*VISITS, *knots, *(k + 0.5 for k in knots)] * 2:  # twice: the second time from the caches
        facts = facts_from_fields({"custom": {"newsletter": "Yes"}}, "L1")
        facts["custom.visits"] = visits
        score = model.score(facts)
        assert score.logit == pytest.approx(score.baseline + math.fsum(c for _, c in score.contributions), abs=1e-12)
        contributions = dict(score.contributions)
        for feature in model.features:
            expected = _encoded_contribution(model, feature.name, facts)
            assert contributions[feature.name] == pytest.approx(expected, abs=1e-9), (feature.name, visits)


def test_the_curve_is_continuous_and_flat_beyond_the_last_knot(trained: tuple[TableReport, Path]) -> None:
    report, _ = trained
    model = report.model
    assert model is not None
    knots = _visits(model).knots

    def at(x: float) -> float:
        return dict(model.score({"custom.visits": x}).contributions)["custom.visits"]

    for knot in knots[1:-1]:
        assert at(knot - 1e-9) == pytest.approx(at(knot), abs=1e-6)
    assert at(knots[-1] + 50) == at(knots[-1])  # flat beyond the last knot (the value is clipped to it)


def test_bins_knots_and_a_missing_indicator_together_serve_as_scikit_learn_predicts() -> None:
    rng = random.Random(3)
    rows: list[dict[str, object]] = []
    labels = []
    for _ in range(400):
        x = rng.choice([None, *range(30), 2.5, 17.25])
        rows.append({"n": x, "t": rng.choice(["a", "b", None])})
        z = -1.0 + (0.0 if x is None else 1.5 * math.sin(float(x) / 6)) + (0.4 if rows[-1]["t"] == "a" else 0.0)
        labels.append(int(rng.random() < 1 / (1 + math.exp(-z))))
    number = Numeric(
        "n", "n", "n", transform="log1p", clip=(0.0, 29.0), missing=10.0, missing_indicator=True,
        bins=(5.0, 12.0, 20.0), knots=(0.0, 4.0, 9.0, 17.25, 29.0),
    )  # fmt: skip
    fitted = fit(rows, labels, name="knots", features=[number], scale_indicators=False)
    model = fitted.model
    odd: list[dict[str, object]] = [{"n": v} for v in (None, -4, 0, 4, 5, 8.999, 9, 12, 17.25, 29, 31, 1e9, "7")]
    x = matrix(model.features, [*rows, *odd])
    expected = fitted.estimator.predict_proba((x - fitted.mean) / fitted.scale)[:, 1]
    for facts, want in zip([*rows, *odd], expected, strict=True):
        score = model.score(facts)
        assert abs(score.probability - float(want)) < 1e-9
        assert score.logit == pytest.approx(score.baseline + math.fsum(c for _, c in score.contributions), abs=1e-12)
    again = Model.from_dict(json.loads(json.dumps(model.to_dict())))
    assert [again.score(f) for f in rows[:50]] == [model.score(f) for f in rows[:50]]


def test_a_knotted_number_keeps_its_words(trained: tuple[TableReport, Path]) -> None:
    report, _ = trained
    model = report.model
    assert model is not None
    facts = facts_from_fields({"custom": {"visits": 7}}, "L1")
    factors = model.factors(model.score(facts), facts, 10)
    label = next(f["label"] for f in factors if f["feature"] == "custom.visits")
    assert label.startswith("visits: 7 (")
    missing = model.factors(model.score({}), {}, 10)
    assert next(f["label"] for f in missing if f["feature"] == "custom.visits").startswith("visits: ")


def test_a_model_with_knots_is_format_3_and_the_worker_serves_it_as_trained(
    trained: tuple[TableReport, Path],
) -> None:
    report, out = trained
    data = json.loads((out / "model.json").read_text())
    assert data["format_version"] == 3
    entry = next(f for f in data["features"] if f["name"] == "custom.visits")
    assert len(entry["knots"]) == 5
    assert len(entry["coef"]) == 1 + 1 + 5  # the line, the missing indicator, one per knot
    model = check_servable(load_model(out / "model.json"), "trained")
    assert model.version == report.version
    for i, visits in enumerate([None, 0, 3, 4.5, 11, 30]):
        custom: dict[str, Any] = {"origin": "API"} if visits is None else {"origin": "API", "visits": visits}
        fields = {"custom": custom}
        trained_facts = facts_from_fields(fields, f"L{i}")  # as training reads a row with these cells
        assert served_score(model, fields, f"L{i}") == pytest.approx(model.score(trained_facts).probability, abs=1e-12)


def test_a_model_with_bins_but_no_knots_stays_format_1(tmp_path: Path) -> None:
    export = write_export(tmp_path / "leads.csv", n=300)
    train_table(export, parse_mapping(MAPPING), tmp_path / "model", progress=False)
    data = json.loads((tmp_path / "model" / "model.json").read_text())
    assert data["format_version"] == 1
    assert "knots" not in next(f for f in data["features"] if f["name"] == "custom.visits")


def _model_data(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "model.json").read_text())
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"knots": [0.0, 3.0, 3.0, 11.0, 12.0]}, f"{ASCENDING}, got [0.0, 3.0, 3.0, 11.0, 12.0]"),
        ({"knots": [5.0]}, f"{ASCENDING}, got [5.0]"),
        ({"knots": [0, "3", 5, 8, 11]}, f"{ASCENDING}, got [0, '3', 5, 8, 11]"),
        ({"knots": [-1.0, 1.0, 2.0, 3.0, 4.0]}, "log1p needs knots > -1, got -1.0"),
        ({"knots": [0.0, 1.0, 2.0, 3.0]}, "'mean' must be a list of 6 finite numbers (one per column)"),
    ],
)
def test_bad_knots_are_refused_with_the_feature_named(
    trained: tuple[TableReport, Path], tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    _, out = trained
    data = _model_data(out)
    next(f for f in data["features"] if f["name"] == "custom.visits").update(change)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert message in str(info.value)
    assert "('custom.visits')" in str(info.value)


def test_knots_in_an_older_format_are_refused(trained: tuple[TableReport, Path], tmp_path: Path) -> None:
    _, out = trained
    path = tmp_path / "model.json"
    path.write_text(json.dumps({**_model_data(out), "format_version": 2}))
    with pytest.raises(ModelError, match=r"\('custom\.visits'\): 'knots' needs format_version 3, got 2"):
        load_model(path)


def test_knots_that_collapse_on_the_log_scale_are_refused() -> None:
    spec = {"name": "n", "kind": "numeric", "path": "n", "label": "n", "transform": "log1p", "clip": [0, 1e300]}
    with pytest.raises(ModelError, match="knots must stay distinct after log1p"):
        feature_from_dict({**spec, "knots": [1e300 * (1 - 1e-16), 1e300]}, "features[0]")


def test_a_worker_refuses_a_knotted_number_the_stream_cannot_feed(
    trained: tuple[TableReport, Path], tmp_path: Path
) -> None:
    _, out = trained
    data = _model_data(out)
    next(f for f in data["features"] if f["name"] == "custom.visits")["path"] = "Visits"  # a column, not a fact
    path = tmp_path / "model.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"feature reads 'Visits'"):
        check_servable(load_model(path), str(path))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("knots: 2", "'knots' must be 0 (none) or 3-50, got 2"),
        ("knots: 51", "'knots' must be 0 (none) or 3-50, got 51"),
        ("knots: many", "'knots' must be 0 (none) or 3-50, got 'many'"),
        ("knot: 5", "unknown key 'knot' (did you mean 'knots'?)"),
    ],
)
def test_knot_mistakes_in_the_mapping_say_which_and_why(spec: str, message: str) -> None:
    with pytest.raises(TrainingError) as info:
        parse_mapping(MAPPING.replace("kind: numeric, bins: 4}", f"kind: numeric, {spec}}}"))
    assert message in str(info.value)
