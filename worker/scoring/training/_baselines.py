"""Two baselines the model must beat, on the same rows and split: Odoo-style naive Bayes and a points table.

Both read each feature as one discrete value (:func:`discretiser`): the level of a text or yes/no feature, the
decile bin of a number, ``(missing)`` when absent.

- :class:`NaiveBayes` is Odoo's predictive lead scoring: a won/lost frequency table per (field, value) with +0.1
  added to every count, P(won) ∝ prior(won) × Π count_won(field, value) / total_won(field), the same for lost, and
  the probability clamped to 0.01 %–99.99 %. Like Odoo, empty fields and values never seen in training are
  skipped. (Odoo brings the prior in through the stage field; we use the training conversion rate.)
- :class:`Points` is a plain points model as marketing tools have it: each (field, value) seen at least
  ``min_count`` times in training earns ``round(10 × log-odds ratio)`` points (the value's weight of evidence with
  +0.5 smoothing), rarer values 0; a lead's score is the sum, mapped to a probability by a logistic fit of the
  training outcomes on the points (so that log loss and Brier can be compared; ranking uses the points alone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.scoring._features import MISSING, Feature, FreeEmail, Numeric, normalise_text
from worker.scoring.training._evaluation import metrics

__all__ = ["NaiveBayes", "Points", "compare", "discretiser"]

SMOOTHING = 0.1
Row = Mapping[str, str]


def discretiser(features: Sequence[Feature], train: Sequence[Mapping[str, object]]) -> Callable[..., dict[str, str]]:
    """facts → {feature name: discrete value}; numbers fall in deciles of the training rows (or the feature's bins)."""
    edges: dict[str, list[float]] = {}
    for feature in features:
        if isinstance(feature, Numeric):
            if feature.bins:
                edges[feature.name] = list(feature.bins)
                continue
            present = sorted(feature.clipped(f)[0] for f in train if not feature.clipped(f)[1])
            cuts = {present[len(present) * k // 10] for k in range(1, 10)} if present else set()
            edges[feature.name] = sorted(cuts)

    def discrete(facts: Mapping[str, object]) -> dict[str, str]:
        out: dict[str, str] = {}
        for feature in features:
            if isinstance(feature, Numeric):
                x, missing = feature.clipped(facts)
                out[feature.name] = MISSING if missing else f"bin{sum(1 for e in edges[feature.name] if e <= x)}"
            elif isinstance(feature, FreeEmail):
                has = normalise_text(facts.get(feature.path)) is not None
                out[feature.name] = ("yes" if feature.value(facts) else "no") if has else MISSING
            else:
                out[feature.name] = feature.value(facts)
        return out

    return discrete


@dataclass(frozen=True, slots=True)
class NaiveBayes:
    """Odoo-style naive Bayes over (field, value) frequency tables; see the module docstring."""

    won: int
    lost: int
    tables: Mapping[str, Mapping[str, tuple[float, float]]]  # field -> value -> (won + 0.1, lost + 0.1)
    totals: Mapping[str, tuple[float, float]]  # field -> (Σ won, Σ lost) over its values, smoothing included

    @classmethod
    def fit(cls, rows: Sequence[Row], labels: Sequence[int]) -> NaiveBayes:
        counts: dict[str, dict[str, list[float]]] = {}
        for row, y in zip(rows, labels, strict=True):
            for field, value in row.items():
                if value == MISSING:
                    continue
                pair = counts.setdefault(field, {}).setdefault(value, [SMOOTHING, SMOOTHING])
                pair[0 if y else 1] += 1
        tables = {f: {v: (c[0], c[1]) for v, c in values.items()} for f, values in counts.items()}
        totals = {f: (sum(c[0] for c in t.values()), sum(c[1] for c in t.values())) for f, t in tables.items()}
        won = sum(1 for y in labels if y)
        return cls(won=won, lost=len(labels) - won, tables=tables, totals=totals)

    def predict(self, row: Row) -> float:
        log_won, log_lost = math.log(max(self.won, 1)), math.log(max(self.lost, 1))
        for field, value in row.items():
            hit = self.tables.get(field, {}).get(value)
            if hit is None:
                continue
            total_won, total_lost = self.totals[field]
            log_won += math.log(hit[0] / total_won)
            log_lost += math.log(hit[1] / total_lost)
        p = 1.0 / (1.0 + math.exp(min(700.0, log_lost - log_won)))
        return min(max(p, 0.0001), 0.9999)


@dataclass(frozen=True, slots=True)
class Points:
    """Points per (field, value), summed, then one logistic map to a probability; see the module docstring."""

    points: Mapping[str, Mapping[str, int]]
    a: float
    b: float

    @classmethod
    def fit(cls, rows: Sequence[Row], labels: Sequence[int], *, min_count: int = 10) -> Points:
        from sklearn.linear_model import LogisticRegression

        won = sum(1 for y in labels if y)
        lost = len(labels) - won
        counts: dict[str, dict[str, list[int]]] = {}
        for row, y in zip(rows, labels, strict=True):
            for field, value in row.items():
                pair = counts.setdefault(field, {}).setdefault(value, [0, 0])
                pair[0 if y else 1] += 1
        points = {
            field: {
                value: round(10 * math.log(((w + 0.5) / (won + 0.5)) / ((lo + 0.5) / (lost + 0.5))))
                for value, (w, lo) in values.items()
                if w + lo >= min_count
            }
            for field, values in counts.items()
        }
        unmapped = cls(points, 1.0, 0.0)
        totals = [[float(unmapped.total(row))] for row in rows]
        fitted = LogisticRegression(C=1e6, max_iter=1000).fit(totals, list(labels))
        return cls(points, float(fitted.coef_[0][0]), float(fitted.intercept_[0]))

    def total(self, row: Row) -> int:
        return sum(self.points.get(field, {}).get(value, 0) for field, value in row.items())

    def predict(self, row: Row) -> float:
        z = self.a * self.total(row) + self.b
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def compare(
    features: Sequence[Feature],
    train: Sequence[Mapping[str, object]],
    y_train: Sequence[int],
    test: Sequence[Mapping[str, object]],
    y_test: Sequence[int],
    p_model: Sequence[float],
    *,
    min_count: int = 10,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[float]]]:
    """The model's held-out metrics next to both baselines fitted on the same training rows over the same features.

    Returns (metrics by scorer, held-out probabilities by scorer).
    """
    discrete = discretiser(features, train)
    d_train = [discrete(f) for f in train]
    d_test = [discrete(f) for f in test]
    nb = NaiveBayes.fit(d_train, y_train)
    points = Points.fit(d_train, y_train, min_count=min_count)
    scores = {
        "model": list(p_model),
        "naive Bayes (Odoo)": [nb.predict(r) for r in d_test],
        "points": [points.predict(r) for r in d_test],
    }
    return {name: metrics(y_test, p) for name, p in scores.items()}, scores
