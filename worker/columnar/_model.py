"""The model over a batch: each feature group's contributions as one column, summed column by column.

The same floats as :meth:`worker.scoring.Model.score` and :meth:`~worker.scoring.Model.factors`, bit for bit: every
contribution is the part's own expression (numpy's ``*`` and ``+`` are IEEE-754 double operations, as Python's
are), the columns are added in the model's order as the generated scorer adds them, the sigmoid is Python's
``math.exp`` per lead, and the top factors are picked from a stable sort of each row, as ``sorted`` picks them.
Values the fast forms do not cover go through the part's own function, as they do in the generated scorer.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from worker.columnar._frame import Frame
from worker.scoring import Model
from worker.scoring.columns import FeaturePart, feature_parts, labellers

__all__ = ["ModelColumns"]

_EXACT = 2**53  # integers below this convert to a double exactly (numpy and Python then compare alike)
_Facts = dict[str, object]
_Floats = npt.NDArray[np.float64]


class ModelColumns:
    """One model's scorer for many leads' facts at once."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.parts = feature_parts(model)
        by_name = labellers(model)
        self.labellers: list[Callable[[Mapping[str, object], float], dict[str, Any]]] = [
            by_name[part.name] for part in self.parts
        ]
        self.intercept = model.intercept

    def score(self, frame: Frame) -> tuple[list[float], _Floats]:
        """Each lead's probability, and the contributions (one row per feature group, one column per lead)."""
        columns = np.empty((len(self.parts), len(frame)))
        for i, part in enumerate(self.parts):
            columns[i] = _column(part, frame)
        total = columns[0].copy()
        for i in range(1, len(self.parts)):
            total += columns[i]
        logits = (self.intercept + total).tolist()
        exp = math.exp
        probabilities = []
        for logit in logits:
            if logit >= 0.0:
                probabilities.append(1.0 / (1.0 + exp(-logit)))
            else:
                e = exp(logit)
                probabilities.append(e / (1.0 + e))
        return probabilities, columns

    def picks(self, columns: _Floats, top: int) -> npt.NDArray[np.intp] | None:
        """The feature groups of each lead's ``top`` factors (a row per lead, in the order :meth:`Model.factors`
        lists them), or None when there are none (no lead, or ``top`` 0)."""
        width, n = columns.shape
        steps = min(top, width)
        if not n or not steps:
            return None
        rows = columns.T
        order = np.argsort(rows, axis=1, kind="stable")  # most negative first; ties in feature order, as sorted()
        ranked = np.take_along_axis(rows, order, axis=1)
        at = np.arange(n)
        low = np.zeros(n, dtype=np.intp)
        high = np.full(n, width - 1, dtype=np.intp)
        picks = []
        for _ in range(steps):
            negative = -ranked[at, low] > ranked[at, high]
            picks.append(np.where(negative, order[at, low], order[at, high]))
            low += negative
            high -= ~negative
        return np.stack(picks, axis=1)


def _column(part: FeaturePart, frame: Frame) -> _Floats | list[float]:
    """One feature group's contribution for each lead, as the generated scorer computes it: per distinct value of
    the part's fact, and per lead for values that only the part's own function reads (as the scorer does)."""
    scorer = part.scorer
    facts = frame.facts
    if part.direct:
        return [scorer(lead) for lead in facts]
    codes, uniques, first = frame.codes(part.path)
    missing = part.when_missing
    per_value: list[float] = []
    by_lead: list[int] = []  # distinct values whose leads each go through the part's own function
    if part.line is None and part.pieces is None:
        cache = part.cache
        for value, k in zip(uniques, first, strict=True):
            if value is None:
                per_value.append(missing)
            elif cache is not None and value.__class__ is str:
                hit = cache.get(value)
                per_value.append(scorer(facts[k]) if hit is None else hit)  # the scorer remembers it
            else:
                per_value.append(0.0)
                by_lead.append(len(per_value) - 1)
        return _spread(per_value, codes, by_lead, scorer, facts)
    lo, hi = part.line[:2] if part.line is not None else part.pieces[:2]  # type: ignore[index]  # one is set
    chosen: list[int] = []
    xs: list[float] = []
    for value in uniques:
        raw: Any = value
        if raw is None:
            per_value.append(missing)
        elif (raw.__class__ is float or raw.__class__ is int) and lo <= raw <= hi:
            if raw.__class__ is int and not -_EXACT < raw < _EXACT:
                per_value.append(_one(part, raw))
            else:
                chosen.append(len(per_value))
                per_value.append(0.0)
                xs.append(raw)
        else:
            per_value.append(0.0)
            by_lead.append(len(per_value) - 1)
    contributions = np.array(per_value, dtype=np.float64)
    if chosen:
        raw_x = np.array(xs, dtype=np.float64)
        x = np.array([math.log1p(v) for v in xs], dtype=np.float64) if part.log1p else raw_x
        if part.line is not None:
            _, _, slope, offset = part.line
            contributions[chosen] = slope * x + offset
        else:
            pieces = part.pieces
            assert pieces is not None  # noqa: S101  # one of line and pieces is set (checked above)
            breaks = np.array(pieces.breaks, dtype=np.float64)
            slopes = np.array([a for a, _ in pieces.lines], dtype=np.float64)
            offsets = np.array([b for _, b in pieces.lines], dtype=np.float64)
            at = np.searchsorted(breaks, raw_x, side="right")
            contributions[chosen] = (pieces.base + slopes[at] * x) + offsets[at]
    return _spread(contributions, codes, by_lead, scorer, facts)


def _spread(
    per_value: _Floats | list[float],
    codes: npt.NDArray[np.intp],
    by_lead: list[int],
    scorer: Callable[[Mapping[str, object]], float],
    facts: Sequence[_Facts],
) -> _Floats:
    """The contributions of the distinct values given to each lead; leads whose value is in ``by_lead`` get the
    part's own function of their facts."""
    column: _Floats = np.asarray(per_value, dtype=np.float64)[codes]
    if by_lead:
        for k in np.flatnonzero(np.isin(codes, by_lead)).tolist():
            column[k] = scorer(facts[k])
    return column


def _one(part: FeaturePart, raw: float) -> float:
    """One number's contribution by the generated scorer's own expression (integers beyond a double's precision)."""
    x = math.log1p(raw) if part.log1p else raw
    if part.line is not None:
        _, _, slope, offset = part.line
        return slope * x + offset
    pieces = part.pieces
    assert pieces is not None  # noqa: S101  # the caller checked
    a, b = pieces.lines[bisect.bisect_right(pieces.breaks, raw)]
    return pieces.base + a * x + b
