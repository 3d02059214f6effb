"""Drift: each feature's distribution on the training data, the same on recent facts, and how far they moved.

A feature's distribution is the share of each of its *levels*: the model's levels for text and yes/no features
(with ``(other)`` and ``(missing)``), and for numbers fixed bins whose edges are the training deciles, plus
``(missing)``. Training stores them in the model's ``training.distributions``; ``leadflow drift`` counts the
same levels on a window of recent facts and compares with the population stability index

    PSI = Σ_levels (a − e) · ln(a / e)      (a: recent share, e: training share, both at least EPSILON)

read with the conventional thresholds: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 significant.
The worker's sampled counts (:func:`feature_checks`) say, per feature, whether a value is missing or unseen (a
text outside the model's levels, a number outside the training range).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.exceptions import DriftError
from worker.scoring._features import MISSING, OTHER, Feature, FreeEmail, Numeric, format_number, normalise_text
from worker.scoring._model import Model

__all__ = [
    "EPSILON",
    "IS_MISSING",
    "IS_UNSEEN",
    "MODERATE",
    "STABLE",
    "FeatureDrift",
    "distributions",
    "feature_checks",
    "measure_drift",
    "psi",
    "training_distributions",
    "verdict",
]

EPSILON = 1e-4  # the share given to an empty level, so that ln(a / e) stays finite
STABLE = 0.1  # PSI below this: stable
MODERATE = 0.25  # PSI up to this: a moderate shift; above: significant
_DECILES = 10
OK, IS_MISSING, IS_UNSEEN = 0, 1, 2


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """The population stability index of ``actual`` shares against ``expected`` shares (same levels, same order)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, epsilon), max(a, epsilon)
        total += (a - e) * math.log(a / e)
    return total


def verdict(value: float) -> str:
    """``stable`` (< 0.1), ``moderate shift`` (0.1 to 0.25) or ``significant`` (> 0.25)."""
    if value < STABLE:
        return "stable"
    return "moderate shift" if value <= MODERATE else "significant"


# -- levels ------------------------------------------------------------------------------------------------------


def _present(feature: Numeric, facts: Mapping[str, object]) -> float | None:
    """The clipped number, or None when it is missing and the model tells missing apart (``missing_indicator``).

    Without the indicator the model scores an absent number as its fill value (an activity never done counts 0),
    so that is the value compared.
    """
    x, missing = feature.clipped(facts)
    return None if missing and feature.missing_indicator else x


def _free_email_level(feature: FreeEmail, facts: Mapping[str, object]) -> str:
    if normalise_text(facts.get(feature.path)) is None:
        return MISSING
    return "yes" if feature.value(facts) else "no"


def _bin_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all", MISSING]
    shown = [format_number(e) for e in edges]
    labels = [f"< {shown[0]}"]
    labels += [f"{lo} to < {hi}" for lo, hi in itertools.pairwise(shown)]
    return [*labels, f">= {shown[-1]}", MISSING]


def _levels(feature: Feature) -> list[str]:
    if isinstance(feature, FreeEmail):
        return ["yes", "no", MISSING]
    if isinstance(feature, Numeric):
        msg = "numeric levels come from the training edges"
        raise TypeError(msg)
    return list(feature.all_levels)


def _leveller(feature: Feature, edges: Sequence[float]) -> Callable[[Mapping[str, object]], int]:
    """facts -> the index of the feature's level (numbers: their bin, the last index for missing)."""
    if isinstance(feature, Numeric):
        missing_index = len(edges) + 1 if edges else 1

        def numeric(facts: Mapping[str, object]) -> int:
            x = _present(feature, facts)
            return missing_index if x is None else bisect.bisect_right(edges, x)

        return numeric
    index = {level: i for i, level in enumerate(_levels(feature))}
    if isinstance(feature, FreeEmail):
        return lambda facts: index[_free_email_level(feature, facts)]
    value = feature.value
    return lambda facts: index[value(facts)]


def _deciles(values: list[float]) -> list[float]:
    """The distinct training deciles (10 %, ..., 90 %) of the present values: the bin edges."""
    if not values:
        return []
    values = sorted(values)
    n = len(values)
    return sorted({values[min(n - 1, (k * n) // _DECILES)] for k in range(1, _DECILES)})


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [round(c / total, 6) if total else 0.0 for c in counts]


def distributions(features: Sequence[Feature], rows: Iterable[Mapping[str, object]]) -> dict[str, Any]:
    """Each feature's levels and their shares on ``rows`` (the training facts), as stored in the model JSON."""
    numbers: dict[str, list[float]] = {f.name: [] for f in features if isinstance(f, Numeric)}
    missing: Counter[str] = Counter()
    level_counts = {f.name: [0] * len(_levels(f)) for f in features if not isinstance(f, Numeric)}
    levellers = {f.name: _leveller(f, ()) for f in features if not isinstance(f, Numeric)}
    n = 0
    for facts in rows:
        n += 1
        for feature in features:
            if isinstance(feature, Numeric):
                x = _present(feature, facts)
                if x is None:
                    missing[feature.name] += 1
                else:
                    numbers[feature.name].append(x)
            else:
                level_counts[feature.name][levellers[feature.name](facts)] += 1
    out: dict[str, Any] = {}
    for feature in features:
        if isinstance(feature, Numeric):
            present = numbers[feature.name]
            edges = _deciles(present)
            counts = [0] * (len(edges) + 1)
            for x in present:
                counts[bisect.bisect_right(edges, x)] += 1
            out[feature.name] = {
                "levels": _bin_labels(edges),
                "edges": edges,
                "range": [min(present), max(present)] if present else [],
                "shares": _shares([*counts, missing[feature.name]]),
            }
        else:
            out[feature.name] = {"levels": _levels(feature), "shares": _shares(level_counts[feature.name])}
    return {"rows": n, "features": out}


# -- the worker's sampled checks ---------------------------------------------------------------------------------


def _check(feature: Feature, spec: Mapping[str, Any] | None) -> Callable[[Mapping[str, object]], int]:
    """facts -> OK, IS_MISSING or IS_UNSEEN for one feature."""
    if isinstance(feature, Numeric):
        bounds = spec.get("range") if spec else None
        lo, hi = (bounds[0], bounds[1]) if bounds else (-math.inf, math.inf)

        def numeric(facts: Mapping[str, object]) -> int:
            x = _present(feature, facts)
            return IS_MISSING if x is None else IS_UNSEEN if x < lo or x > hi else OK

        return numeric
    if isinstance(feature, FreeEmail):
        return lambda facts: IS_MISSING if _free_email_level(feature, facts) == MISSING else OK
    value = feature.value
    unseen = OTHER if feature.kind == "categorical" else None  # a keyword's default and a flag are never unseen

    def levelled(facts: Mapping[str, object]) -> int:
        level = value(facts)
        return IS_MISSING if level == MISSING else IS_UNSEEN if level == unseen else OK

    return levelled


@functools.lru_cache(maxsize=8)
def feature_checks(model: Model) -> tuple[tuple[str, Callable[[Mapping[str, object]], int]], ...]:
    """(feature name, check) for every feature: a check says OK, IS_MISSING or IS_UNSEEN for one lead's facts.

    Unseen: a text value outside the model's levels (it scores as ``(other)``), or, when the model stores its
    training distributions, a number outside the training range.
    """
    stored = model.training.get("distributions")
    specs: Mapping[str, Any] = stored.get("features", {}) if isinstance(stored, Mapping) else {}
    return tuple((f.name, _check(f, specs.get(f.name))) for f in model.features)


# -- comparing a window with training ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature: its PSI and verdict, the share missing and unseen on the window, and the level shares."""

    feature: str
    psi: float
    verdict: str
    missing: float
    unseen: float
    levels: tuple[str, ...]
    expected: tuple[float, ...]
    actual: tuple[float, ...]

    def moved(self, top: int = 2) -> list[tuple[str, float, float]]:
        """The levels whose share moved most: (level, training share, recent share)."""
        ranked = sorted(zip(self.levels, self.expected, self.actual, strict=True), key=lambda t: -abs(t[2] - t[1]))
        return ranked[:top]

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "psi": round(self.psi, 4),
            "verdict": self.verdict,
            "missing": round(self.missing, 4),
            "unseen": round(self.unseen, 4),
            "levels": [
                {"level": level, "training": e, "recent": round(a, 6)}
                for level, e, a in zip(self.levels, self.expected, self.actual, strict=True)
            ],
        }


def training_distributions(model: Model, source: str) -> Mapping[str, Any]:
    """The model's stored training distributions; :class:`DriftError` when it has none (trained before them)."""
    stored = model.training.get("distributions")
    specs = stored.get("features") if isinstance(stored, Mapping) else None
    absent = [f.name for f in model.features if not isinstance(specs, Mapping) or f.name not in specs]
    if absent:
        what = "no training distributions" if len(absent) == len(model.features) else f"none for {absent!r}"
        msg = (
            f"model {model.version!r} ({source}) has {what}: it was trained before leadflow stored them; "
            "retrain it with 'leadflow train --synthetic --out MODEL.json' (or --data FILE --mapping MAPPING.yaml "
            "--out DIR) and compare with the new model"
        )
        raise DriftError(msg, source=source)
    assert isinstance(specs, Mapping)  # noqa: S101  # for mypy: checked above
    return specs


def measure_drift(model: Model, rows: Sequence[Mapping[str, object]], source: str) -> list[FeatureDrift]:
    """Every feature's drift on ``rows`` (recent facts) against the model's training data, largest PSI first."""
    specs = training_distributions(model, source)
    if not rows:
        msg = f"{source}: no lead events to compare with the training data"
        raise DriftError(msg, source=source)
    checks = dict(feature_checks(model))
    out: list[FeatureDrift] = []
    for feature in model.features:
        spec = specs[feature.name]
        levels, expected = tuple(spec["levels"]), tuple(float(s) for s in spec["shares"])
        level_of = _leveller(feature, spec.get("edges", ()))
        if isinstance(feature, Numeric) == ("edges" not in spec) or len(levels) != len(expected):
            msg = f"model {model.version!r}: training distribution of {feature.name!r} does not fit the feature"
            raise DriftError(msg, source=source)
        counts = [0] * len(levels)
        status: Counter[int] = Counter()
        check = checks[feature.name]
        for facts in rows:
            counts[level_of(facts)] += 1
            status[check(facts)] += 1
        actual = tuple(c / len(rows) for c in counts)
        value = psi(expected, actual)
        out.append(
            FeatureDrift(
                feature.name,
                value,
                verdict(value),
                status[IS_MISSING] / len(rows),
                status[IS_UNSEEN] / len(rows),
                levels,
                expected,
                actual,
            )
        )
    out.sort(key=lambda d: (-d.psi, d.feature))
    return out
