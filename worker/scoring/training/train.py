"""Train the scoring model with scikit-learn and export it as the JSON that :mod:`worker.scoring._model` serves.

Training-serving parity: every lead's events are replayed through exactly what the worker runs
(:func:`worker.lead.parse.parse_event` → :func:`worker.lead.state.apply_event` →
:func:`worker.lead.state.build_facts`), and the features are read from those facts by the same code that serving uses.

Rows: the worker scores a lead on *every* event, from the first (profile only) to the last, so a training row is
a snapshot of a lead's facts after a random one of its events (``CUTS_PER_LEAD`` per lead, uniformly), labelled
with whether the lead converted within the window. The probability is thereby calibrated over the events the
worker actually scores, early ones included; training on the last event only would rank as well but make every
early score far too low (see docs/MODEL.md for both measured).

scikit-learn and numpy are imported inside the functions, so importing this module (and ``worker.scoring``)
stays cheap for the worker.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from worker.lead.events import LeadErased, LeadMatched
from worker.lead.parse import parse_event
from worker.lead.state import apply_event, build_facts, event_digest, new_state
from worker.scoring._drift import distributions
from worker.scoring._features import (
    Categorical,
    Cross,
    Feature,
    Numeric,
    columns_of,
    default_features,
    normalise_text,
)
from worker.scoring._model import Model, Weights
from worker.scoring.training._baselines import compare as compare_baselines
from worker.scoring.training._progress import Bar, progress_bar
from worker.scoring.training._splits import Spread, Verdict, as_good, spread_table, spreads
from worker.scoring.training.synth import generate

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from sklearn.linear_model import LogisticRegression

__all__ = [
    "CalibrationBin",
    "Fitted",
    "TrainReport",
    "choose_c",
    "evaluate",
    "final_facts",
    "fit",
    "learn_features",
    "matrix",
    "repeated",
    "replay",
    "replayed",
    "train_synthetic",
    "write_model",
]

logger = logging.getLogger(__name__)

SYNTHETIC_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
SYNTHETIC_WEEKS = 6
HOLDOUT_FRACTION = 0.25
MIN_LEVEL_SHARE = 0.01  # a categorical level needs 1 % of the training rows (and at least MIN_LEVEL_COUNT)
MIN_LEVEL_COUNT = 10
DEDUPE_WINDOW = 64
CV_FOLDS = 5  # folds of the cross-validation that chooses C
CUTS_PER_LEAD = 4  # training rows per lead: snapshots after this many random events (with replacement)


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """Holdout leads whose predicted probability fell in [lo, hi): how many, predicted and observed rates."""

    lo: float
    hi: float
    n: int
    predicted: float
    observed: float


@dataclass(frozen=True, slots=True)
class TrainReport:
    """What training produced and how well the model does on the holdout leads."""

    version: str
    seed: int
    n_leads: int
    n_train: int
    n_test: int
    n_events: int
    base_rate: float
    auc: float
    brier: float
    log_loss: float
    calibration: tuple[CalibrationBin, ...]
    auc_last: float
    brier_last: float
    calibration_last: tuple[CalibrationBin, ...]
    path: Path | None
    seconds: float
    comparison: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # with compare=True
    spread: dict[str, dict[str, Spread]] = dataclasses.field(default_factory=dict)  # with splits: over them
    verdicts: list[Verdict] = dataclasses.field(default_factory=list)  # with splits: each baseline against the model
    withheld: bool = False  # a baseline does as well and no-better models were not allowed: not written

    @property
    def no_better(self) -> list[Verdict]:
        """The baselines that do as well as the model over the repeated splits."""
        return [v for v in self.verdicts if v.as_good]

    def __str__(self) -> str:
        lines = [
            f"model {self.version}: {self.n_leads:,} synthetic leads (seed {self.seed}), {self.n_events:,} events, "
            f"{self.n_train:,} train / {self.n_test:,} holdout, base rate {self.base_rate:.1%}",
            f"holdout at a random event (as served): AUC {self.auc:.3f}, Brier {self.brier:.4f}, "
            f"log loss {self.log_loss:.4f}",
            f"holdout at each lead's last event: AUC {self.auc_last:.3f}, Brier {self.brier_last:.4f}",
            "calibration (holdout, random event): predicted -> observed",
        ]
        lines += [
            f"  [{b.lo:.1f}, {b.hi:.1f})  n={b.n:5d}  predicted {b.predicted:.3f}  observed {b.observed:.3f}"
            for b in self.calibration
        ]
        for name, m in self.comparison.items():
            lines.append(
                f"  {name:<20} ROC AUC {m['roc_auc']:.3f}  PR AUC {m['pr_auc']:.3f}  log loss {m['log_loss']:.4f}  "
                f"Brier {m['brier']:.4f}  ECE {m['ece']:.4f}  lift@10% {m['lift'][0]:.2f}"
            )
        if self.spread:
            n = self.spread["model"]["roc_auc"].n
            lines.append(
                f"over {n} repeated stratified {HOLDOUT_FRACTION:.0%} splits of the leads (seeds 0-{n - 1}; "
                "each fitted on its training leads, scored at a random event): mean ± standard deviation [min, max]"
            )
            lines.append(spread_table(self.spread))
            lines += [str(v) for v in self.verdicts]
        if self.no_better:
            names = " and ".join(v.baseline for v in self.no_better)
            verb = "does" if len(self.no_better) == 1 else "do"
            lines.append(
                f"NOT BETTER: {names} {verb} as well as the model; "
                + ("not written (pass --allow-no-better to write it anyway)" if self.withheld else "written anyway")
            )
        if self.path is None:
            lines.append("not written (no --out)")
        elif not self.withheld:
            lines.append(f"written to {self.path} (fitted on the {self.n_train:,} training leads above)")
        lines.append(f"took {self.seconds:.1f}s")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Fitted:
    """A fitted model with what produced it: the estimator and the column standardisation."""

    model: Model
    estimator: LogisticRegression
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]


def train_synthetic(
    *,
    seed: int = 7,
    n_leads: int = 4000,
    out: Path | None = None,
    progress: bool | None = None,
    compare: bool = False,
    splits: int = 0,
    allow_no_better: bool = True,
) -> TrainReport:
    """Generate seeded synthetic leads, replay them, fit, evaluate on a seeded holdout and write ``out``.

    Rows are snapshots at random events of each lead (see the module docstring); the holdout is scored at one
    random event per lead (as served) and at its last event. ``progress`` shows a rich progress bar, by
    default only when standard error is a terminal. ``compare`` also fits both baselines on the same rows and
    reports all three on the as-served holdout (not stored in the model file). ``splits`` also evaluates the same
    fit, and both baselines, over that many repeated stratified splits of the leads (:func:`repeated`; reported,
    not stored, so the model file stays the same); with ``allow_no_better=False`` the model is then not written
    when a baseline does as well (:func:`._splits.as_good`).
    """
    t0 = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    data = generate(n_leads, seed=seed, start=SYNTHETIC_START, weeks=SYNTHETIC_WEEKS)
    counts = Counter(str(e["lead_id"]) for e in data.events)
    lead_ids = sorted(counts)
    rng = random.Random(seed)  # noqa: S311  # a reproducible split and sample, not security
    rng.shuffle(lead_ids)
    n_test = round(len(lead_ids) * HOLDOUT_FRACTION)
    test_ids, train_ids = lead_ids[:n_test], lead_ids[n_test:]
    at: dict[str, list[int]] = {}
    for lead_id in train_ids:
        at[lead_id] = [rng.randrange(counts[lead_id]) for _ in range(CUTS_PER_LEAD)]
    served: dict[str, int] = {}
    for lead_id in test_ids:
        served[lead_id] = rng.randrange(counts[lead_id])
        at[lead_id] = [served[lead_id], counts[lead_id] - 1]
    with progress_bar(show) as bar:
        snapshots = replay(data.events, at, bar)
        bar("fitting", 0, 1)
        train_rows = [snapshots[i][k] for i in train_ids for k in at[i]]
        train_labels = [data.outcomes[i] for i in train_ids for _ in at[i]]
        fitted = fit(
            train_rows,
            train_labels,
            name=f"synthetic-s{seed}",
            training={
                "data": "synthetic",
                "seed": seed,
                "n_leads": n_leads,
                "weeks": SYNTHETIC_WEEKS,
                "start": SYNTHETIC_START.isoformat(),
                "rows": f"facts after {CUTS_PER_LEAD} random events of each training lead",
                "n_train_leads": len(train_ids),
                "n_test_leads": len(test_ids),
            },
        )
        bar("fitting", 1, 1)
    labels = [data.outcomes[i] for i in test_ids]
    as_served = evaluate(fitted.model, [snapshots[i][served[i]] for i in test_ids], labels)
    at_last = evaluate(fitted.model, [snapshots[i][counts[i] - 1] for i in test_ids], labels)
    comparison: dict[str, dict[str, Any]] = {}
    if compare:
        served_rows = [snapshots[i][served[i]] for i in test_ids]
        comparison, _ = compare_baselines(
            fitted.model.features,
            train_rows,
            [int(v) for v in train_labels],
            served_rows,
            [int(v) for v in labels],
            [fitted.model.score(f).probability for f in served_rows],
        )
    model = fitted.model
    holdout = {
        "random_event": {k: v for k, v in as_served.items() if k != "calibration"},
        "last_event": {k: v for k, v in at_last.items() if k != "calibration"},
    }
    trained = set(train_ids)
    every = (facts for _, _, facts in replayed([e for e in data.events if str(e["lead_id"]) in trained]))
    meta = {**model.training, "holdout": holdout, "distributions": distributions(model.features, every)}
    model = Model(model.name, model.intercept, model.features, model.weights, meta)
    spread: dict[str, dict[str, Spread]] = {}
    verdicts: list[Verdict] = []
    if splits:
        with progress_bar(show) as bar:
            runs = repeated(data.events, data.outcomes, seed=seed, n_splits=splits, bar=bar)
        spread = spreads(runs)
        verdicts = as_good(runs, [name for name in runs[0] if name != "model"])
    withheld = not allow_no_better and any(v.as_good for v in verdicts)
    if out is not None and not withheld:
        write_model(model, out)
    report = TrainReport(
        version=model.version,
        seed=seed,
        n_leads=n_leads,
        n_train=len(train_ids),
        n_test=len(test_ids),
        n_events=len(data.events),
        base_rate=sum(data.outcomes.values()) / max(1, len(data.outcomes)),
        auc=as_served["auc"],
        brier=as_served["brier"],
        log_loss=as_served["log_loss"],
        calibration=tuple(CalibrationBin(**b) for b in as_served["calibration"]),
        auc_last=at_last["auc"],
        brier_last=at_last["brier"],
        calibration_last=tuple(CalibrationBin(**b) for b in at_last["calibration"]),
        path=out,
        seconds=time.perf_counter() - t0,
        comparison=comparison,
        spread=spread,
        verdicts=verdicts,
        withheld=withheld,
    )
    logger.info("trained %s: holdout AUC %.3f, Brier %.4f", report.version, report.auc, report.brier)
    return report


def repeated(
    events: Sequence[Mapping[str, Any]],
    outcomes: Mapping[str, bool],
    *,
    seed: int,
    n_splits: int,
    bar: Bar | None = None,
) -> list[dict[str, dict[str, Any]]]:
    """The model and both baselines over ``n_splits`` stratified splits of the leads (seeds 0 to n_splits − 1).

    Each lead gets its own ``CUTS_PER_LEAD`` training snapshots and one served snapshot (seeded by ``seed``, drawn
    apart from the shipped model's); each split fits as :func:`train_synthetic` does on its training leads and
    scores its held-out leads at their served event. Returns each split's metrics by scorer.
    """
    import sklearn.linear_model  # noqa: F401  # loaded before the limit below, which reaches only loaded libraries
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # many fits: a multithreaded BLAS makes each 10-20x slower on a busy machine
        return _repeated(events, outcomes, seed, n_splits, bar, train_test_split)


def _repeated(
    events: Sequence[Mapping[str, Any]],
    outcomes: Mapping[str, bool],
    seed: int,
    n_splits: int,
    bar: Bar | None,
    train_test_split: Callable[..., Any],
) -> list[dict[str, dict[str, Any]]]:
    counts = Counter(str(e["lead_id"]) for e in events)
    lead_ids = sorted(counts)
    rng = random.Random(f"{seed}-splits")  # noqa: S311  # reproducible snapshots, not security
    cuts = {i: [rng.randrange(counts[i]) for _ in range(CUTS_PER_LEAD + 1)] for i in lead_ids}  # the last: served
    snapshots = replay(events, cuts, bar)
    labels = [int(outcomes[i]) for i in lead_ids]
    runs = []
    for s in range(n_splits):
        if bar is not None:
            bar("splits", s, n_splits)
        train_ids, test_ids = train_test_split(lead_ids, test_size=HOLDOUT_FRACTION, stratify=labels, random_state=s)
        rows = [snapshots[i][k] for i in train_ids for k in cuts[i][:-1]]
        y = [int(outcomes[i]) for i in train_ids for _ in cuts[i][:-1]]
        model = fit(rows, y, name=f"split-{s}").model
        served = [snapshots[i][cuts[i][-1]] for i in test_ids]
        y_test = [int(outcomes[i]) for i in test_ids]
        by_scorer, _ = compare_baselines(
            model.features, rows, y, served, y_test, [model.score(f).probability for f in served]
        )
        runs.append(by_scorer)
    if bar is not None:
        bar("splits", n_splits, n_splits)
    return runs


def replay(
    events: Iterable[Mapping[str, Any]], at: Mapping[str, Iterable[int]] | None = None, bar: Bar | None = None
) -> dict[str, dict[int, dict[str, object]]]:
    """Each lead's facts after some of its events, exactly as the worker builds them when it scores.

    ``at`` maps a lead to the 0-based positions (in the lead's own order) to snapshot; by default, its last
    event. Every event is serialised and goes through ``parse_event`` → ``apply_event`` → ``build_facts``.
    """
    events = list(events)
    if at is None:
        counts = Counter(str(e["lead_id"]) for e in events)
        at = {lead_id: (n - 1,) for lead_id, n in counts.items()}
    wanted = {lead_id: set(positions) for lead_id, positions in at.items()}
    out: dict[str, dict[int, dict[str, object]]] = {}
    for lead_id, position, facts in replayed(events, lambda lead_id, k: k in wanted.get(lead_id, ()), bar):
        out.setdefault(lead_id, {})[position] = facts
    return out


def replayed(
    events: Sequence[Mapping[str, Any]],
    wanted: Callable[[str, int], bool] | None = None,
    bar: Bar | None = None,
) -> Iterator[tuple[str, int, dict[str, object]]]:
    """(lead id, position in the lead's events, facts) after every event, or those ``wanted(lead_id, position)``."""
    states: dict[str, dict[str, Any]] = {}
    seen: Counter[str] = Counter()
    step = max(1, len(events) // 100)
    for i, raw in enumerate(events):
        lead_id = str(raw["lead_id"])
        event = parse_event(lead_id.encode(), orjson.dumps(raw))
        if isinstance(event, LeadErased):  # the lead is forgotten: its next events start from nothing
            states.pop(lead_id, None)
            continue
        if isinstance(event, LeadMatched):  # the match step's answer: changes none of the lead's facts
            continue
        now = event.occurred_at.timestamp()
        state = states.get(lead_id)
        if state is None:
            state = states[lead_id] = new_state(lead_id, now)
        apply_event(state, event, event_digest(event.event_id), now, DEDUPE_WINDOW)
        position = seen[lead_id]
        seen[lead_id] += 1
        if wanted is None or wanted(lead_id, position):
            yield lead_id, position, build_facts(state, now, event)
        if bar is not None and i % step == 0:
            bar("replaying", i, len(events))
    if bar is not None:
        bar("replaying", len(events), len(events))


def final_facts(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, object]]:
    """Each lead's facts after its last event."""
    return {lead_id: facts[max(facts)] for lead_id, facts in replay(events).items()}


def matrix(features: Sequence[Feature], rows: Sequence[Mapping[str, object]]) -> npt.NDArray[np.float64]:
    """The training matrix: one row per facts dict, the columns of every feature in order."""
    import numpy as np

    return np.array([[x for f in features for x in f.encode(facts)] for facts in rows], dtype=np.float64).reshape(
        len(rows), len(columns_of(features))
    )


def learn_features(
    rows: Sequence[Mapping[str, object]],
    features: Sequence[Feature] | None = None,
    *,
    min_share: float = MIN_LEVEL_SHARE,
    min_count: int = MIN_LEVEL_COUNT,
) -> list[Feature]:
    """Fill in what the data decides: categorical levels (by frequency) and missing numbers (the median).

    A level needs ``min_share`` of the rows and at least ``min_count`` of them; rarer ones score as (other).
    """
    out: list[Feature] = []
    min_count = max(min_count, round(min_share * len(rows)))
    for feature in default_features() if features is None else features:
        if isinstance(feature, Categorical):
            feature = _learn_levels(feature, rows, min_count)
        elif isinstance(feature, Cross):
            a, b = (_learn_levels(p, rows, min_count) if isinstance(p, Categorical) else p for p in feature.parts)
            feature = dataclasses.replace(feature, parts=(a, b))
            pairs = Counter(feature.pair(facts) for facts in rows)
            kept = sorted((pair for pair, n in pairs.items() if n >= min_count), key=lambda pair: (-pairs[pair], pair))
            feature = dataclasses.replace(feature, levels=tuple(kept))
        elif isinstance(feature, Numeric) and feature.missing_indicator:
            present = sorted(
                float(v)
                for facts in rows
                if isinstance(v := facts.get(feature.path), int | float) and not isinstance(v, bool)
            )
            if present:
                feature = dataclasses.replace(feature, missing=present[len(present) // 2])
        out.append(feature)
    return out


def _learn_levels(feature: Categorical, rows: Sequence[Mapping[str, object]], min_count: int) -> Categorical:
    """A text feature's levels: the values at least ``min_count`` rows have, most frequent first."""
    counts: dict[str, dict[str, int]] = {}
    for facts in rows:
        raw = facts.get(feature.path)
        level = normalise_text(raw)
        if level is not None and level not in feature.missing_values:
            spellings = counts.setdefault(level, {})
            shown = str(raw).strip()
            spellings[shown] = spellings.get(shown, 0) + 1
    kept = sorted(
        (level for level, sp in counts.items() if sum(sp.values()) >= min_count),
        key=lambda level: (-sum(counts[level].values()), level),
    )
    display = tuple(max(counts[level].items(), key=lambda kv: (kv[1], kv[0]))[0] for level in kept)
    return dataclasses.replace(feature, levels=tuple(kept), display=display)


def fit(
    rows: Sequence[Mapping[str, object]],
    labels: Sequence[bool] | Sequence[int],
    *,
    name: str,
    features: Sequence[Feature] | None = None,
    c: float = 1.0,
    training: Mapping[str, Any] | None = None,
    min_share: float = MIN_LEVEL_SHARE,
    min_count: int = MIN_LEVEL_COUNT,
    tol: float = 1e-8,
    scale_indicators: bool = True,
    c_grid: Sequence[float] = (),
    cv_seed: int = 0,
) -> Fitted:
    """Standardise, fit an L2 logistic regression (no class weights: probabilities stay calibrated), export.

    With a ``c_grid`` of two or more values, C is the one with the best mean log loss over stratified
    ``CV_FOLDS``-fold cross-validation of these rows (:func:`choose_c`), and ``c`` is ignored.

    With ``scale_indicators=False`` the 0/1 columns of text and yes/no features are centred but not scaled: a
    value only a handful of rows have then gets a penalised, modest weight instead of one as large as its rarity.
    A number's knot columns (weights between 0 and 1) are treated alike: the penalty then acts on the curve's
    value at each knot on the scale of the contribution itself, shrinking it towards the line where few rows are.
    """
    import numpy as np
    import sklearn
    from sklearn.linear_model import LogisticRegression

    learned = learn_features(rows, features, min_share=min_share, min_count=min_count)
    x = matrix(learned, rows)
    y = np.array(labels, dtype=np.int64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    if not scale_indicators:
        i = 0
        for feature in learned:
            n = len(feature.columns)
            if not isinstance(feature, Numeric):
                scale[i : i + n] = 1.0
            elif feature.knots:
                scale[i + n - len(feature.knots) : i + n] = 1.0
            i += n
    searched: dict[str, Any] = {}
    if len(c_grid) > 1:
        c, scores = choose_c((x - mean) / scale, y, c_grid, seed=cv_seed, tol=tol)
        searched = {"C_search": {"grid": list(c_grid), "folds": CV_FOLDS, "seed": cv_seed, "log_loss": scores}}
    estimator = LogisticRegression(C=c, max_iter=2000, tol=tol)
    estimator.fit((x - mean) / scale, y)
    coef = estimator.coef_[0]
    weights: list[Weights] = []
    i = 0
    for feature in learned:
        n = len(feature.columns)
        weights.append(
            Weights(
                mean=tuple(float(v) for v in mean[i : i + n]),
                scale=tuple(float(v) for v in scale[i : i + n]),
                coef=tuple(float(v) for v in coef[i : i + n]),
            )
        )
        i += n
    meta = {
        **(training or {}),
        "estimator": "sklearn.linear_model.LogisticRegression",
        "sklearn_version": sklearn.__version__,
        "C": c,
        **searched,
        "n_rows": len(rows),
        "positive_rate": round(float(y.mean()), 6) if len(y) else 0.0,
    }
    model = Model(name, float(estimator.intercept_[0]), tuple(learned), tuple(weights), meta)
    return Fitted(model=model, estimator=estimator, mean=mean, scale=scale)


def choose_c(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.int64], grid: Sequence[float], *, seed: int = 0, tol: float = 1e-8
) -> tuple[float, list[float]]:
    """The C of ``grid`` with the lowest mean held-out log loss over stratified ``CV_FOLDS``-fold cross-validation.

    ``x`` is the standardised training matrix (levels, knots and scaling learned on all of it, as the fit will
    use them); returns the chosen C and each C's mean log loss, in the grid's order. A tie goes to the smaller C.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    folds = list(StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed).split(x, y))
    by_c: dict[float, list[float]] = {c: [] for c in grid}
    for inner, outer in folds:
        estimator = LogisticRegression(max_iter=2000, tol=tol, warm_start=True)  # each C starts from the last
        for c in sorted(grid):
            estimator.set_params(C=c).fit(x[inner], y[inner])
            by_c[c].append(log_loss(y[outer], estimator.predict_proba(x[outer])[:, 1], labels=[0, 1]))
    losses = [round(math.fsum(by_c[c]) / len(by_c[c]), 6) for c in grid]
    best = min(range(len(grid)), key=lambda i: (losses[i], grid[i]))
    return float(grid[best]), losses


def evaluate(model: Model, rows: Sequence[Mapping[str, object]], labels: Sequence[bool]) -> dict[str, Any]:
    """AUC, Brier score, log loss and a 10-bin calibration table of ``model`` on the given rows."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    p = [model.score(facts).probability for facts in rows]
    y = [int(v) for v in labels]
    bins: list[dict[str, Any]] = []
    for k in range(10):
        lo, hi = k / 10, (k + 1) / 10
        members = [(pi, yi) for pi, yi in zip(p, y, strict=True) if lo <= pi < hi or (k == 9 and pi == 1.0)]
        if members:
            bins.append(
                {
                    "lo": lo,
                    "hi": hi,
                    "n": len(members),
                    "predicted": round(sum(m[0] for m in members) / len(members), 4),
                    "observed": round(sum(m[1] for m in members) / len(members), 4),
                }
            )
    return {
        "n": len(y),
        "auc": round(float(roc_auc_score(y, p)), 4),
        "brier": round(float(brier_score_loss(y, p)), 4),
        "log_loss": round(float(log_loss(y, p, labels=[0, 1])), 4),
        "calibration": bins,
    }


def write_model(model: Model, path: Path) -> None:
    """Write the model JSON (indented, stable key order, newline at the end)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info("wrote model %s to %s", model.version, path)
