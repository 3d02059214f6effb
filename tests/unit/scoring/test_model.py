"""Serving: scores add up exactly, agree with scikit-learn, survive JSON, explain themselves, fail clearly."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from worker.exceptions import ModelError
from worker.lead.events import Factor
from worker.scoring import Model, Score, default_model_path, load_model
from worker.scoring.training import generate
from worker.scoring.training.train import Fitted, final_facts, fit, matrix, write_model

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def default_model() -> Model:
    return load_model(default_model_path())


@pytest.fixture(scope="module")
def leads() -> tuple[list[dict[str, object]], list[bool]]:
    data = generate(900, seed=21, start=START)
    facts = final_facts(data.events)
    ids = sorted(facts)
    return [facts[i] for i in ids], [data.outcomes[i] for i in ids]


@pytest.fixture(scope="module")
def fitted(leads: tuple[list[dict[str, object]], list[bool]]) -> Fitted:
    rows, labels = leads
    return fit(rows[:600], labels[:600], name="test")


def _reference_logit(model: Model, facts: Mapping[str, object]) -> float:
    """The textbook formula over the training encoding: intercept + Σ coef × (x − mean) / scale."""
    total = model.intercept
    for feature, weights in zip(model.features, model.weights, strict=True):
        for x, m, s, c in zip(feature.encode(facts), weights.mean, weights.scale, weights.coef, strict=True):
            total += c * (x - m) / s
    return total


ODD_FACTS: list[dict[str, object]] = [
    {},
    {"lead_source": "  REFERRAL ", "industry": "", "country": 42, "title": "VP, Sales & Ops", "email": "A@GMAIL.COM "},
    {"lead_source": "Carrier Pigeon", "title": "", "email": "no-at-sign", "number_of_employees": float("nan")},
    {"number_of_employees": True, "annual_revenue": "12000", "activity.demo_request.count": -3},
    {"number_of_employees": 10**9, "annual_revenue": 1e300, "activity.page_view.count": 2.5},
    {"title": 7, "email": None, "activity.meeting.count": float("inf")},
]


# -- the shipped model ------------------------------------------------------------------------------------------


def test_default_model_loads_with_a_stable_version(default_model: Model, tmp_path: Path) -> None:
    assert re.fullmatch(r"synthetic-s7-[0-9a-f]{8}", default_model.version)
    assert load_model(default_model_path()).version == default_model.version
    compact = tmp_path / "compact.json"  # the version hashes the content, not the formatting
    compact.write_text(json.dumps(json.loads(default_model_path().read_text()), separators=(",", ":")))
    assert load_model(compact).version == default_model.version
    assert 15 <= len(default_model.features) <= 25


def test_serving_does_not_import_numpy_or_sklearn() -> None:
    code = (
        "import sys, worker.scoring._model, worker.scoring as s; s.load_model(s.default_model_path()).score({}); "
        "print(sorted(m for m in ('numpy', 'sklearn', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- exactness --------------------------------------------------------------------------------------------------


def test_contributions_add_up_exactly(default_model: Model, leads: tuple[list[dict[str, object]], list[bool]]) -> None:
    rows, _ = leads
    for facts in [*rows, *ODD_FACTS]:
        score = default_model.score(facts)
        assert score.baseline == default_model.intercept
        assert score.logit == score.baseline + sum(c for _, c in score.contributions)
        assert math.isclose(score.probability, 1 / (1 + math.exp(-score.logit)), rel_tol=1e-12)
        assert [name for name, _ in score.contributions] == [f.name for f in default_model.features]


def test_probabilities_equal_sklearn_predict_proba(
    fitted: Fitted, leads: tuple[list[dict[str, object]], list[bool]]
) -> None:
    rows, _ = leads  # the first 600 trained the model, the rest it has never seen
    x = matrix(fitted.model.features, rows)
    expected = fitted.estimator.predict_proba((x - fitted.mean) / fitted.scale)[:, 1]
    for facts, want in zip(rows, expected, strict=True):
        assert abs(fitted.model.score(facts).probability - float(want)) < 1e-9


@pytest.mark.parametrize("facts", ODD_FACTS)
def test_fast_paths_agree_with_the_training_encoding(default_model: Model, facts: dict[str, object]) -> None:
    want = _reference_logit(default_model, facts)
    for _ in range(2):  # the second call hits the caches
        assert math.isclose(default_model.score(facts).logit, want, rel_tol=1e-12, abs_tol=1e-12)


# -- JSON -------------------------------------------------------------------------------------------------------


def test_json_round_trip(fitted: Fitted, leads: tuple[list[dict[str, object]], list[bool]], tmp_path: Path) -> None:
    model = fitted.model
    again = Model.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again.to_dict() == model.to_dict()
    assert again.version == model.version
    path = tmp_path / "model.json"
    write_model(model, path)
    loaded = load_model(path)
    assert loaded.version == model.version
    rows, _ = leads
    assert [loaded.score(f) for f in rows[:50]] == [model.score(f) for f in rows[:50]]


def test_model_and_score_are_immutable(default_model: Model) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_model.intercept = 0.0  # type: ignore[misc]
    score = default_model.score({})
    with pytest.raises(AttributeError):
        score.probability = 1.0  # type: ignore[misc]
    assert isinstance(score, Score)


def _good() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(default_model_path().read_text())
    return data


def _with(**changes: Any) -> dict[str, Any]:
    data = _good()
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return data


def _feature_change(index: int, **changes: Any) -> dict[str, Any]:
    data = _good()
    data["features"][index].update(changes)
    return data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a model is a JSON object, got list"),
        (_with(format="sklearn-pickle"), "'format' is 'sklearn-pickle', expected 'leadflow.model'"),
        (_with(format_version=4), "format_version 4 is not supported"),
        (_with(intercept=None), "missing field 'intercept'"),
        (_with(features=None, name=None), "missing fields 'name', 'features'"),
        (_with(weights=[1]), "unknown field(s) 'weights'"),
        (_with(intercept="high"), "'intercept' must be a finite number"),
        (_with(features=[]), "'features' must be a non-empty list"),
        (_feature_change(0, kind="spline"), "features[0] ('lead_source'): unknown kind 'spline'"),
        (_feature_change(0, coef=[0.1]), "features[0] ('lead_source'): 'coef' must be a list of 12 finite numbers"),
        (_feature_change(0, levels=["Web"], display=["Web"]), "levels must be distinct, stripped, lowercase"),
        (_feature_change(5, clip=[10, 1]), "features[5] ('number_of_employees'): clip must be [lo, hi]"),
        (_feature_change(5, transform="sqrt"), "transform must be 'identity' or 'log1p', got 'sqrt'"),
        (_feature_change(3, keywords=[]), "keywords must be a non-empty list of [keyword, level] pairs"),
        (_feature_change(2, name="lead_source"), "duplicate feature name 'lead_source'"),
        (_feature_change(7, scale=[0.0]), "'scale' values must be > 0"),
        (_feature_change(1, path=""), "'path' must be a non-empty string"),
    ],
)
def test_load_model_says_what_is_wrong_and_where(content: Any, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad-model.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_load_model_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nope\.json: model file not found"):
        load_model(tmp_path / "nope.json")


# -- factors ----------------------------------------------------------------------------------------------------


def test_factors_are_sorted_labelled_and_valid(
    default_model: Model, leads: tuple[list[dict[str, object]], list[bool]]
) -> None:
    rows, _ = leads
    names = {f.name for f in default_model.features}
    for facts in rows[:200]:
        score = default_model.score(facts)
        factors = default_model.factors(score, facts, 5)
        assert len(factors) == 5
        sizes = [abs(f["contribution"]) for f in factors]
        assert sizes == sorted(sizes, reverse=True)
        contributions = dict(score.contributions)
        for factor in factors:
            Factor.model_validate(factor)
            assert factor["feature"] in names
            assert factor["contribution"] == round(contributions[factor["feature"]], 4)
            assert re.search(r" \([+-]\d+\.\d\d\)$", factor["label"])
        smallest_shown = min(sizes)
        assert all(
            abs(c) <= smallest_shown + 1e-4 for n, c in score.contributions if n not in {f["feature"] for f in factors}
        )


def test_factor_count_follows_top(default_model: Model) -> None:
    score = default_model.score({})
    assert default_model.factors(score, {}, 0) == []
    assert len(default_model.factors(score, {}, 3)) == 3
    assert len(default_model.factors(score, {}, 100)) == len(default_model.features)


def _factor(model: Model, facts: dict[str, object], feature: str) -> dict[str, Any]:
    factors = model.factors(model.score(facts), facts, len(model.features))
    return next(f for f in factors if f["feature"] == feature)


def test_factor_signs_and_words(default_model: Model) -> None:
    base: dict[str, object] = {"lead_source": "Web", "title": "Marketing Manager", "email": "a@acme.com"}
    demo = _factor(default_model, {**base, "activity.demo_request.count": 2}, "activity.demo_request.count")
    assert demo["contribution"] > 0
    assert demo["label"].startswith("demo requests: 2 (+")
    none = _factor(default_model, base, "activity.demo_request.count")
    assert none["contribution"] < 0  # below the average lead
    assert none["label"].startswith("demo requests: 0 (-")
    referral = _factor(default_model, {**base, "lead_source": "referral "}, "lead_source")
    assert referral["label"].startswith("lead source = Referral (+")
    purchased = _factor(default_model, {**base, "lead_source": "Purchased List"}, "lead_source")
    assert purchased["contribution"] < 0
    free = _factor(default_model, {**base, "email": "someone@gmail.com"}, "free_email")
    assert free["contribution"] < 0
    assert free["label"].startswith("free email domain: yes (-")
    vp = _factor(default_model, {**base, "title": "Vice President, Sales"}, "title_seniority")
    assert vp["label"].startswith("title seniority = vp (+")
    unknown = _factor(default_model, base, "number_of_employees")
    assert unknown["label"].startswith("employees: unknown (")
    many = _factor(default_model, {**base, "number_of_employees": 1200}, "number_of_employees")
    assert many["label"].startswith("employees: 1,200 (")
