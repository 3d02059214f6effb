"""Hold-out figures over repeated splits (pure): mean and spread, and the rule for "a baseline does as well"."""

from __future__ import annotations

from typing import Any

import pytest

from worker.scoring.training._splits import as_good, mean_metrics, spread, spreads


def run(model: float, nb: float, log_loss: float = 0.5) -> dict[str, dict[str, Any]]:
    """One split's metrics, as ``_evaluation.metrics`` gives them, for the model and one baseline."""
    common = {"n": 100, "pr_auc": 0.5, "brier": 0.2, "ece": 0.03, "lift": [2.0] + [1.0] * 9}
    return {
        "model": {**common, "roc_auc": model, "log_loss": log_loss},
        "naive Bayes (Odoo)": {**common, "roc_auc": nb, "log_loss": log_loss + 0.1},
    }


def test_spread_is_the_mean_sample_sd_min_and_max() -> None:
    s = spread([0.90, 0.92, 0.94])
    assert (s.mean, s.min, s.max, s.n) == (pytest.approx(0.92), 0.90, 0.94, 3)
    assert s.sd == pytest.approx(0.02)  # sample standard deviation (n - 1)
    assert str(s) == "0.9200 ± 0.0200"
    assert spread([0.7]).sd == 0.0
    with pytest.raises(ValueError, match="at least one value"):
        spread([])


def test_spreads_and_means_summarise_every_scorer_and_metric() -> None:
    runs = [run(0.90, 0.85, 0.40), run(0.92, 0.86, 0.38)]
    by = spreads(runs)
    assert set(by) == {"model", "naive Bayes (Odoo)"}
    assert by["model"]["roc_auc"].mean == pytest.approx(0.91)
    assert by["model"]["log_loss"].min == 0.38
    assert by["naive Bayes (Odoo)"]["lift@10%"].mean == 2.0
    means = mean_metrics(runs)
    assert means["model"]["roc_auc"] == 0.91
    assert means["model"]["lift"] == [2.0] + [1.0] * 9  # the same shape as one split's metrics
    assert means["naive Bayes (Odoo)"]["log_loss"] == 0.49


def test_a_baseline_within_one_sd_of_the_paired_differences_does_as_well() -> None:
    # differences 0.01, -0.01, 0.02, 0.00: mean 0.005, sd 0.0129 -> within
    runs = [run(0.80, 0.79), run(0.80, 0.81), run(0.82, 0.80), run(0.81, 0.81)]
    (verdict,) = as_good(runs, ["naive Bayes (Odoo)"])
    assert verdict.as_good
    assert verdict.lead.mean == pytest.approx(0.005)
    assert str(verdict).startswith("naive Bayes (Odoo) does as well as the model: mean ROC AUC 0.8025 against 0.8075")


def test_a_model_ahead_by_more_than_one_sd_beats_the_baseline() -> None:
    # differences 0.03, 0.02, 0.04, 0.03: mean 0.03, sd 0.0082 -> the model is better
    runs = [run(0.90, 0.87), run(0.90, 0.88), run(0.92, 0.88), run(0.91, 0.88)]
    (verdict,) = as_good(runs, ["naive Bayes (Odoo)"])
    assert not verdict.as_good
    assert str(verdict).startswith("the model beats naive Bayes (Odoo): mean ROC AUC 0.9075 against 0.8775")
    assert verdict.as_dict()["lead"]["mean"] == 0.03


def test_the_rule_pairs_the_splits_rather_than_pooling_them() -> None:
    # Both AUCs swing by 0.10 from split to split, but the model leads by 0.02 on every one: paired sd 0
    runs = [run(0.80, 0.78), run(0.90, 0.88), run(0.70, 0.68)]
    (verdict,) = as_good(runs, ["naive Bayes (Odoo)"])
    assert not verdict.as_good
    assert verdict.lead.sd == pytest.approx(0.0, abs=1e-12)


def test_with_one_split_the_baseline_must_reach_the_model() -> None:
    assert as_good([run(0.80, 0.80)], ["naive Bayes (Odoo)"])[0].as_good
    assert not as_good([run(0.80, 0.7999)], ["naive Bayes (Odoo)"])[0].as_good
