"""The serving side of the model: load the JSON, score a lead's facts, explain the score.

Plain Python over the JSON (no numpy, no scikit-learn): a logistic regression on standardised columns,

    logit = baseline + Σ_group contribution_group,   contribution = Σ_columns coef × (x − mean) / scale

where ``baseline`` is the intercept, i.e. the logit of the mean lead. At load time each feature group is folded
into a lookup table (one-hot groups), a line ``a·x + b`` (numbers) or one such line per stretch between a
number's bin edges and knots, and the whole model into one generated straight-line function (:func:`_generate`),
so that scoring plus factors stay within a few microseconds.

Why one module of about 570 lines: loading, the generated scorer and the explanation read the same folded
tables; split, each part would need the others' private layout.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import json
import logging
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

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

__all__ = ["FORMAT", "FORMAT_VERSION", "Model", "Score", "Weights", "default_model_path", "load_model"]

logger = logging.getLogger(__name__)

FORMAT = "leadflow.model"
FORMAT_VERSION = 3  # 2 added the ``cross`` feature kind, 3 ``knots`` on numbers
_CACHE_LIMIT = 4096
_KNOWN_KEYS = ("format", "format_version", "name", "intercept", "features", "training")

_Scorer = Callable[[Mapping[str, object]], float]
_Labeller = Callable[[Mapping[str, object], float], dict[str, Any]]
_CACHEABLE = (str, int, float)  # hashable fact values whose factor label can be remembered
_second = operator.itemgetter(1)


class Score(NamedTuple):  # built once per event: a tuple is cheaper than a frozen dataclass
    """One lead's score: the probability, its log-odds and how each feature group moved it from the baseline."""

    probability: float
    logit: float
    baseline: float
    contributions: tuple[tuple[str, float], ...]


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
        object.__setattr__(self, "_score", _generate(compiled, self.intercept))
        object.__setattr__(self, "_labellers", {f.name: _labeller(f) for f in self.features})
        digest = hashlib.sha256(_canonical(self.to_dict())).hexdigest()[:8]
        object.__setattr__(self, "version", f"{self.name}-{digest}")

    # -- scoring ---------------------------------------------------------------------------------------------

    def score(self, facts: Mapping[str, object]) -> Score:
        """Score one lead's facts (see :func:`worker.lead.state.build_facts`)."""
        return self._score(facts)

    def factors(self, score: Score, facts: Mapping[str, object], top: int) -> list[dict[str, Any]]:
        """The ``top`` feature groups that moved the score most, largest |contribution| first, in words.

        Each factor is ``{"feature", "label", "contribution"}``; the same dicts come back for the same values (they
        are remembered), so callers must not change them.
        """
        ranked = sorted(score.contributions, key=_second)  # most negative first, most positive last
        i, j = 0, len(ranked) - 1
        labellers = self._labellers
        out: list[dict[str, Any]] = []
        for _ in range(min(top, len(ranked))):
            if -ranked[i][1] > ranked[j][1]:
                name, contribution = ranked[i]
                i += 1
            else:
                name, contribution = ranked[j]
                j -= 1
            out.append(labellers[name](facts, contribution))
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
        data = orjson.loads(text)  # nesting bounded (1,024 levels), no NaN: it fails with a message, never deeper
    except orjson.JSONDecodeError as exc:
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


def _generate(compiled: list[_Compiled], intercept: float) -> Callable[[Mapping[str, object]], Score]:
    """One straight-line Python function for the whole model: no per-feature call on the common paths.

    The source holds only generated identifiers (``path_3``, ``c_3``...); every value from the model file
    (paths, names, weights) is passed in the namespace, never pasted into the code.
    """
    namespace: dict[str, Any] = {
        "Score": Score,
        "exp": math.exp,
        "log1p": math.log1p,
        "bisect": bisect.bisect_right,
        "intercept": intercept,
    }
    lines = ["def score(facts):", "    get = facts.get"]
    for i, part in enumerate(compiled):
        namespace.update({f"path_{i}": part.path, f"name_{i}": part.name, f"scorer_{i}": part.scorer})
        namespace[f"missing_{i}"] = part.when_missing
        if part.direct:
            lines.append(f"    c_{i} = scorer_{i}(facts)")
            continue
        lines += [f"    raw = get(path_{i})", "    if raw is None:", f"        c_{i} = missing_{i}"]
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
    n = len(compiled)
    lines += [
        f"    logit = intercept + ({' + '.join(f'c_{i}' for i in range(n))})",
        "    if logit >= 0.0:",
        "        probability = 1.0 / (1.0 + exp(-logit))",
        "    else:",
        "        e = exp(logit)",
        "        probability = e / (1.0 + e)",
        f"    return Score(probability, logit, intercept, ({''.join(f'(name_{i}, c_{i}), ' for i in range(n))}))",
    ]
    code = compile("\n".join(lines) + "\n", "<leadflow model>", "exec")
    exec(code, namespace)  # noqa: S102  # generated from identifiers only; see the docstring
    function: Callable[[Mapping[str, object]], Score] = namespace["score"]
    return function


def _labeller(feature: Feature) -> _Labeller:
    """One factor as a decision shows it (name, words, rounded contribution), remembered per (raw fact,
    contribution): both repeat from event to event, and the same dict is handed out again."""
    describe, path, name = feature.describe, feature.path, feature.name
    cache: dict[tuple[object, float], dict[str, Any]] = {}
    if isinstance(feature, Cross):
        return _cross_labeller(feature)

    def label(facts: Mapping[str, object], contribution: float) -> dict[str, Any]:
        raw = facts.get(path)
        cacheable = raw is None or type(raw) in _CACHEABLE
        if cacheable:
            hit = cache.get((raw, contribution))
            if hit is not None:
                return hit
        made = _factor(name, describe(facts), contribution)
        if cacheable:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[raw, contribution] = made
        return made

    return label


def _cross_labeller(feature: Cross) -> _Labeller:
    """As :func:`_labeller`, remembered per (both raw facts, contribution): the words name both values."""
    describe, (first, second), name = feature.describe, feature.paths, feature.name
    cache: dict[tuple[object, object, float], dict[str, Any]] = {}

    def label(facts: Mapping[str, object], contribution: float) -> dict[str, Any]:
        a, b = facts.get(first), facts.get(second)
        cacheable = (a is None or type(a) in _CACHEABLE) and (b is None or type(b) in _CACHEABLE)
        if cacheable:
            hit = cache.get((a, b, contribution))
            if hit is not None:
                return hit
        made = _factor(name, describe(facts), contribution)
        if cacheable:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[a, b, contribution] = made
        return made

    return label


def _factor(name: str, words: str, contribution: float) -> dict[str, Any]:
    """A factor as decisions and opportunities carry it."""
    return {"feature": name, "label": f"{words} ({contribution:+.2f})", "contribution": round(contribution, 4)}


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
