"""The serving side of the model: load the JSON, score a lead's facts, explain the score.

Plain Python over the JSON (no numpy, no scikit-learn): a logistic regression on standardised columns,

    logit = baseline + Σ_group contribution_group,   contribution = Σ_columns coef × (x − mean) / scale

where ``baseline`` is the intercept, i.e. the logit of the mean lead. At load time each feature group is folded
into a lookup table (one-hot groups), a line ``a·x + b`` (numbers) or one such line per stretch between a
number's bin edges and knots, and the whole model into one generated straight-line function (:func:`_generate`),
so that scoring plus factors stay within a few microseconds.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import json
import logging
import math
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from worker.exceptions import ModelError
from worker.scoring._features import (
    MISSING,
    Categorical,
    Cross,
    Feature,
    Flag,
    FreeEmail,
    Keyword,
    Numeric,
    feature_from_dict,
)
from worker.state import is_tracked

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Model",
    "Score",
    "ScoreMemo",
    "Weights",
    "default_model_path",
    "load_model",
]

logger = logging.getLogger(__name__)

FORMAT = "leadflow.model"
FORMAT_VERSION = 3  # 2 added the ``cross`` feature kind, 3 ``knots`` on numbers
_CACHE_LIMIT = 4096
_KNOWN_KEYS = ("format", "format_version", "name", "intercept", "features", "training")

_Scorer = Callable[[Mapping[str, object]], float]
_Labeller = Callable[[Mapping[str, object], float], tuple[str, float]]
_CACHEABLE = (str, int, float)  # hashable fact values whose factor label can be remembered
_first = operator.itemgetter(0)


class ScoreMemo:
    """One lead's contributions at its last scoring, and the words of its factors shown since: what rescoring the
    lead after an event reuses (:meth:`Model.score`). Kept per lead by the caller, for one model at a time."""

    __slots__ = ("contributions", "labels", "last", "model", "reshow", "shown", "shown_names", "threshold", "top")

    def __init__(self) -> None:
        self.contributions: list[float] = []
        self.last: Score | None = None  # the Score of the last scoring
        self.labels: dict[str, tuple[str, float]] = {}
        self.model: Model | None = None
        self.shown: list[dict[str, Any]] = []  # the factors of the last decision
        self.shown_names: frozenset[str] = frozenset()
        self.threshold = math.inf  # the smallest |contribution| among them
        self.top = -1  # how many were asked for
        self.reshow = True  # whether the last rescoring may have changed them


class Score(NamedTuple):  # built once per event: a tuple is cheaper than a frozen dataclass
    """One lead's score: the probability, its log-odds and how each feature group moved it from the baseline."""

    probability: float
    logit: float
    baseline: float
    values: tuple[float, ...]
    """Each feature group's contribution, in the model's order (the names are in ``names``)."""
    names: tuple[str, ...]

    @property
    def contributions(self) -> tuple[tuple[str, float], ...]:
        """``(feature group, contribution)`` pairs, in the model's order."""
        return tuple(zip(self.names, self.values, strict=True))


@dataclass(frozen=True, slots=True)
class Weights:
    """One feature group's columns: standardisation (mean, scale) and coefficients on the standardised scale."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Model:
    """A trained scoring model; immutable, cheap to call, safe to share between threads."""

    name: str
    intercept: float
    features: tuple[Feature, ...]
    weights: tuple[Weights, ...]
    training: Mapping[str, Any] = field(default_factory=dict)
    version: str = field(init=False)
    _score: Callable[[Mapping[str, object]], Score] = field(init=False, repr=False)
    _labellers: dict[str, _Labeller] = field(init=False, repr=False)
    _parts: tuple[_Scorer, ...] = field(init=False, repr=False)
    _finish: Callable[[list[float]], Score] = field(init=False, repr=False)
    _names: tuple[str, ...] = field(init=False, repr=False)
    _volatile: tuple[int, ...] = field(init=False, repr=False)
    """The feature groups that read a fact whose changes events do not report: rescored on every event."""
    _dependents: Mapping[str, tuple[int, ...]] = field(init=False, repr=False)
    """Tracked fact → the feature groups that read it."""

    def __post_init__(self) -> None:
        if len(self.features) != len(self.weights):
            msg = f"model {self.name!r}: {len(self.features)} features but {len(self.weights)} weight groups"
            raise ModelError(msg)
        names = [f.name for f in self.features]
        if not names:
            msg = f"model {self.name!r} has no features"
            raise ModelError(msg)
        if len(set(names)) != len(names):
            msg = f"model {self.name!r}: duplicate feature names in {names!r}"
            raise ModelError(msg)
        object.__setattr__(self, "training", MappingProxyType(copy.deepcopy(dict(self.training))))
        compiled = [_compile(f, w) for f, w in zip(self.features, self.weights, strict=True)]
        generated = _generate(compiled, self.intercept)
        object.__setattr__(self, "_score", generated.score)
        object.__setattr__(self, "_parts", generated.parts)
        object.__setattr__(self, "_finish", generated.finish)
        object.__setattr__(self, "_names", tuple(names))
        reads = [_reads(f) for f in self.features]
        object.__setattr__(self, "_volatile", tuple(i for i, r in enumerate(reads) if not all(map(is_tracked, r))))
        dependents: dict[str, list[int]] = {}
        for i, paths in enumerate(reads):
            if i not in self._volatile:
                for path in paths:
                    dependents.setdefault(path, []).append(i)
        object.__setattr__(self, "_dependents", {path: tuple(group) for path, group in dependents.items()})
        object.__setattr__(self, "_labellers", {f.name: _labeller(f) for f in self.features})
        digest = hashlib.sha256(_canonical(self.to_dict())).hexdigest()[:8]
        object.__setattr__(self, "version", f"{self.name}-{digest}")

    # -- scoring ---------------------------------------------------------------------------------------------

    def score(
        self, facts: Mapping[str, object], memo: ScoreMemo | None = None, changed: Collection[str] | None = None
    ) -> Score:
        """Score one lead's facts (see :func:`worker.state.build_facts`).

        With a ``memo`` (one per lead, see :class:`ScoreMemo`) the contributions are remembered in it; with
        ``changed`` too (the paths :func:`worker.state.apply_event` returned since the memo's scoring), only the
        feature groups that read a changed fact, or a fact whose changes are not reported, are computed again.
        The Score is the same, bit for bit, as without a memo.
        """
        if memo is None:
            return self._score(facts)
        contributions, parts, labels = memo.contributions, self._parts, memo.labels
        last = memo.last
        if changed is None or memo.model is not self or last is None:
            memo.model = self
            contributions[:] = [part(facts) for part in parts]
            labels.clear()
            memo.reshow = True
            memo.last = score = self._finish(contributions)
            return score
        names, shown, threshold = self._names, memo.shown_names, memo.threshold
        moved = reshow = False
        for i in self._volatile:
            contributions[i] = c = parts[i](facts)
            labels.pop(names[i], None)
            moved = True
            reshow = reshow or names[i] in shown or abs(c) >= threshold
        dependents = self._dependents
        for path in changed:
            for i in dependents.get(path, ()):
                contributions[i] = c = parts[i](facts)
                labels.pop(names[i], None)
                moved = True
                reshow = reshow or names[i] in shown or abs(c) >= threshold
        memo.reshow = reshow
        if not moved:
            return last
        memo.last = score = self._finish(contributions)
        return score

    def factors(
        self, score: Score, facts: Mapping[str, object], top: int, memo: ScoreMemo | None = None
    ) -> list[dict[str, Any]]:
        """The ``top`` feature groups that moved the score most, largest |contribution| first, in words.

        With the ``memo`` the score was made with, the words of a group whose facts did not change are reused,
        and so are the last factors when no group that changed was among them or is now as large as the smallest
        of them (the factor dicts are then shared between decisions: treat them as read-only).
        """
        if memo is not None and not memo.reshow and memo.top == top:
            return list(memo.shown)
        ranked = sorted(zip(score.values, score.names, strict=True), key=_first)  # most negative first
        i, j = 0, len(ranked) - 1
        labellers = self._labellers
        labels = None if memo is None else memo.labels
        smallest = math.inf
        out: list[dict[str, Any]] = []
        for _ in range(min(top, len(ranked))):
            if -ranked[i][0] > ranked[j][0]:
                contribution, name = ranked[i]
                i += 1
            else:
                contribution, name = ranked[j]
                j -= 1
            if labels is None:
                label, rounded = labellers[name](facts, contribution)
            else:
                hit = labels.get(name)
                if hit is None:
                    hit = labels[name] = labellers[name](facts, contribution)
                label, rounded = hit
                smallest = min(smallest, abs(contribution))
            out.append({"feature": name, "label": label, "contribution": rounded})
        if memo is not None:
            memo.shown, memo.shown_names, memo.top = out, frozenset(f["feature"] for f in out), top
            memo.threshold = smallest if len(out) < len(ranked) else -1.0  # all shown: any change shows
            memo.reshow = False
            return list(out)
        return out

    # -- JSON ------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see docs/MODEL.md); ``from_dict(to_dict())`` gives an equal model and version."""
        features = []
        for feature, weights in zip(self.features, self.weights, strict=True):
            entry = feature.to_dict()
            entry["mean"] = list(weights.mean)
            entry["scale"] = list(weights.scale)
            entry["coef"] = list(weights.coef)
            features.append(entry)
        return {
            "format": FORMAT,
            "format_version": max((_first_version(f)[0] for f in self.features), default=1),
            "name": self.name,
            "intercept": self.intercept,
            "features": features,
            "training": copy.deepcopy(dict(self.training)),
        }

    @classmethod
    def from_dict(cls, data: object, *, source: str = "<model>") -> Model:
        """Validate the JSON form; raise :class:`ModelError` naming ``source`` and what is wrong."""
        if not isinstance(data, dict):
            msg = f"{source}: a model is a JSON object, got {type(data).__name__}"
            raise ModelError(msg)
        fmt = data.get("format")
        if fmt != FORMAT:
            msg = f"{source}: 'format' is {fmt!r}, expected {FORMAT!r}; is this a leadflow model file?"
            raise ModelError(msg)
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
            msg = (
                f"{source}: format_version {version!r} is not supported; this leadflow reads versions "
                f"1 to {FORMAT_VERSION} (retrain with 'leadflow train --synthetic --out ...')"
            )
            raise ModelError(msg)
        missing = [key for key in ("name", "intercept", "features") if key not in data]
        if missing:
            msg = f"{source}: missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
            raise ModelError(msg)
        unknown = sorted(set(data) - set(_KNOWN_KEYS))
        if unknown:
            msg = f"{source}: unknown field(s) {', '.join(map(repr, unknown))}; expected {', '.join(_KNOWN_KEYS)}"
            raise ModelError(msg)
        name = data["name"]
        if not isinstance(name, str) or not name:
            msg = f"{source}: 'name' must be a non-empty string, got {name!r}"
            raise ModelError(msg)
        intercept = data["intercept"]
        if not _finite(intercept):
            msg = f"{source}: 'intercept' must be a finite number, got {intercept!r}"
            raise ModelError(msg)
        raw_features = data["features"]
        if not isinstance(raw_features, list) or not raw_features:
            msg = f"{source}: 'features' must be a non-empty list, got {raw_features!r:.80}"
            raise ModelError(msg)
        training = data.get("training", {})
        if not isinstance(training, dict):
            msg = f"{source}: 'training' must be an object, got {type(training).__name__}"
            raise ModelError(msg)
        features: list[Feature] = []
        weights: list[Weights] = []
        seen: set[str] = set()
        for i, raw in enumerate(raw_features):
            where = f"{source}: features[{i}]"
            if isinstance(raw, dict) and isinstance(raw.get("name"), str):
                where += f" ({raw['name']!r})"
            feature = feature_from_dict(raw, where)
            needs, what = _first_version(feature)
            if needs > version:
                msg = f"{where}: {what} needs format_version {needs}, got {version}"
                raise ModelError(msg)
            if feature.name in seen:
                msg = f"{where}: duplicate feature name {feature.name!r}"
                raise ModelError(msg)
            seen.add(feature.name)
            features.append(feature)
            weights.append(_weights_from(raw, len(feature.columns), where))
        return cls(name, float(intercept), tuple(features), tuple(weights), training)


def load_model(path: str | Path) -> Model:
    """Read a model JSON file; raise :class:`ModelError` naming the file and what is wrong with it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"{path}: model file not found"
        raise ModelError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read the model file: {exc}"
        raise ModelError(msg) from None
    model = model_from_text(text, str(path))
    logger.debug("loaded model %s from %s (%d features)", model.version, path, len(model.features))
    return model


def model_from_text(text: str, source: str) -> Model:
    """A model from its JSON text; raise :class:`ModelError` naming ``source`` and what is wrong with it."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        msg = f"{source}: model file is not JSON: {exc}"
        raise ModelError(msg) from None
    return Model.from_dict(data, source=source)


def default_model_path() -> Path:
    """The model shipped with leadflow (trained on the seeded synthetic data; see docs/MODEL.md)."""
    return Path(__file__).with_name("default_model.json")


# ---------------------------------------------------------------------------------------------------------------


def _first_version(feature: Feature) -> tuple[int, str]:
    """The lowest format version that reads ``feature``, and what needs it; a file is written with the lowest
    version that reads all its features, so a model without crosses or knots stays readable by older leadflows."""
    if isinstance(feature, Cross):
        return 2, "kind 'cross'"
    if isinstance(feature, Numeric) and feature.knots:
        return 3, "'knots'"
    return 1, f"kind {feature.kind!r}"


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _weights_from(raw: Mapping[str, object], n: int, where: str) -> Weights:
    arrays: list[tuple[float, ...]] = []
    for key in ("mean", "scale", "coef"):
        values = raw.get(key)
        if not isinstance(values, list) or len(values) != n or not all(_finite(v) for v in values):
            msg = f"{where}: {key!r} must be a list of {n} finite numbers (one per column), got {values!r:.120}"
            raise ModelError(msg)
        arrays.append(tuple(float(v) for v in values))
    if any(s <= 0 for s in arrays[1]):
        msg = f"{where}: 'scale' values must be > 0, got {list(arrays[1])!r}"
        raise ModelError(msg)
    return Weights(*arrays)


class _Pieces(NamedTuple):
    """A number's contribution on [lo, hi]: ``base + a·x + b``, x transformed, (a, b) = lines[bisect(breaks, raw)]."""

    lo: float
    hi: float
    base: float
    breaks: tuple[float, ...]
    lines: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One feature group folded into a function, plus what the generated fast path inlines."""

    name: str
    path: str
    scorer: _Scorer  # facts -> contribution, for any value
    when_missing: float  # the contribution when the fact is absent (None)
    cache: dict[str, float] | None = None  # text features: raw text -> contribution, filled by ``scorer``
    line: tuple[float, float, float, float] | None = None  # numbers in [lo, hi]: (lo, hi, slope, offset)
    pieces: _Pieces | None = None  # numbers in [lo, hi] with bins or knots: a line per stretch between breaks
    log1p: bool = False
    direct: bool = False  # no fast path on the fact at ``path`` (a cross reads two): always call ``scorer``


def _compile(feature: Feature, weights: Weights) -> _Compiled:
    """Fold one feature group's columns into a single function facts -> contribution.

    Each function has a fast path for the common value types and falls back to the feature's own
    :meth:`value` (the code that training uses) for anything else, so both always agree.
    """
    slopes = [c / s for c, s in zip(weights.coef, weights.scale, strict=True)]
    offsets = [-w * m for w, m in zip(slopes, weights.mean, strict=True)]  # contribution of a column at x = 0
    if isinstance(feature, Numeric):
        if feature.bins or feature.knots:
            return _compile_piecewise(feature, slopes, offsets)
        return _compile_numeric(feature, slopes, offsets)
    if isinstance(feature, FreeEmail):
        return _compile_free_email(feature, slopes[0] + offsets[0], offsets[0])
    base = math.fsum(offsets)
    table = {level: slopes[i] + base for i, level in enumerate(feature.all_levels)}
    if isinstance(feature, Cross):
        return _compile_cross(feature, table)
    return _compile_one_hot(feature, table)


class _Generated(NamedTuple):
    """The generated functions of a model: see :func:`_generate`."""

    score: Callable[[Mapping[str, object]], Score]
    parts: tuple[_Scorer, ...]  # one feature group's contribution each, by the same code as ``score``'s
    finish: Callable[[list[float]], Score]  # the Score from the contributions, by the same sums as ``score``'s


def _generate(compiled: list[_Compiled], intercept: float) -> _Generated:
    """One straight-line Python function for the whole model: no per-feature call on the common paths.

    Also one function per feature group with the same code as its stretch of the whole, and ``finish``, which
    adds up given contributions with the same expression: rescoring a lead from remembered contributions
    (:meth:`Model.score` with a memo) gives the same floats, bit for bit, as scoring it afresh.

    The source holds only generated identifiers (``path_3``, ``c_3``...); every value from the model file
    (paths, names, weights) is passed in the namespace, never pasted into the code.
    """
    namespace: dict[str, Any] = {
        "Score": Score,
        "exp": math.exp,
        "log1p": math.log1p,
        "bisect": bisect.bisect_right,
        "intercept": intercept,
        "names": tuple(part.name for part in compiled),
    }
    n = len(compiled)
    blocks = [_part_lines(i, part, namespace) for i, part in enumerate(compiled)]
    tail = [
        f"    logit = intercept + ({' + '.join(f'c_{i}' for i in range(n))})",
        "    if logit >= 0.0:",
        "        probability = 1.0 / (1.0 + exp(-logit))",
        "    else:",
        "        e = exp(logit)",
        "        probability = e / (1.0 + e)",
        f"    return Score(probability, logit, intercept, ({''.join(f'c_{i}, ' for i in range(n))}), names)",
    ]
    lines = ["def score(facts):", "    get = facts.get"]
    for block in blocks:
        lines += block
    lines += tail
    for i, block in enumerate(blocks):
        lines += [f"def part_{i}(facts):", "    get = facts.get", *block, f"    return c_{i}"]
    unpack = ", ".join(f"c_{i}" for i in range(n))
    lines += ["def finish(cs):", f"    {unpack}{',' if n == 1 else ''} = cs", *tail]
    code = compile("\n".join(lines) + "\n", "<leadflow model>", "exec")
    exec(code, namespace)  # noqa: S102  # generated from identifiers only; see the docstring
    parts: tuple[_Scorer, ...] = tuple(namespace[f"part_{i}"] for i in range(n))
    return _Generated(namespace["score"], parts, namespace["finish"])


def _part_lines(i: int, part: _Compiled, namespace: dict[str, Any]) -> list[str]:
    """The lines that set ``c_<i>``, feature group ``i``'s contribution (``get`` is ``facts.get``)."""
    namespace.update({f"path_{i}": part.path, f"name_{i}": part.name, f"scorer_{i}": part.scorer})
    namespace[f"missing_{i}"] = part.when_missing
    if part.direct:
        return [f"    c_{i} = scorer_{i}(facts)"]
    lines = [f"    raw = get(path_{i})", "    if raw is None:", f"        c_{i} = missing_{i}"]
    if part.line is not None:
        lo, hi, slope, offset = part.line
        namespace.update({f"lo_{i}": lo, f"hi_{i}": hi, f"slope_{i}": slope, f"offset_{i}": offset})
        x = "log1p(raw)" if part.log1p else "raw"
        lines += [
            f"    elif (type(raw) is int or type(raw) is float) and lo_{i} <= raw <= hi_{i}:",
            f"        c_{i} = slope_{i} * {x} + offset_{i}",
            "    else:",
            f"        c_{i} = scorer_{i}(facts)",
        ]
    elif part.pieces is not None:
        lo, hi, base, breaks, pieces = part.pieces
        namespace.update({f"lo_{i}": lo, f"hi_{i}": hi, f"base_{i}": base})
        namespace.update({f"breaks_{i}": breaks, f"lines_{i}": pieces})
        x = "log1p(raw)" if part.log1p else "raw"
        lines += [
            f"    elif (type(raw) is int or type(raw) is float) and lo_{i} <= raw <= hi_{i}:",
            f"        a, b = lines_{i}[bisect(breaks_{i}, raw)]",
            f"        c_{i} = base_{i} + a * {x} + b",
            "    else:",
            f"        c_{i} = scorer_{i}(facts)",
        ]
    elif part.cache is not None:
        namespace[f"cache_{i}"] = part.cache
        lines += [
            "    else:",
            f"        c_{i} = cache_{i}.get(raw) if type(raw) is str else None",
            f"        if c_{i} is None:",
            f"            c_{i} = scorer_{i}(facts)",
        ]
    else:
        lines += ["    else:", f"        c_{i} = scorer_{i}(facts)"]
    return lines


def _reads(feature: Feature) -> tuple[str, ...]:
    """The facts a feature group reads (its value and its words)."""
    return feature.paths if isinstance(feature, Cross) else (feature.path,)


def _labeller(feature: Feature) -> _Labeller:
    """(label, rounded contribution) for one factor, remembered per (raw fact, contribution): both repeat."""
    describe, path = feature.describe, feature.path
    cache: dict[tuple[object, float], tuple[str, float]] = {}
    if isinstance(feature, Cross):
        return _cross_labeller(feature)

    def label(facts: Mapping[str, object], contribution: float) -> tuple[str, float]:
        raw = facts.get(path)
        cacheable = raw is None or type(raw) in _CACHEABLE
        if cacheable:
            hit = cache.get((raw, contribution))
            if hit is not None:
                return hit
        made = (f"{describe(facts)} ({contribution:+.2f})", round(contribution, 4))
        if cacheable:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[raw, contribution] = made
        return made

    return label


def _cross_labeller(feature: Cross) -> _Labeller:
    """As :func:`_labeller`, remembered per (both raw facts, contribution): the words name both values."""
    describe, (first, second) = feature.describe, feature.paths
    cache: dict[tuple[object, object, float], tuple[str, float]] = {}

    def label(facts: Mapping[str, object], contribution: float) -> tuple[str, float]:
        a, b = facts.get(first), facts.get(second)
        cacheable = (a is None or type(a) in _CACHEABLE) and (b is None or type(b) in _CACHEABLE)
        if cacheable:
            hit = cache.get((a, b, contribution))
            if hit is not None:
                return hit
        made = (f"{describe(facts)} ({contribution:+.2f})", round(contribution, 4))
        if cacheable:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[a, b, contribution] = made
        return made

    return label


def _bounded_put(cache: dict[str, float], key: str, value: float) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


def _compile_one_hot(feature: Categorical | Keyword | Flag, table: dict[str, float]) -> _Compiled:
    path, level_of = feature.path, feature.value
    cache: dict[str, float] = {}  # raw text -> contribution; text repeats (sources, industries, titles)

    def one_hot(facts: Mapping[str, object]) -> float:
        contribution = table[level_of(facts)]
        raw = facts.get(path)
        if type(raw) is str:
            _bounded_put(cache, raw, contribution)
        return contribution

    return _Compiled(feature.name, path, one_hot, table[MISSING], cache=cache)


def _compile_cross(feature: Cross, table: dict[str, float]) -> _Compiled:
    level_of = feature.value
    first, second = feature.paths
    cache: dict[tuple[str | None, str | None], float] = {}  # (raw text, raw text) -> contribution; pairs repeat

    def cross(facts: Mapping[str, object]) -> float:
        a, b = facts.get(first), facts.get(second)
        if (a is None or type(a) is str) and (b is None or type(b) is str):
            key = (a, b)
            contribution = cache.get(key)
            if contribution is None:
                contribution = table[level_of(facts)]
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[key] = contribution
            return contribution
        return table[level_of(facts)]

    return _Compiled(feature.name, feature.path, cross, cross({}), direct=True)


def _compile_free_email(feature: FreeEmail, on: float, off: float) -> _Compiled:
    path, is_free = feature.path, feature.value
    cache: dict[str, float] = {}  # a lead's address repeats on each of its events

    def free_email(facts: Mapping[str, object]) -> float:
        contribution = on if is_free(facts) else off
        raw = facts.get(path)
        if type(raw) is str:
            _bounded_put(cache, raw, contribution)
        return contribution

    return _Compiled(feature.name, path, free_email, off, cache=cache)


def _compile_numeric(feature: Numeric, slopes: list[float], offsets: list[float]) -> _Compiled:
    value = feature.value
    slope = slopes[0]
    if feature.missing_indicator:
        when_present = offsets[0] + offsets[1]
        indicator_on = slopes[1]
    else:
        when_present, indicator_on = offsets[0], 0.0
    fill, _ = value({})
    when_missing = slope * fill + when_present + indicator_on

    def numeric(facts: Mapping[str, object]) -> float:
        x, missing = value(facts)
        return when_missing if missing else slope * x + when_present

    lo, hi = feature.clip
    return _Compiled(
        feature.name,
        feature.path,
        numeric,
        when_missing,
        line=(lo, hi, slope, when_present),
        log1p=feature.transform == "log1p",
    )


def _compile_piecewise(feature: Numeric, slopes: list[float], offsets: list[float]) -> _Compiled:
    """A number with bins and/or knots: between two breaks (bin edges, knots) its contribution is one line.

    On a stretch the bin is fixed and the value lies between the same two knots, whose columns are 1 − w and w
    with w linear in x; so the line column, that bin's constant and the two knots' columns sum to one line
    ``base + a·x + b`` (``base`` first, so that a model with bins only sums in the order it always has).
    """
    first = 2 if feature.missing_indicator else 1
    n_bins = len(feature.bins) + 1 if feature.bins else 0
    on_bin, on_knot = slopes[first : first + n_bins], slopes[first + n_bins :]
    base = math.fsum(offsets)  # every column at 0
    knots, scaled = feature.knots, [feature.transformed(k) for k in feature.knots]
    breaks = tuple(sorted({*feature.bins, *knots}))
    pieces: list[tuple[float, float]] = []
    for s in range(len(breaks) + 1):
        at = breaks[s - 1] if s else -math.inf  # a point of the stretch: every break <= it is <= the whole stretch
        a, b = slopes[0], on_bin[feature.bin_of(at)] if n_bins else 0.0
        if knots:
            if at < knots[0] or at >= knots[-1]:
                b += on_knot[0] if at < knots[0] else on_knot[-1]
            else:
                k = bisect.bisect_right(knots, at) - 1
                step = (on_knot[k + 1] - on_knot[k]) / (scaled[k + 1] - scaled[k])
                a, b = a + step, b + on_knot[k] - step * scaled[k]
        pieces.append((a, b))
    indicator_on = slopes[1] if feature.missing_indicator else 0.0
    clipped, transformed = feature.clipped, feature.transformed

    def piecewise(facts: Mapping[str, object]) -> float:
        raw, missing = clipped(facts)
        a, b = pieces[bisect.bisect_right(breaks, raw)]
        contribution = base + a * transformed(raw) + b
        return contribution + indicator_on if missing else contribution

    lo, hi = feature.clip
    return _Compiled(
        feature.name,
        feature.path,
        piecewise,
        piecewise({}),
        pieces=_Pieces(lo, hi, base, breaks, tuple(pieces)),
        log1p=feature.transform == "log1p",
    )
