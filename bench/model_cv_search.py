"""Issue #4, round 5: column selection, group penalties, elastic-net and other losses, in cross-validation only.

    .venv/bin/python bench/model_cv_search.py [--data ../shared/data/x-education-leads.csv]
                                              [--families groups,l1,backward,knots,losses,missing,combined,nested]

The same rows and folds as bench/model_cv.py (the training 70 % of the seed-42 split, 5 stratified folds with fold
seeds 100 and 101; the hold-out is never read), and the same fit: every fold learns its levels and knots on its
training part (``learn_features``), the columns are standardised as ``train.fit(scale_indicators=False)`` does
(0/1 and knot columns centred only), an L2 logistic regression (C = 0.3, tol = TOL) is fitted and unseen levels
score 0 (``neutral_unseen``). Here the matrices are encoded once per fold and each variant refits on them, so a
variant takes about a second instead of minutes; the shipped mapping gives exactly model_cv.py's 0.9079.

Variants (each against the shipped mapping on the same folds; the table gives the mean AUC, the mean and standard
error of the per-fold difference and the mean difference on each fold seed):

- groups: the columns of a group multiplied by s before the L2 fit (= its penalty divided by s²): text one-hot
  and yes/no one-hot, knot curves, interaction cells, the numbers' line and the yes/no one-hot on its own.
- l1: L1 (liblinear) and elastic-net (saga) instead of L2.
- backward: every mapped column dropped in turn, then greedy backward elimination (a drop is kept only when it
  raises the mean AUC on both fold seeds; an interaction goes with either of its columns).
- knots: the ridge on each knot's value replaced by a ridge on the first or second differences of consecutive
  knots' values (a smoothness penalty; exact reparametrisation, still one curve per number), 24 and 32 knots with
  it, knots at 0 plus quantiles of the non-zero values.
- losses: a pairwise logistic loss on sampled (converted, not converted) pairs, a linear SVM, the mean of 20
  bootstrap fits' coefficients; each still one linear model.
- missing: no missing indicator for visits / page views; missing imputed as 0 instead of the median.
- combined: Country dropped and elastic-net together.
- nested (about 20 minutes): the search that found the best of these, repeated inside each of the 10 folds on 5
  inner folds of its training part (greedy elimination, then the best of L2 and six elastic-nets), the choice
  scored on the fold: what the search is worth on rows it did not see.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.model_cv import DATA, learned, mapping_for, numbers, seed_training_rows  # noqa: E402
from worker.scoring._features import Cross, Feature, Flag, Numeric  # noqa: E402
from worker.scoring.training import ColumnMapping  # noqa: E402
from worker.scoring.training._export import Prepared, Table, prepare, read_table  # noqa: E402
from worker.scoring.training._progress import Bar as _Bar  # noqa: E402
from worker.scoring.training.tabular import TOL  # noqa: E402
from worker.scoring.training.train import matrix  # noqa: E402

C = 0.3
Estimator = Callable[[], Any]


@dataclass(frozen=True, slots=True)
class Fold:
    features: list[Feature]
    xtr: Any
    xte: Any
    ytr: Any
    yte: Any
    train: list[dict[str, object]]
    test: list[dict[str, object]]

    def recoded(self, features: list[Feature]) -> Fold:
        return dataclasses.replace(
            self, features=features, xtr=matrix(features, self.train), xte=matrix(features, self.test)
        )


@dataclass(slots=True)
class Data:
    table: Table
    prepared: Prepared
    mapping: ColumnMapping
    rows: list[dict[str, object]]
    y: Any
    column: dict[str, str]  # feature name -> mapped column

    def folds(self, seeds: Sequence[int], idx: Any = None, edits: Sequence[Any] = ()) -> list[Fold]:
        mapping = mapping_for(edits) if edits else self.mapping
        prepared = prepare(self.table, mapping, _Bar()) if edits else self.prepared  # the columns carry the knots
        idx = np.arange(len(self.y)) if idx is None else idx
        y = self.y[idx]
        out = []
        for seed in seeds:
            for a, b in StratifiedKFold(n_splits=5, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
                train, test = [self.rows[idx[i]] for i in a], [self.rows[idx[i]] for i in b]
                features = learned(prepared, mapping, train)
                out.append(Fold(features, matrix(features, train), matrix(features, test), y[a], y[b], train, test))
        return out


def load(data: Path) -> Data:
    mapping = mapping_for([])
    table = read_table(data)
    prepared = prepare(table, mapping, _Bar())
    train_i = seed_training_rows(prepared, mapping)
    rows = [prepared.facts[i] for i in train_i]
    y = np.array([prepared.labels[i] for i in train_i])
    return Data(table, prepared, mapping, rows, y, {c.field: c.column for c in prepared.columns})


def group_of(feature: Feature, j: int) -> str:
    """The penalty group of a feature's j-th column."""
    if isinstance(feature, Cross):
        return "cross"
    if isinstance(feature, Flag):
        return "flag"
    if isinstance(feature, Numeric):
        n = len(feature.columns)
        if j >= n - len(feature.knots):
            return "knot"
        return "miss" if feature.missing_indicator and j == 1 else "line" if j == 0 else "bin"
    return "cat"


def scores(
    data: Data, fold: Fold, drop: frozenset[str] = frozenset(), mult: dict[str, float] | None = None, est: Any = None
) -> Any:
    """Held-out logits of the fold's fit (train.fit + neutral_unseen), without the ``drop`` columns."""
    keep: list[int] = []
    groups: list[str] = []
    spans: list[tuple[Feature, int, int]] = []
    i = 0
    for f in fold.features:
        n = len(f.columns)
        reads = [data.column[p.name] for p in f.parts] if isinstance(f, Cross) else [data.column[f.name]]
        if not drop.intersection(reads):
            spans.append((f, len(keep), n))
            keep += range(i, i + n)
            groups += [group_of(f, j) for j in range(n)]
        i += n
    a, b = fold.xtr[:, keep], fold.xte[:, keep]
    mean = a.mean(axis=0)
    scale = a.std(axis=0)
    scale[scale < 1e-12] = 1.0
    for f, s, n in spans:  # scale_indicators=False
        if not isinstance(f, Numeric):
            scale[s : s + n] = 1.0
        elif f.knots:
            scale[s + n - len(f.knots) : s + n] = 1.0
    m = np.array([(mult or {}).get(g, 1.0) for g in groups])
    model = (est or (lambda: LogisticRegression(C=C, max_iter=2000, tol=TOL)))()
    model.fit((a - mean) / scale * m, fold.ytr)
    contributions = (b - mean) / scale * m * model.coef_[0]
    out = np.full(len(b), float(model.intercept_[0]))
    for f, s, n in spans:
        part = contributions[:, s : s + n].sum(axis=1)
        if not isinstance(f, Numeric):  # neutral_unseen: a level no training row has contributes 0
            part = np.where((b[:, s : s + n] * (mean[s : s + n] == 0.0)).sum(axis=1) > 0, 0.0, part)
        out += part
    return out


def aucs(data: Data, folds: Sequence[Fold], **kw: Any) -> list[float]:
    return [float(roc_auc_score(f.yte, scores(data, f, **kw))) for f in folds]


def row(name: str, values: Sequence[float], base: Sequence[float]) -> str:
    diff = [a - b for a, b in zip(values, base, strict=True)]
    se = statistics.stdev(diff) / len(diff) ** 0.5 if any(diff) else 0.0
    half = len(diff) // 2
    seeds = f"{statistics.mean(diff[:half]):+.4f} / {statistics.mean(diff[half:]):+.4f}"
    return f"| {name} | {statistics.mean(values):.4f} | {statistics.mean(diff):+.4f} ± {se:.4f} | {seeds} |"


def elastic(c: float, l1_ratio: float) -> Estimator:
    return lambda: LogisticRegression(solver="saga", l1_ratio=l1_ratio, C=c, tol=TOL, max_iter=10000)


def lasso(c: float) -> Estimator:
    return lambda: LogisticRegression(solver="liblinear", penalty="l1", C=c, tol=1e-6, max_iter=5000)


class Pairwise:
    """Logistic loss on sampled (positive − negative) differences: a smooth AUC; C per row of the usual fit."""

    def __init__(self, c: float, n_pairs: int) -> None:
        self.c, self.n = c, n_pairs

    def fit(self, x: Any, y: Any) -> Pairwise:
        rng = np.random.default_rng(0)
        d = x[rng.choice(np.flatnonzero(y == 1), self.n)] - x[rng.choice(np.flatnonzero(y == 0), self.n)]
        flip = rng.random(self.n) < 0.5
        d[flip] *= -1
        fitted = LogisticRegression(C=self.c * len(y) / self.n, fit_intercept=False, max_iter=2000, tol=TOL)
        fitted.fit(d, (~flip).astype(int))
        self.coef_, self.intercept_ = fitted.coef_, np.zeros(1)
        return self


class Svm:
    def __init__(self, c: float) -> None:
        self.c = c

    def fit(self, x: Any, y: Any) -> Svm:
        fitted = LinearSVC(C=self.c, max_iter=20000).fit(x, y)
        self.coef_, self.intercept_ = fitted.coef_, fitted.intercept_
        return self


class Bagged:
    """The mean coefficients of bootstrap fits: still one logistic regression."""

    def __init__(self, n: int) -> None:
        self.n = n

    def fit(self, x: Any, y: Any) -> Bagged:
        rng = np.random.default_rng(0)
        coefs, intercepts = [], []
        for _ in range(self.n):
            i = rng.integers(0, len(y), len(y))
            fitted = LogisticRegression(C=C, max_iter=2000, tol=TOL).fit(x[i], y[i])
            coefs.append(fitted.coef_)
            intercepts.append(fitted.intercept_)
        self.coef_, self.intercept_ = np.mean(coefs, axis=0), np.mean(intercepts, axis=0)
        return self


def differences(fold: Fold, order: int) -> Fold:
    """Knot columns X → X·Lᵒʳᵈᵉʳ (L lower-triangular ones): the ridge then acts on order-th differences."""
    xtr, xte = fold.xtr.copy(), fold.xte.copy()
    i = 0
    for f in fold.features:
        n = len(f.columns)
        if isinstance(f, Numeric) and f.knots:
            k, s = len(f.knots), i + n - len(f.knots)
            t = np.linalg.matrix_power(np.tril(np.ones((k, k))), order)
            xtr[:, s : s + k] = xtr[:, s : s + k] @ t
            xte[:, s : s + k] = xte[:, s : s + k] @ t
        i += n
    return dataclasses.replace(fold, xtr=xtr, xte=xte)


def nonzero_knots(fold: Fold, k: int = 16) -> Fold:
    features: list[Feature] = []
    for f in fold.features:
        if isinstance(f, Numeric) and f.knots:
            values = sorted(
                float(v)
                for r in fold.train
                if isinstance(v := r.get(f.path), int | float) and not isinstance(v, bool) and v == v and v > 0
            )
            knots = {0.0, *(values[(len(values) - 1) * i // (k - 2)] for i in range(k - 1))}
            f = dataclasses.replace(f, knots=tuple(sorted(knots)))
        features.append(f)
    return fold.recoded(features)


def columns(data: Data, folds: Sequence[Fold]) -> list[str]:
    return [data.column[f.name] for f in folds[0].features if not isinstance(f, Cross)]


def greedy(data: Data, folds: Sequence[Fold], both_halves: bool) -> tuple[frozenset[str], list[Any]]:
    """Backward elimination: drop the column that raises the mean AUC most, while one does (on both halves)."""
    drop: frozenset[str] = frozenset()
    current = aucs(data, folds)
    steps = []
    half = len(folds) // 2
    while True:
        best = None
        for column in columns(data, folds):
            if column in drop:
                continue
            values = aucs(data, folds, drop=drop | {column})
            diff = [a - b for a, b in zip(values, current, strict=True)]
            gains = [statistics.mean(diff[:half]), statistics.mean(diff[half:])] if both_halves else [0.0]
            if min(gains) >= 0 and statistics.mean(diff) > 0 and (best is None or statistics.mean(diff) > best[0]):
                best = (statistics.mean(diff), column, values)
        if best is None:
            return drop, steps
        drop = drop | {best[1]}
        current = best[2]
        steps.append((sorted(drop), current))


def nested(data: Data, folds: Sequence[Fold]) -> None:
    """Greedy elimination and the best of L2 / six elastic-nets, chosen inside each fold, scored on it."""
    configs: list[tuple[str, Estimator | None]] = [("L2 C=0.3", None)]
    configs += [(f"elastic-net {r}, C={c}", elastic(c, r)) for r in (0.5, 0.7, 0.9) for c in (0.3, 0.5)]
    seeds = (100, 101)
    base, chosen = [], []
    for k, (seed, (a, _)) in enumerate(
        (s, split)
        for s in seeds
        for split in StratifiedKFold(n_splits=5, shuffle=True, random_state=s).split(np.zeros(len(data.y)), data.y)
    ):
        t0 = time.perf_counter()
        inner = data.folds((300,), idx=a)
        drop, _ = greedy(data, inner, both_halves=False)
        name, est = max(configs, key=lambda cfg: statistics.mean(aucs(data, inner, drop=drop, est=cfg[1])))
        outer = folds[k]
        b0 = float(roc_auc_score(outer.yte, scores(data, outer)))
        b1 = float(roc_auc_score(outer.yte, scores(data, outer, drop=drop, est=est)))
        base.append(b0)
        chosen.append(b1)
        sys.stderr.write(f"fold {k} (seed {seed}): drop {sorted(drop)}, {name}: {b0:.4f} -> {b1:.4f}, ")
        sys.stderr.write(f"{time.perf_counter() - t0:.0f} s\n")
    print(row("nested: elimination + penalty chosen inside each fold", chosen, base))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--families", default="groups,l1,backward,knots,losses,missing,combined")
    args = parser.parse_args()
    families = set(args.families.split(","))
    warnings.filterwarnings("ignore", category=FutureWarning)  # sklearn 1.8 deprecates penalty=
    data = load(args.data)
    folds = data.folds((100, 101))
    base = aucs(data, folds)
    print("| variant | CV ROC AUC | difference ± SE | seed 100 / 101 |")
    print("|---|---|---|---|")
    print(row("shipped mapping", base, base))

    def show(name: str, values: Sequence[float]) -> None:
        print(row(name, values, base), flush=True)

    if "groups" in families:
        grid = (0.5, 0.71, 1.0, 1.41, 2.0)
        results = []
        for cat, knot, cross in itertools.product(grid, grid, grid):
            mult = {"cat": cat, "flag": cat, "knot": knot, "cross": cross}
            results.append((f"text+yes/no ×{cat}, knots ×{knot}, interactions ×{cross}", aucs(data, folds, mult=mult)))
        for group, values in (("flag", (0.25, 0.5, 2.0, 4.0)), ("line", (0.5, 2.0, 4.0))):
            results += [(f"{group} ×{s}", aucs(data, folds, mult={group: s})) for s in values]
        results.sort(key=lambda r: -statistics.mean(r[1]))
        print(f"| (groups: the best 5 of {len(results)}, then the worst) | | | |")
        for name, values in [*results[:5], results[-1]]:
            show(f"group scale: {name}", values)
    if "l1" in families:
        for c in (0.1, 0.3, 1.0):
            show(f"L1 (liblinear), C={c}", aucs(data, folds, est=lasso(c)))
        for r, c in itertools.product((0.1, 0.3, 0.5, 0.7, 0.9), (0.2, 0.3, 0.5, 1.0)):
            if (r == 0.1 and c in (0.2, 0.5)) or (r not in (0.1, 0.5) and c == 1.0):
                continue
            show(f"elastic-net (saga), l1_ratio={r}, C={c}", aucs(data, folds, est=elastic(c, r)))
    if "backward" in families:
        singles = [(column, aucs(data, folds, drop=frozenset({column}))) for column in columns(data, folds)]
        for column, values in sorted(singles, key=lambda s: -statistics.mean(s[1])):
            show(f"drop {column}", values)
        for dropped, values in greedy(data, folds, both_halves=True)[1]:
            show(f"greedy elimination: drop {', '.join(dropped)}", values)
    if "knots" in families:
        for order in (1, 2):
            changed = [differences(f, order) for f in folds]
            for s in (0.25, 0.5, 1.0, 2.0, 4.0):
                name = f"16 knots, ridge on {order}-order differences, penalty ×{1 / s**2:g}"
                show(name, aucs(data, changed, mult={"knot": s}))
        for k in (24, 32):
            more = data.folds((100, 101), edits=[numbers(knots=k)])
            show(f"{k} knots, ridge on values", aucs(data, more))
            for s in (0.5, 1.0, 2.0):
                name = f"{k} knots, ridge on 1-order differences, penalty ×{1 / s**2:g}"
                show(name, aucs(data, [differences(f, 1) for f in more], mult={"knot": s}))
        show("16 knots at 0 and quantiles of the non-zero values", aucs(data, [nonzero_knots(f) for f in folds]))
    if "losses" in families:
        for n, c in itertools.product((50_000, 150_000), (0.03, 0.1, 0.3, 1.0)):
            show(f"pairwise logistic loss, {n:,} pairs, C={c}", aucs(data, folds, est=lambda n=n, c=c: Pairwise(c, n)))
        for c in (0.003, 0.01, 0.03, 0.1):
            show(f"linear SVM (squared hinge), C={c}", aucs(data, folds, est=lambda c=c: Svm(c)))
        show("mean coefficients of 20 bootstrap fits", aucs(data, folds, est=lambda: Bagged(20)))
    if "missing" in families:
        show("no missing indicator for visits / page views", aucs(data, folds, mult={"miss": 1e-6}))
        zero = [
            f.recoded(
                [
                    dataclasses.replace(x, missing=0.0) if isinstance(x, Numeric) and x.missing_indicator else x
                    for x in f.features
                ]
            )
            for f in folds
        ]
        show("missing visits / page views as 0 instead of the median", aucs(data, zero))
    if "combined" in families:
        country = frozenset({"Country"})
        show("drop Country + elastic-net 0.5, C=0.3", aucs(data, folds, drop=country, est=elastic(0.3, 0.5)))
        show("drop Country + elastic-net 0.7, C=0.5", aucs(data, folds, drop=country, est=elastic(0.5, 0.7)))
    if "nested" in families:
        nested(data, folds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
