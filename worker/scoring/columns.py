"""The model's feature groups as plain parts, for engines that score a whole batch at once (:mod:`worker.columnar`).

Each part is the fold that :meth:`Model.score`'s generated function inlines (a table, a line ``a·x + b``, a line per
stretch between breaks, or the feature's own function); an engine that evaluates them column by column, adding the
contributions in feature order, gets the same floats as :meth:`Model.score`, bit for bit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from worker.scoring._model import Model, _compile, _Compiled

__all__ = ["FeaturePart", "feature_parts", "labellers"]

FeaturePart = _Compiled
"""One feature group: ``path``, ``scorer`` (facts -> contribution, for any value), ``when_missing``, and the fast
forms ``cache`` (text -> contribution), ``line`` (lo, hi, slope, offset), ``pieces``, ``log1p`` and ``direct``."""


@functools.lru_cache(maxsize=8)  # a model is immutable and hashed by identity: parts are built once per model
def feature_parts(model: Model) -> tuple[FeaturePart, ...]:
    """The model's feature groups folded as :meth:`Model.score` folds them, in the model's order."""
    return tuple(_compile(f, w) for f, w in zip(model.features, model.weights, strict=True))


def labellers(model: Model) -> Mapping[str, Callable[[Mapping[str, object], float], dict[str, Any]]]:
    """Feature name -> the function that words one factor, as :meth:`Model.factors` calls it (remembered dicts)."""
    return model._labellers
