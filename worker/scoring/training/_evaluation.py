"""How good a set of predicted probabilities is: ranking, probability quality and lift, the same for every scorer.

numpy and scikit-learn are imported inside the functions (training only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["METRIC_NAMES", "calibration_bins", "expected_calibration_error", "lift_by_decile", "metrics"]

METRIC_NAMES = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")
_EPS = 1e-6


def metrics(y: Sequence[int], p: Sequence[float]) -> dict[str, Any]:
    """ROC AUC, PR AUC (average precision), log loss, Brier score, ECE (10 bins) and lift by decile."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    clipped = [min(max(v, _EPS), 1 - _EPS) for v in p]
    return {
        "n": len(y),
        "positive_rate": round(sum(y) / len(y), 4),
        "roc_auc": round(float(roc_auc_score(y, p)), 4),
        "pr_auc": round(float(average_precision_score(y, p)), 4),
        "log_loss": round(float(log_loss(y, clipped, labels=[0, 1])), 4),
        "brier": round(float(brier_score_loss(y, p)), 4),
        "ece": round(expected_calibration_error(y, p), 4),
        "lift": [round(v, 3) for v in lift_by_decile(y, p)],
    }


def calibration_bins(y: Sequence[int], p: Sequence[float], n_bins: int = 10) -> list[dict[str, float]]:
    """Equal-width probability bins that hold predictions: [lo, hi), how many, mean predicted, observed rate."""
    sums: list[list[float]] = [[0, 0.0, 0.0] for _ in range(n_bins)]
    for yi, pi in zip(y, p, strict=True):
        k = min(int(pi * n_bins), n_bins - 1)
        sums[k][0] += 1
        sums[k][1] += pi
        sums[k][2] += yi
    return [
        {"lo": k / n_bins, "hi": (k + 1) / n_bins, "n": int(n), "predicted": sp / n, "observed": sy / n}
        for k, (n, sp, sy) in enumerate(sums)
        if n
    ]


def expected_calibration_error(y: Sequence[int], p: Sequence[float], n_bins: int = 10) -> float:
    """Σ over equal-width bins of (share of leads in the bin) × |mean predicted − observed rate|."""
    total = len(y)
    return sum(b["n"] / total * abs(b["predicted"] - b["observed"]) for b in calibration_bins(y, p, n_bins))


def lift_by_decile(y: Sequence[int], p: Sequence[float]) -> list[float]:
    """Conversion rate of each tenth of the leads, highest scores first, divided by the overall rate.

    Ties are broken by position, so that equal scores (a points model) still fill the deciles evenly.
    """
    order = sorted(range(len(y)), key=lambda i: -p[i])
    rate = sum(y) / len(y)
    out = []
    for d in range(10):
        members = order[d * len(order) // 10 : (d + 1) * len(order) // 10]
        out.append((sum(y[i] for i in members) / len(members)) / rate if members and rate else 0.0)
    return out
