"""Train on a CRM export (CSV or Parquet): mapping → facts → leakage check → fit → calibrate.

Rows become facts in :mod:`._export` (as the worker builds them for a producer sending the same fields); the
features read those facts with the code that serves them. The evaluation compares the model with two baselines
(:mod:`._baselines`) on the same held-out rows, and the model card is drawn by :mod:`._card`.

scikit-learn and numpy are imported inside the functions.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.exceptions import TrainingError
from worker.scoring._drift import distributions
from worker.scoring._features import Categorical, Cross, Feature, Flag, FreeEmail, Numeric
from worker.scoring._model import Model, Weights
from worker.scoring.training._baselines import compare
from worker.scoring.training._evaluation import calibration_bins, expected_calibration_error, metrics
from worker.scoring.training._export import Prepared, prepare, read_table
from worker.scoring.training._mapping import Column, ColumnMapping, load_mapping
from worker.scoring.training._progress import Bar, progress_bar
from worker.scoring.training._report import TableReport
from worker.scoring.training._splits import as_good, mean_metrics, spreads
from worker.scoring.training.train import CV_FOLDS, fit, learn_features, matrix, write_model

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["TableReport", "calibrate", "neutral_unseen", "single_feature_auc", "train_table"]

logger = logging.getLogger(__name__)

FOLDS = 5
TOL = 1e-5  # the optimiser's tolerance: tighter changes the 4th decimal of no metric, and costs 10x the time


@dataclass(frozen=True, slots=True)
class Variant:
    """One fitted model and what it scores on the held-out rows."""

    c: float  # the L2 strength it was fitted with (chosen by cross-validation, or the mapping's)
    c_losses: list[float]  # each C of the grid's mean cross-validated log loss (empty when C was fixed)
    model: Model
    uncalibrated: Model
    p: list[float]
    p_uncalibrated: list[float]


def _features(
    columns: Sequence[Column], train: Sequence[Mapping[str, object]], missing: frozenset[str]
) -> list[Feature]:
    """One feature per mapped column, reading the fact the column became; numbers get bins and knots at quantiles of
    the training rows (knots from the smallest to the largest value)."""
    out: list[Feature] = []
    for column in columns:
        name, path, label = column.field, column.field, column.label
        if column.kind == "numeric":
            values = sorted(
                float(v) for f in train if isinstance(v := f.get(path), int | float) and not isinstance(v, bool)
            )
            if not values:
                values = [0.0]
            lo, hi = values[0], values[-1]
            log = column.transform == "log1p" or (column.transform == "auto" and lo >= 0)
            edges = (
                sorted({values[len(values) * k // column.bins] for k in range(1, column.bins)}) if column.bins else []
            )
            edges = [e for e in edges if lo < e <= hi]
            k = column.knots
            knots = sorted({values[(len(values) - 1) * i // (k - 1)] for i in range(k)}) if k else []
            out.append(
                Numeric(
                    name,
                    path,
                    label,
                    transform="log1p" if log else "identity",
                    clip=(lo, max(hi, lo)),
                    missing=values[len(values) // 2],
                    missing_indicator=len(values) < len(train),
                    bins=tuple(edges),
                    knots=tuple(knots) if len(knots) >= 2 else (),
                )
            )
        elif column.kind in ("yes_no", "boolean"):
            out.append(Flag(name, path, label))
        elif column.kind == "free_email":
            out.append(FreeEmail(name, path, label))
        else:
            out.append(Categorical(name, path, label, missing_values=frozenset(v for v in missing if v)))
    return out


def _crosses(features: Sequence[Feature], prepared: Prepared, mapping: ColumnMapping) -> list[Cross]:
    """One cross feature per mapped interaction, of the two columns' own features (levels learned later)."""
    by_column = {c.column: f for c, f in zip(prepared.columns, features, strict=True)}
    out: list[Cross] = []
    for a, b in mapping.interactions:
        first, second = by_column[a], by_column[b]
        if not isinstance(first, Categorical | Flag) or not isinstance(second, Categorical | Flag):
            bad = a if not isinstance(first, Categorical | Flag) else b
            msg = f"interactions: column {bad!r} is read as {by_column[bad].kind}; interactions read text or yes/no"
            raise TrainingError(msg, source=mapping.source, column=bad, key="interactions")
        out.append(Cross(f"{first.name}*{second.name}", f"{first.label} × {second.label}", (first, second)))
    return out


def _split_indices(
    prepared: Prepared, mapping: ColumnMapping, n_splits: int
) -> tuple[list[tuple[int, list[int], list[int]]], str]:
    """(seed, training rows, held-out rows) per split, and how they were drawn.

    With a ``date`` column: one split, the latest ``holdout`` share held out (time cannot be resampled). Otherwise
    ``n_splits`` stratified splits with seeds 0 to n_splits − 1.
    """
    n = len(prepared.labels)
    n_test = max(1, round(n * mapping.holdout))
    if prepared.times is not None:
        times = prepared.times
        order = sorted(range(n), key=lambda i: (times[i], i))
        split = (0, sorted(order[: n - n_test]), sorted(order[n - n_test :]))
        return [split], f"latest {mapping.holdout:.0%} by {mapping.date!r}"
    from sklearn.model_selection import train_test_split

    out = []
    for seed in range(n_splits):
        train, test = train_test_split(list(range(n)), test_size=n_test, stratify=prepared.labels, random_state=seed)
        out.append((seed, sorted(train), sorted(test)))
    seeds = "seed 0" if n_splits == 1 else f"seeds 0-{n_splits - 1}"
    return out, f"{n_splits} stratified {mapping.holdout:.0%} splits, {seeds}"


def _reads_flagged(feature: Feature, flagged: set[str]) -> bool:
    return isinstance(feature, Cross) and any(part.name in flagged for part in feature.parts)


def single_feature_auc(
    features: Sequence[Feature], rows: Sequence[Mapping[str, object]], labels: Sequence[int], seed: int = 0
) -> dict[str, float]:
    """Each feature's out-of-fold ROC AUC on its own (a logistic regression on its columns, 5 folds)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    out: dict[str, float] = {}
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for feature in features:
        x = _standardised(matrix([feature], rows))
        p = cross_val_predict(LogisticRegression(max_iter=1000), x, list(labels), cv=folds, method="predict_proba")
        out[feature.name] = round(float(roc_auc_score(labels, p[:, 1])), 4)
    return out


def _standardised(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    result: npt.NDArray[np.float64] = (x - x.mean(axis=0)) / scale
    return result


def neutral_unseen(model: Model, rows: Sequence[Mapping[str, object]]) -> Model:
    """A level that no training row has (a yes/no never missing, a (missing) never seen) contributes exactly 0.

    Its column is constant 0 in training, so the fit leaves its coefficient at 0 and its contribution at minus
    the group's weighted mean, which can be large for a near-constant group; the data says nothing about such a
    value, so it scores as the average lead. Training predictions do not change (the column is never 1).
    """
    weights = []
    for feature, w in zip(model.features, model.weights, strict=True):
        if isinstance(feature, Numeric | FreeEmail):
            weights.append(w)
            continue
        seen = Counter(feature.value(r) for r in rows)
        base = math.fsum(-c / s * m for c, s, m in zip(w.coef, w.scale, w.mean, strict=True))
        coef = tuple(
            -base * s if not seen[level] and m == 0.0 else c
            for level, c, s, m in zip(feature.all_levels, w.coef, w.scale, w.mean, strict=True)
        )
        weights.append(Weights(w.mean, w.scale, coef))
    return Model(model.name, model.intercept, model.features, tuple(weights), model.training)


def calibrate(model: Model, logits: Sequence[float], labels: Sequence[int]) -> tuple[Model, float, float]:
    """Platt scaling folded into the weights: logit' = a·logit + b, so factors still add up to the logit exactly.

    ``logits`` must be held out from what fitted ``model`` (here: out-of-fold). Returns the model and (a, b).
    """
    from sklearn.linear_model import LogisticRegression

    platt = LogisticRegression(C=1e6, max_iter=1000).fit([[v] for v in logits], list(labels))
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    weights = tuple(Weights(w.mean, w.scale, tuple(a * c for c in w.coef)) for w in model.weights)
    training = {**model.training, "calibration": {"method": "platt", "a": a, "b": b}}
    return Model(model.name, a * model.intercept + b, model.features, weights, training), a, b


def _fit_variant(
    features: Sequence[Feature],
    train: Sequence[Mapping[str, object]],
    y_train: Sequence[int],
    test: Sequence[Mapping[str, object]],
    mapping: ColumnMapping,
    bar: Bar,
    label: str,
) -> Variant:
    """Fit on the training rows (C by cross-validation on them); calibrate on out-of-fold logits; score ``test``."""
    from sklearn.model_selection import StratifiedKFold

    kwargs: dict[str, Any] = {
        "c": mapping.c,
        "min_share": mapping.min_share,
        "min_count": mapping.min_count,
        "tol": TOL,
        "scale_indicators": False,
    }
    fitted = fit(
        train, y_train, name=mapping.name, features=features, c_grid=mapping.c_grid, cv_seed=mapping.seed, **kwargs
    )
    kwargs["c"] = fitted.model.training["C"]  # the calibration folds refit with the C chosen here
    model = neutral_unseen(fitted.model, train)
    if mapping.calibration == "platt":
        oof = [0.0] * len(train)
        folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=mapping.seed)
        for k, (inner, outer) in enumerate(folds.split(list(range(len(train))), list(y_train))):
            bar(f"calibrating {label}", k, FOLDS)
            rows = [train[i] for i in inner]
            fold = neutral_unseen(
                fit(rows, [y_train[i] for i in inner], name="fold", features=features, **kwargs).model, rows
            )
            for i in outer:
                oof[i] = fold.score(train[i]).logit
        bar(f"calibrating {label}", FOLDS, FOLDS)
        model, _, _ = calibrate(model, oof, y_train)
    uncalibrated = neutral_unseen(fitted.model, train)
    return Variant(
        c=float(kwargs["c"]),
        c_losses=fitted.model.training.get("C_search", {}).get("log_loss", []),
        model=model,
        uncalibrated=uncalibrated,
        p=[model.score(f).probability for f in test],
        p_uncalibrated=[uncalibrated.score(f).probability for f in test],
    )


def _leadflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("leadflow")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


@dataclass(frozen=True, slots=True)
class _Run:
    """One split: every scorer's held-out metrics, what the model chose, and (for the charts) its predictions."""

    seed: int
    metrics: dict[str, dict[str, Any]]
    other: dict[str, Any] | None  # the with/without-flagged model's metrics
    c: float
    ece_before: float
    ece_after: float
    test_i: list[int]
    scores: dict[str, list[float]]
    uncalibrated: list[float]


def _features_on(prepared: Prepared, mapping: ColumnMapping, rows: Sequence[Mapping[str, object]]) -> list[Feature]:
    """Every mapped column's feature and the interactions, with bins, knots and levels learned on ``rows``."""
    base = _features(prepared.columns, rows, mapping.missing_values)
    return learn_features(
        rows, [*base, *_crosses(base, prepared, mapping)], min_share=mapping.min_share, min_count=mapping.min_count
    )


def _chosen(features: Sequence[Feature], flagged: set[str], keep_flagged: bool) -> list[Feature]:
    return [f for f in features if keep_flagged or (f.name not in flagged and not _reads_flagged(f, flagged))]


def _run_split(
    prepared: Prepared,
    mapping: ColumnMapping,
    split: tuple[int, list[int], list[int]],
    flagged: set[str],
    bar: Bar,
) -> _Run:
    """Learn everything on the split's training rows (features, C, weights, calibration, baselines), score the rest."""
    seed, train_i, test_i = split
    train = [prepared.facts[i] for i in train_i]
    test = [prepared.facts[i] for i in test_i]
    y_train = [prepared.labels[i] for i in train_i]
    y_test = [prepared.labels[i] for i in test_i]
    every = _features_on(prepared, mapping, train)
    chosen = _chosen(every, flagged, not mapping.drop_flagged)
    main = _fit_variant(chosen, train, y_train, test, mapping, bar, "model")
    other = None
    if flagged:
        variant = _fit_variant(
            _chosen(every, flagged, mapping.drop_flagged), train, y_train, test, mapping, bar, "variant"
        )
        other = {"model": metrics(y_test, variant.p)}
    columns = [f for f in chosen if not isinstance(f, Cross)]  # the baselines read each column once
    compared, scores = compare(columns, train, y_train, test, y_test, main.p, min_count=mapping.min_count)
    results = {"model": compared.pop("model"), "model, uncalibrated": metrics(y_test, main.p_uncalibrated), **compared}
    return _Run(
        seed=seed,
        metrics=results,
        other=other,
        c=main.c,
        ece_before=expected_calibration_error(y_test, main.p_uncalibrated),
        ece_after=expected_calibration_error(y_test, main.p),
        test_i=test_i,
        scores=scores,
        uncalibrated=main.p_uncalibrated,
    )


def train_table(
    data: str | Path,
    mapping: ColumnMapping | str | Path,
    out: Path | None = None,
    *,
    progress: bool | None = None,
    splits: int | None = None,
    allow_no_better: bool = True,
) -> TableReport:
    """Evaluate over repeated splits, fit the final model on every row, and with ``out`` write the files.

    The hold-out figures are the mean and spread over ``splits`` stratified splits (default: the mapping's
    ``evaluation.splits``, 10), each learning everything on its own training rows; the model written is fitted
    on all rows the same way. When a baseline does as well as the model (:func:`._splits.as_good`) the report
    says so; with ``allow_no_better=False`` the model JSON is then not written (the card and charts still are).

    BLAS runs on one thread meanwhile: the fits are small and many, and on a shared machine a multithreaded BLAS
    made each one 10 to 20 times slower (measured: 27 ms against 2 ms for 420 rows × 30 columns).
    """
    import sklearn.linear_model  # noqa: F401  # loads BLAS and the optimiser, which the limit only reaches once loaded
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _train_table(data, mapping, out, progress=progress, splits=splits, allow_no_better=allow_no_better)


def _train_table(
    data: str | Path,
    mapping: ColumnMapping | str | Path,
    out: Path | None,
    *,
    progress: bool | None,
    splits: int | None,
    allow_no_better: bool,
) -> TableReport:
    import sklearn

    t0 = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    if not isinstance(mapping, ColumnMapping):
        mapping = load_mapping(mapping)
    n_splits = mapping.splits if splits is None else splits
    if n_splits < 1:
        msg = f"splits must be at least 1, got {n_splits}"
        raise TrainingError(msg, source=mapping.source, key="evaluation.splits")
    table = read_table(data)
    mapping.check_columns(table.header, str(table.path))
    with progress_bar(show) as bar:
        prepared = prepare(table, mapping, bar)
        rows, labels = prepared.facts, prepared.labels
        all_features = _features_on(prepared, mapping, rows)
        bar("leakage check", 0, 1)
        aucs = single_feature_auc(all_features, rows, labels, mapping.seed)
        bar("leakage check", 1, 1)
        flagged = {name for name, auc in aucs.items() if auc >= mapping.max_auc}
        if flagged and not _chosen(all_features, flagged, keep_flagged=False):
            msg = f"{table.path}: every feature is flagged as leakage (single-feature AUC >= {mapping.max_auc})"
            raise TrainingError(msg, source=mapping.source, key="leakage.max_auc")
        indices, split = _split_indices(prepared, mapping, n_splits)
        runs: list[_Run] = []
        for k, one in enumerate(indices):
            bar("splits", k, len(indices))
            runs.append(_run_split(prepared, mapping, one, flagged, bar))
        bar("splits", len(indices), len(indices))
        bar("final fit", 0, 1)
        chosen = _chosen(all_features, flagged, not mapping.drop_flagged)
        final = _fit_variant(chosen, rows, labels, rows, mapping, bar, "final")
        bar("final fit", 1, 1)
    per_split = [r.metrics for r in runs]
    results = mean_metrics(per_split)
    spread_of = spreads(per_split)
    verdicts = as_good(per_split, [name for name in results if name not in ("model", "model, uncalibrated")])
    by_column = {c.field: c.column for c in prepared.columns}
    for f in all_features:
        if isinstance(f, Cross):
            by_column[f.name] = " × ".join(by_column[part.name] for part in f.parts)
    leakage = [
        {
            "column": by_column[name],
            "feature": name,
            "auc": auc,
            "flagged": name in flagged,
            "kept": name in flagged and not mapping.drop_flagged,
        }
        for name, auc in sorted(aucs.items(), key=lambda kv: -kv[1])
    ]
    other_report = None
    if flagged:
        label = "with the flagged columns" if mapping.drop_flagged else "without the flagged columns"
        other_report = {
            "label": label,
            "columns": sorted(by_column[n] for n in flagged),
            "metrics": mean_metrics([r.other for r in runs if r.other is not None]),
        }
    calibration: dict[str, Any] = {"method": mapping.calibration, "max_auc": mapping.max_auc}
    if mapping.calibration == "platt":
        cal = final.model.training["calibration"]
        calibration.update(
            a=round(cal["a"], 6),
            b=round(cal["b"], 6),
            ece_before=round(math.fsum(r.ece_before for r in runs) / len(runs), 4),
            ece_after=round(math.fsum(r.ece_after for r in runs) / len(runs), 4),
        )
    regularisation: dict[str, Any] = {"C": final.c, "chosen_by": "mapping (model.C)"}
    if mapping.c_grid:
        regularisation = {
            "C": final.c,
            "chosen_by": f"{CV_FOLDS}-fold stratified cross-validation on the training rows, lowest mean log loss",
            "grid": list(mapping.c_grid),
            "log_loss": final.c_losses,
            "per_split": [r.c for r in runs],
        }
    first = runs[0]
    training = {
        "data": {
            "file": table.path.name,
            "sha256": table.sha256,
            "rows": len(table.rows),
            "used": len(labels),
        },
        "mapping": json.loads(json.dumps(dict(mapping.raw), default=str)),
        "split": {
            "method": split,
            "splits": len(runs),
            "train": len(labels) - len(first.test_i),
            "test": len(first.test_i),
        },
        "fitted_on": f"all {len(labels):,} rows",
        "features": [{"feature": f.name, "column": by_column[f.name], "kind": f.kind} for f in chosen],
        "leakage": leakage,
        "metrics": results,
        "spread": {scorer: {m: v.as_dict() for m, v in by.items()} for scorer, by in spread_of.items()},
        "per_split": [{"seed": r.seed, "C": r.c, **{k: v["roc_auc"] for k, v in r.metrics.items()}} for r in runs],
        "baselines": [v.as_dict() for v in verdicts],
        "other_variant": other_report,
        "calibration": {**final.model.training.get("calibration", {}), **calibration},
        "estimator": "sklearn.linear_model.LogisticRegression",
        "sklearn_version": sklearn.__version__,
        "leadflow_version": _leadflow_version(),
        "C": final.c,
        "regularisation": regularisation,
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "distributions": distributions(final.model.features, rows),
    }
    model = Model(final.model.name, final.model.intercept, final.model.features, final.model.weights, training)
    y_first = [labels[i] for i in first.test_i]
    report = TableReport(
        name=mapping.name,
        version=model.version,
        data=str(table.path),
        n_rows=len(labels),
        n_skipped=prepared.skipped,
        n_train=len(labels) - len(first.test_i),
        n_test=len(first.test_i),
        split=split,
        base_rate=sum(labels) / len(labels),
        metrics=results,
        leakage=leakage,
        calibration=calibration,
        features=[f.name for f in chosen],
        other_variant=other_report,
        model=model,
        spread=spread_of,
        verdicts=verdicts,
        regularisation=regularisation,
        splits=[{"seed": r.seed, "C": r.c, "metrics": r.metrics} for r in runs],
        curves={
            "seed": first.seed,
            "which": split if prepared.times is not None else f"split seed {first.seed}",
            "y": y_first,
            "lines": [prepared.lines[i] for i in first.test_i],
            "scores": first.scores,
            "uncalibrated": first.uncalibrated,
            "calibration_bins": calibration_bins(y_first, first.scores["model"]),
            "served": [model.score(prepared.facts[i]).probability for i in first.test_i],
        },
    )
    report.withheld = not allow_no_better and any(v.as_good for v in verdicts)
    if out is not None:
        from worker.scoring.training._card import write_card

        out.mkdir(parents=True, exist_ok=True)
        written = [] if report.withheld else [out / "model.json"]
        if not report.withheld:
            write_model(model, out / "model.json")
        report.files = [*written, *write_card(model, report, out, rows)]
    report.seconds = time.perf_counter() - t0
    logger.info(
        "trained %s on %s: ROC AUC %s over %d splits",
        model.version,
        table.path,
        spread_of["model"]["roc_auc"],
        len(runs),
    )
    return report
