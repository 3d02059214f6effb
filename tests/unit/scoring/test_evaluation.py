"""The baselines, the metrics and the calibration step, each on a case small enough to check by hand."""

from __future__ import annotations

import math
import random

import pytest

from worker.scoring._features import MISSING, Numeric
from worker.scoring._model import Model, Weights
from worker.scoring.training._baselines import NaiveBayes, Points
from worker.scoring.training._evaluation import expected_calibration_error, lift_by_decile, metrics
from worker.scoring.training.tabular import calibrate

# Four leads: source a converted twice and was lost once, source b was lost once; x says nothing.
ROWS = [{"src": "a", "x": "yes"}, {"src": "a", "x": "no"}, {"src": "a", "x": "no"}, {"src": "b", "x": "yes"}]
LABELS = [1, 1, 0, 0]


def test_naive_bayes_is_odoos_frequency_table_with_point_one_smoothing() -> None:
    nb = NaiveBayes.fit(ROWS, LABELS)
    assert nb.tables["src"] == {"a": (2.1, 1.1), "b": (0.1, 1.1)}
    assert nb.totals["src"] == pytest.approx((2.2, 2.2))
    # prior 2:2; P(a | won) = 2.1 / 2.2, P(a | lost) = 1.1 / 2.2; x = yes is 1.1 / 2.2 on both sides
    assert nb.predict({"src": "a", "x": "yes"}) == pytest.approx(2.1 / (2.1 + 1.1))
    assert nb.predict({"src": "b"}) == pytest.approx(0.1 / (0.1 + 1.1))
    assert nb.predict({"src": MISSING}) == pytest.approx(0.5)  # empty fields are skipped, as Odoo does
    assert nb.predict({"src": "never seen"}) == pytest.approx(0.5)


def test_naive_bayes_clamps_like_odoo() -> None:
    rows = [{"f": str(i % 2)} for i in range(2000)]
    nb = NaiveBayes.fit(rows, [i % 2 for i in range(2000)])  # f decides the outcome: 1000.1 against 0.1
    assert nb.predict({"f": "1"}) == 0.9999
    assert nb.predict({"f": "0"}) == 0.0001


def test_points_are_rounded_log_odds_ratios_of_values_seen_often_enough() -> None:
    points = Points.fit(ROWS, LABELS, min_count=1)
    # a: ln((2.5 / 2.5) / (1.5 / 2.5)) = 0.51 -> 5 points; b: ln((0.5 / 2.5) / (1.5 / 2.5)) = -1.10 -> -11 points
    assert points.points["src"] == {"a": 5, "b": -11}
    assert points.total({"src": "a", "x": "yes"}) == 5 + points.points["x"]["yes"]
    assert Points.fit(ROWS, LABELS, min_count=2).points["src"] == {"a": 5}  # b was seen once: no points
    assert points.predict({"src": "a"}) > points.predict({"src": "b"})


def test_metrics_by_hand() -> None:
    y, p = [1, 0, 1, 0], [0.9, 0.9, 0.1, 0.1]
    assert expected_calibration_error(y, p) == pytest.approx(0.4)  # both bins: |0.9 - 0.5| and |0.1 - 0.5|
    assert expected_calibration_error([1, 0], [0.5, 0.5]) == 0.0
    lift = lift_by_decile([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], [1.0 - k / 10 for k in range(10)])
    assert lift == [5.0, 5.0, 0, 0, 0, 0, 0, 0, 0, 0]
    m = metrics([1, 1, 0, 0], [0.8, 0.6, 0.4, 0.2])
    assert (m["roc_auc"], m["pr_auc"]) == (1.0, 1.0)
    assert m["brier"] == pytest.approx((0.04 + 0.16 + 0.16 + 0.04) / 4)
    assert m["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.6) + math.log(0.6) + math.log(0.8)) / 4, 1e-3)


def _overconfident(n: int, seed: int) -> tuple[Model, list[dict[str, object]], list[int]]:
    """True log-odds x; the model says 3x: it ranks perfectly well and is badly calibrated."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = [{"x": rng.gauss(0, 1)} for _ in range(n)]
    labels = [int(rng.random() < 1 / (1 + math.exp(-float(str(r["x"]))))) for r in rows]
    feature = Numeric("x", "x", "x", clip=(-10.0, 10.0))
    model = Model("over", 0.0, (feature,), (Weights((0.0,), (1.0,), (3.0,)),))
    return model, rows, labels


def test_calibration_improves_the_calibration_error_of_a_miscalibrated_model() -> None:
    model, rows, labels = _overconfident(6000, seed=11)
    cal_rows, cal_y, test_rows, test_y = rows[:3000], labels[:3000], rows[3000:], labels[3000:]
    calibrated, a, b = calibrate(model, [model.score(r).logit for r in cal_rows], cal_y)
    assert a == pytest.approx(1 / 3, abs=0.05)
    assert b == pytest.approx(0.0, abs=0.1)
    before = expected_calibration_error(test_y, [model.score(r).probability for r in test_rows])
    after = expected_calibration_error(test_y, [calibrated.score(r).probability for r in test_rows])
    assert before > 0.08
    assert after < 0.03
    assert calibrated.training["calibration"] == {"method": "platt", "a": a, "b": b}
    for r in test_rows[:50]:  # the map is folded into the weights: factors still add up exactly
        s = calibrated.score(r)
        assert s.logit == pytest.approx(s.baseline + sum(c for _, c in s.contributions), abs=1e-12)
        assert s.logit == pytest.approx(a * model.score(r).logit + b, abs=1e-9)
