"""Hold-out figures over repeated splits: mean and spread per scorer, and whether a baseline does as well.

Pure functions over the per-split metrics that :func:`._evaluation.metrics` returns (no I/O, no numpy).

The rule for "a baseline does as well as the model" (:func:`as_good`): over the same splits, take the paired
differences d = AUC(model) − AUC(baseline), one per split. The baseline does as well when its mean ROC AUC is at
least the model's mean minus one standard deviation of those differences, i.e. mean(d) ≤ sd(d): the model's lead
is no larger than how much that lead moves from one split to the next. With a single split (sd = 0) the baseline
must reach the model's AUC.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SPREAD_METRICS", "Spread", "Verdict", "as_good", "mean_metrics", "spread", "spread_table", "spreads"]

SPREAD_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift@10%")
"""What is summarised over the splits: the metrics of :func:`._evaluation.metrics` and the top decile's lift."""

Run = Mapping[str, Mapping[str, Any]]  # one split: scorer -> its metrics


@dataclass(frozen=True, slots=True)
class Spread:
    """One figure over the splits: mean, sample standard deviation (0 for one split), min and max."""

    mean: float
    sd: float
    min: float
    max: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.sd:.4f}"

    def as_dict(self) -> dict[str, float | int]:
        return {
            "mean": round(self.mean, 4),
            "sd": round(self.sd, 4),
            "min": round(self.min, 4),
            "max": round(self.max, 4),
            "n": self.n,
        }


def spread(values: Sequence[float]) -> Spread:
    """Mean, sample standard deviation, min and max of ``values`` (at least one)."""
    if not values:
        msg = "spread() needs at least one value, got none"
        raise ValueError(msg)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return Spread(math.fsum(values) / len(values), sd, min(values), max(values), len(values))


def _value(metrics: Mapping[str, Any], name: str) -> float:
    return float(metrics["lift"][0]) if name == "lift@10%" else float(metrics[name])


def spreads(runs: Sequence[Run]) -> dict[str, dict[str, Spread]]:
    """scorer -> metric -> its :class:`Spread` over ``runs`` (every run must have the same scorers)."""
    return {
        scorer: {name: spread([_value(run[scorer], name) for run in runs]) for name in SPREAD_METRICS}
        for scorer in runs[0]
    }


def mean_metrics(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """The runs' metrics averaged, in the shape of one run (scorer -> metrics, ``lift`` a list of 10 deciles)."""
    out: dict[str, dict[str, Any]] = {}
    for scorer, first in runs[0].items():
        merged: dict[str, Any] = {}
        for key, value in first.items():
            if isinstance(value, list):
                merged[key] = [
                    round(math.fsum(run[scorer][key][i] for run in runs) / len(runs), 3) for i in range(len(value))
                ]
            else:
                merged[key] = round(math.fsum(run[scorer][key] for run in runs) / len(runs), 4)
        out[scorer] = merged
    return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one baseline's ROC AUC compares with the model's over the same splits (see the module docstring)."""

    baseline: str
    model_auc: float
    baseline_auc: float
    lead: Spread  # of the paired differences AUC(model) - AUC(baseline)

    @property
    def as_good(self) -> bool:
        return self.lead.mean <= self.lead.sd

    def __str__(self) -> str:
        over = f"over {self.lead.n} split{'s' if self.lead.n > 1 else ''}"
        if self.as_good:
            return (
                f"{self.baseline} does as well as the model: mean ROC AUC {self.baseline_auc:.4f} against "
                f"{self.model_auc:.4f} {over}; the model's lead ({self.lead.mean:+.4f}) is within one standard "
                f"deviation of the paired differences ({self.lead.sd:.4f})"
            )
        return (
            f"the model beats {self.baseline}: mean ROC AUC {self.model_auc:.4f} against {self.baseline_auc:.4f} "
            f"{over}; lead {self.lead.mean:+.4f}, more than one standard deviation of the paired differences "
            f"({self.lead.sd:.4f})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "model_roc_auc": round(self.model_auc, 4),
            "baseline_roc_auc": round(self.baseline_auc, 4),
            "lead": self.lead.as_dict(),
            "as_good": self.as_good,
        }


def as_good(runs: Sequence[Run], baselines: Sequence[str], model: str = "model") -> list[Verdict]:
    """Each baseline's :class:`Verdict` against ``model`` on the ROC AUC of the same runs."""
    out = []
    for baseline in baselines:
        lead = spread([float(run[model]["roc_auc"]) - float(run[baseline]["roc_auc"]) for run in runs])
        model_auc = math.fsum(float(run[model]["roc_auc"]) for run in runs) / len(runs)
        baseline_auc = math.fsum(float(run[baseline]["roc_auc"]) for run in runs) / len(runs)
        out.append(Verdict(baseline, model_auc, baseline_auc, lead))
    return out


def spread_table(rows: Mapping[str, Mapping[str, Spread]]) -> str:
    """One line of mean ± sd per scorer, and under it [min, max]."""
    names = (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC"), ("log_loss", "log loss"), ("brier", "Brier"), ("ece", "ECE"))
    out = [f"  {'':<22}" + "".join(f"{label:<17}" for _, label in names).rstrip()]
    for scorer, by in rows.items():
        out.append(
            f"  {scorer:<22}" + "".join(f"{f'{by[k].mean:.4f} ± {by[k].sd:.4f}':<17}" for k, _ in names).rstrip()
        )
        out.append(f"  {'':<22}" + "".join(f"{f'[{by[k].min:.4f}, {by[k].max:.4f}]':<17}" for k, _ in names).rstrip())
    return "\n".join(out)
