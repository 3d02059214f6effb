"""Feature extraction from the flat facts dict, shared by training and serving.

A feature is declared once, as plain data stored in the model JSON, so that serving needs nothing but the file.
Each feature reads one fact path and turns it into a *value* (:meth:`value`), then into one or more model
columns (:meth:`encode`, used to build the training matrix). Serving never builds the column vector: it looks
the value up in a table precomputed from the weights (see :mod:`worker.scoring._model`), but it goes through the
very same :meth:`value`, which is what keeps training and serving in step.

Kinds:

- ``numeric``: a number; missing or non-numeric → ``missing`` (a raw value), then clipped to ``clip`` and
  transformed (``identity`` or ``log1p``); with ``missing_indicator`` a second 0/1 column says it was missing;
  with ``bins`` (ascending edges on the clipped raw value) one more 0/1 column per bin, so that the
  contribution can bend where a straight line cannot (a number's group stays one factor); with ``knots``
  (ascending points on the clipped raw value) one column per knot, the weights of linear interpolation between
  the two knots around the value (on the transformed scale), so that the contribution is a continuous curve
  through one learned value per knot, flat beyond the first and the last.
- ``categorical``: text normalised with strip + lowercase; one column per learned level, plus ``(other)`` and
  ``(missing)``; values in ``missing_values`` (placeholders such as "Select" or "N/A") count as missing.
- ``flag``: yes/no, from a boolean, 1/0 or text (yes/no, y/n, true/false, 1/0); one-hot over yes, no and
  ``(missing)``.
- ``free_email``: 1 when the email's domain is in ``domains`` (a free-mail provider), else 0.
- ``keyword``: the first of ``keywords`` (ordered ``[keyword, level]`` pairs) found as whole words in the text,
  else ``default``; one-hot like a categorical, with ``(missing)`` for no text.
- ``cross``: two ``parts`` (categorical or flag, stored whole) read together: one column per frequent pair of
  their levels (``levels``, each ``"a × b"``), plus ``(other)`` for every other pair; what one part's effect is
  depends on the other (an SMS sent to a working professional), and it is still one additive factor.

Why one module of about 700 lines: one class per feature kind, each with its ``value``, ``encode`` and JSON form,
all of which training and serving must share exactly; a kind is added or changed in one place here.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from worker.exceptions import ModelError
from worker.lead.events import KNOWN_ACTIVITY_TYPES

__all__ = [
    "ACTIVITY_LABELS",
    "FEATURE_KINDS",
    "FREE_EMAIL_DOMAINS",
    "MISSING",
    "OTHER",
    "SENIORITY_KEYWORDS",
    "Categorical",
    "Cross",
    "Feature",
    "Flag",
    "FreeEmail",
    "Keyword",
    "Numeric",
    "columns_of",
    "default_features",
    "feature_from_dict",
    "flag_level",
    "format_number",
    "normalise_text",
]

MISSING = "(missing)"
OTHER = "(other)"
FEATURE_KINDS = ("numeric", "categorical", "free_email", "keyword", "flag", "cross")
PAIR = " × "  # between the two parts' levels in a cross level
YES, NO = "yes", "no"
_YES_TEXT = frozenset({"yes", "y", "true", "t", "1"})
_NO_TEXT = frozenset({"no", "n", "false", "f", "0"})

FREE_EMAIL_DOMAINS: tuple[str, ...] = (
    "aol.com",
    "gmail.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hotmail.co.uk",
    "hotmail.com",
    "icloud.com",
    "live.com",
    "mail.com",
    "me.com",
    "msn.com",
    "outlook.com",
    "proton.me",
    "protonmail.com",
    "web.de",
    "yahoo.co.uk",
    "yahoo.com",
    "yahoo.fr",
    "yandex.ru",
    "zoho.com",
)

# Ordered: the first keyword found (as whole words) decides, so "vice president" must come before "president".
SENIORITY_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("vice president", "vp"),
    ("vp", "vp"),
    ("svp", "vp"),
    ("evp", "vp"),
    ("chief", "c-level"),
    ("ceo", "c-level"),
    ("cto", "c-level"),
    ("cfo", "c-level"),
    ("coo", "c-level"),
    ("cmo", "c-level"),
    ("cio", "c-level"),
    ("founder", "c-level"),
    ("owner", "c-level"),
    ("president", "c-level"),
    ("partner", "c-level"),
    ("director", "director"),
    ("head", "director"),
    ("manager", "manager"),
)

ACTIVITY_LABELS: dict[str, str] = {
    "page_view": "page views",
    "email_open": "email opens",
    "email_click": "email clicks",
    "form_submit": "form submissions",
    "content_download": "content downloads",
    "webinar_attended": "webinars attended",
    "demo_request": "demo requests",
    "chat": "chats",
    "call": "calls",
    "meeting": "meetings",
    "email_bounced": "bounced emails",
    "unsubscribe": "unsubscribes",
}

_NON_WORD = re.compile(r"[^a-z0-9]+")
_CACHE_LIMIT = 4096


def normalise_text(raw: object) -> str | None:
    """Strip + lowercase; None, empty and non-scalar values are missing."""
    if raw is None or isinstance(raw, dict | list):
        return None
    text = (raw if isinstance(raw, str) else str(raw)).strip().lower()
    return text or None


def format_number(value: float) -> str:
    """A number as a rep reads it: ``1,200``, ``3.5``."""
    if math.isfinite(value) and float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


@dataclass(frozen=True, slots=True)
class Numeric:
    """A number read from ``path``, clipped and transformed; see the module docstring."""

    name: str
    path: str
    label: str
    transform: Literal["identity", "log1p"] = "identity"
    clip: tuple[float, float] = (0.0, 1e12)
    missing: float = 0.0
    missing_indicator: bool = False
    bins: tuple[float, ...] = ()
    knots: tuple[float, ...] = ()
    kind: Literal["numeric"] = field(default="numeric", init=False)

    @property
    def columns(self) -> tuple[str, ...]:
        columns = [self.name, self.name + "|missing"] if self.missing_indicator else [self.name]
        if self.bins:
            columns += [f"{self.name}|bin{k}" for k in range(len(self.bins) + 1)]
        columns += [f"{self.name}|knot{k}" for k in range(len(self.knots))]
        return tuple(columns)

    def clipped(self, facts: Mapping[str, object]) -> tuple[float, bool]:
        """(raw value clipped to ``clip``, or ``missing`` when absent; whether the fact was missing)."""
        raw = facts.get(self.path)
        if isinstance(raw, int | float) and not isinstance(raw, bool) and raw == raw:  # raw == raw: not NaN
            x, missing = float(raw), False
        else:
            x, missing = self.missing, True
        lo, hi = self.clip
        return (lo if x < lo else hi if x > hi else x), missing

    def value(self, facts: Mapping[str, object]) -> tuple[float, bool]:
        """(transformed value, whether the fact was missing)."""
        x, missing = self.clipped(facts)
        return self.transformed(x), missing

    def transformed(self, x: float) -> float:
        """A clipped raw value on the model's scale (``log1p`` or as is)."""
        return math.log1p(x) if self.transform == "log1p" else x

    def bin_of(self, x: float) -> int:
        """Which bin a clipped raw value falls in: the number of edges <= x."""
        return bisect.bisect_right(self.bins, x)

    def knot_weights(self, x: float) -> tuple[int, float]:
        """(k, w) for a clipped raw value: weight 1 − w on knot k and w on knot k + 1, on the transformed scale.

        Below the first knot all weight is on it (k = 0, w = 0), from the last knot on, on the last one.
        """
        knots = self.knots
        if x <= knots[0]:
            return 0, 0.0
        if x >= knots[-1]:
            return len(knots) - 2, 1.0
        k = bisect.bisect_right(knots, x) - 1
        lo, hi = self.transformed(knots[k]), self.transformed(knots[k + 1])
        return k, (self.transformed(x) - lo) / (hi - lo)

    def encode(self, facts: Mapping[str, object]) -> list[float]:
        x, missing = self.value(facts)
        out = [x, 1.0 if missing else 0.0] if self.missing_indicator else [x]
        if self.bins or self.knots:
            raw = self.clipped(facts)[0]
            if self.bins:
                hit = self.bin_of(raw)
                out += [1.0 if k == hit else 0.0 for k in range(len(self.bins) + 1)]
            if self.knots:
                at = [0.0] * len(self.knots)
                k, w = self.knot_weights(raw)
                at[k] += 1.0 - w
                at[k + 1] += w
                out += at
        return out

    def describe(self, facts: Mapping[str, object]) -> str:
        raw = facts.get(self.path)
        if self.path == "days_since_last_activity":  # read as a rep says it
            if not (isinstance(raw, int | float) and not isinstance(raw, bool) and raw == raw):
                return "no activity yet"
            days = int(raw)
            return "active in the last day" if days < 1 else f"no activity in {days:,} day{'s' if days > 1 else ''}"
        if isinstance(raw, int | float) and not isinstance(raw, bool) and raw == raw:
            return f"{self.label}: {format_number(float(raw))}"
        if self.missing_indicator:
            return f"{self.label}: unknown"
        return f"{self.label}: {format_number(self.missing)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "label": self.label,
            "transform": self.transform,
            "clip": [self.clip[0], self.clip[1]],
            "missing": self.missing,
            "missing_indicator": self.missing_indicator,
            **({"bins": list(self.bins)} if self.bins else {}),
            **({"knots": list(self.knots)} if self.knots else {}),
        }


@dataclass(frozen=True, slots=True)
class Categorical:
    """Text read from ``path``, one-hot over ``levels`` (learned, normalised) plus (other) and (missing)."""

    name: str
    path: str
    label: str
    levels: tuple[str, ...] = ()
    display: tuple[str, ...] = ()  # how each level is shown in a factor, e.g. "Referral" for "referral"
    missing_values: frozenset[str] = frozenset()  # normalised placeholders that mean "not given": "select", "n/a"
    kind: Literal["categorical"] = field(default="categorical", init=False)

    @property
    def all_levels(self) -> tuple[str, ...]:
        return (*self.levels, OTHER, MISSING)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"{self.name}={level}" for level in self.all_levels)

    def value(self, facts: Mapping[str, object]) -> str:
        text = normalise_text(facts.get(self.path))
        if text is None or text in self.missing_values:
            return MISSING
        return text if text in self.levels else OTHER

    def encode(self, facts: Mapping[str, object]) -> list[float]:
        hit = self.value(facts)
        return [1.0 if level == hit else 0.0 for level in self.all_levels]

    def describe(self, facts: Mapping[str, object]) -> str:
        level = self.value(facts)
        if level == MISSING:
            return f"{self.label}: unknown"
        if level == OTHER:
            shown = str(facts.get(self.path)).strip()
        else:
            shown = self.display[self.levels.index(level)] if self.display else level
        return f"{self.label} = {shown}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "label": self.label,
            "levels": list(self.levels),
            "display": list(self.display),
            **({"missing_values": sorted(self.missing_values)} if self.missing_values else {}),
        }


@dataclass(frozen=True, slots=True)
class Flag:
    """Yes or no read from ``path``: a boolean, 1/0, or text such as "Yes"/"No"; one-hot with (missing)."""

    name: str
    path: str
    label: str
    kind: Literal["flag"] = field(default="flag", init=False)

    @property
    def all_levels(self) -> tuple[str, ...]:
        return (YES, NO, MISSING)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"{self.name}={level}" for level in self.all_levels)

    def value(self, facts: Mapping[str, object]) -> str:
        return flag_level(facts.get(self.path))

    def encode(self, facts: Mapping[str, object]) -> list[float]:
        hit = self.value(facts)
        return [1.0 if level == hit else 0.0 for level in self.all_levels]

    def describe(self, facts: Mapping[str, object]) -> str:
        level = self.value(facts)
        return f"{self.label}: {'unknown' if level == MISSING else level}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": self.path, "label": self.label}


def flag_level(raw: object) -> str:
    """``yes``, ``no`` or ``(missing)`` for a boolean, a 1/0 number or a yes/no, y/n, true/false, 1/0 text."""
    if isinstance(raw, bool):
        return YES if raw else NO
    if isinstance(raw, int | float):
        return YES if raw == 1 else NO if raw == 0 else MISSING
    text = normalise_text(raw)
    if text in _YES_TEXT:
        return YES
    if text in _NO_TEXT:
        return NO
    return MISSING


@dataclass(frozen=True, slots=True)
class FreeEmail:
    """1.0 when the email address at ``path`` is at a free-mail domain (a consumer, not a company), else 0.0."""

    name: str
    path: str
    label: str
    domains: frozenset[str] = frozenset(FREE_EMAIL_DOMAINS)
    kind: Literal["free_email"] = field(default="free_email", init=False)

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.name,)

    def value(self, facts: Mapping[str, object]) -> bool:
        text = normalise_text(facts.get(self.path))
        if text is None:
            return False
        return text.rpartition("@")[2] in self.domains

    def encode(self, facts: Mapping[str, object]) -> list[float]:
        return [1.0 if self.value(facts) else 0.0]

    def describe(self, facts: Mapping[str, object]) -> str:
        if normalise_text(facts.get(self.path)) is None:
            return f"{self.label}: no email"
        return f"{self.label}: {'yes' if self.value(facts) else 'no'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "label": self.label,
            "domains": sorted(self.domains),
        }


@dataclass(frozen=True, slots=True)
class Keyword:
    """A level picked by the first keyword found as whole words in the text at ``path``; one-hot."""

    name: str
    path: str
    label: str
    keywords: tuple[tuple[str, str], ...] = SENIORITY_KEYWORDS
    default: str = "other"
    kind: Literal["keyword"] = field(default="keyword", init=False)
    _cache: dict[str, str] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def all_levels(self) -> tuple[str, ...]:
        levels = list(dict.fromkeys(level for _, level in self.keywords))
        for extra in (self.default, MISSING):
            if extra not in levels:
                levels.append(extra)
        return tuple(levels)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"{self.name}={level}" for level in self.all_levels)

    def value(self, facts: Mapping[str, object]) -> str:
        raw = facts.get(self.path)
        if not isinstance(raw, str):
            raw = None if raw is None else str(raw)
        if raw is None:
            return MISSING
        cache = self._cache
        level = cache.get(raw)
        if level is None:
            level = self._match(raw)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[raw] = level
        return level

    def _match(self, raw: str) -> str:
        words = _NON_WORD.sub(" ", raw.lower()).strip()
        if not words:
            return MISSING
        padded = f" {words} "
        for keyword, level in self.keywords:
            if f" {keyword} " in padded:
                return level
        return self.default

    def encode(self, facts: Mapping[str, object]) -> list[float]:
        hit = self.value(facts)
        return [1.0 if level == hit else 0.0 for level in self.all_levels]

    def describe(self, facts: Mapping[str, object]) -> str:
        level = self.value(facts)
        return f"{self.label}: unknown" if level == MISSING else f"{self.label} = {level}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "label": self.label,
            "keywords": [[keyword, level] for keyword, level in self.keywords],
            "default": self.default,
        }


@dataclass(frozen=True, slots=True)
class Cross:
    """The levels of two text or yes/no features read together, one-hot over the frequent pairs plus (other)."""

    name: str
    label: str
    parts: tuple[Categorical | Flag, Categorical | Flag]
    levels: tuple[str, ...] = ()  # learned: "a × b" for each pair of part levels with enough training rows
    kind: Literal["cross"] = field(default="cross", init=False)

    @property
    def path(self) -> str:
        """The first part's fact (both are read; see :attr:`paths`)."""
        return self.parts[0].path

    @property
    def paths(self) -> tuple[str, str]:
        return (self.parts[0].path, self.parts[1].path)

    @property
    def all_levels(self) -> tuple[str, ...]:
        return (*self.levels, OTHER)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"{self.name}={level}" for level in self.all_levels)

    def pair(self, facts: Mapping[str, object]) -> str:
        """The pair of the parts' levels, whether learned or not."""
        return self.parts[0].value(facts) + PAIR + self.parts[1].value(facts)

    def value(self, facts: Mapping[str, object]) -> str:
        pair = self.pair(facts)
        return pair if pair in self.levels else OTHER

    def encode(self, facts: Mapping[str, object]) -> list[float]:
        hit = self.value(facts)
        return [1.0 if level == hit else 0.0 for level in self.all_levels]

    def describe(self, facts: Mapping[str, object]) -> str:
        a, b = (part.describe(facts) for part in self.parts)
        return f"{a} and {b}" if self.value(facts) != OTHER else f"{a} and {b} (a rare pair)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "label": self.label,
            "parts": [part.to_dict() for part in self.parts],
            "levels": list(self.levels),
        }


Feature = Numeric | Categorical | FreeEmail | Keyword | Flag | Cross


def default_features() -> list[Feature]:
    """The feature set leadflow trains; categorical levels are empty until learned from training data."""
    features: list[Feature] = [
        Categorical("lead_source", "lead_source", "lead source"),
        Categorical("industry", "industry", "industry"),
        Categorical("country", "country", "country"),
        Keyword("title_seniority", "title", "title seniority"),
        FreeEmail("free_email", "email", "free email domain"),
        Numeric(
            "number_of_employees",
            "number_of_employees",
            "employees",
            transform="log1p",
            clip=(0.0, 1_000_000.0),
            missing_indicator=True,
        ),
        Numeric(
            "annual_revenue",
            "annual_revenue",
            "annual revenue",
            transform="log1p",
            clip=(0.0, 1e11),
            missing_indicator=True,
        ),
    ]
    for kind in KNOWN_ACTIVITY_TYPES:
        path = f"activity.{kind}.count"
        features.append(Numeric(path, path, ACTIVITY_LABELS[kind], transform="log1p", clip=(0.0, 100.0)))
    return features


# ---------------------------------------------------------------------------------------------------------------
# Reading a feature spec from JSON, with messages that say which feature and which key is wrong.


def feature_from_dict(data: object, where: str) -> Feature:
    """Build a feature from its JSON form; raise :class:`ModelError` naming ``where`` and the bad key."""
    if not isinstance(data, dict):
        msg = f"{where}: expected an object, got {type(data).__name__}"
        raise ModelError(msg)
    kind = data.get("kind")
    if kind not in FEATURE_KINDS:
        msg = f"{where}: unknown kind {kind!r}; expected one of {', '.join(FEATURE_KINDS)}"
        raise ModelError(msg)
    name = _text(data, "name", where)
    path = _text(data, "path", where)
    label = _text(data, "label", where)
    if kind == "numeric":
        transform = data.get("transform", "identity")
        if transform not in ("identity", "log1p"):
            msg = f"{where}: transform must be 'identity' or 'log1p', got {transform!r}"
            raise ModelError(msg)
        clip = data.get("clip")
        if (
            not (isinstance(clip, list) and len(clip) == 2 and all(_is_finite_number(c) for c in clip))
            or clip[0] > clip[1]
        ):
            msg = f"{where}: clip must be [lo, hi] with finite numbers lo <= hi, got {clip!r}"
            raise ModelError(msg)
        missing = data.get("missing", 0.0)
        if not _is_finite_number(missing):
            msg = f"{where}: missing must be a finite number, got {missing!r}"
            raise ModelError(msg)
        if transform == "log1p" and float(clip[0]) <= -1.0:
            msg = f"{where}: log1p needs clip lo > -1, got {clip[0]!r}"
            raise ModelError(msg)
        indicator = data.get("missing_indicator", False)
        if not isinstance(indicator, bool):
            msg = f"{where}: missing_indicator must be true or false, got {indicator!r}"
            raise ModelError(msg)
        bins = data.get("bins", [])
        if not (isinstance(bins, list) and all(_is_finite_number(b) for b in bins) and bins == sorted(set(bins))):
            msg = f"{where}: bins must be a list of strictly ascending finite numbers, got {bins!r:.120}"
            raise ModelError(msg)
        knots = data.get("knots", [])
        if not (
            isinstance(knots, list)
            and len(knots) != 1
            and all(_is_finite_number(k) for k in knots)
            and knots == sorted(set(knots))
        ):
            msg = f"{where}: knots must be a list of at least 2 strictly ascending finite numbers, got {knots!r:.120}"
            raise ModelError(msg)
        if knots and transform == "log1p" and float(knots[0]) <= -1.0:
            msg = f"{where}: log1p needs knots > -1, got {knots[0]!r}"
            raise ModelError(msg)
        scaled = [math.log1p(k) if transform == "log1p" else float(k) for k in knots]
        if scaled != sorted(set(scaled)):
            msg = f"{where}: knots must stay distinct after {transform}, got {knots!r:.120}"
            raise ModelError(msg)
        return Numeric(
            name,
            path,
            label,
            transform=transform,
            clip=(float(clip[0]), float(clip[1])),
            missing=float(missing),
            missing_indicator=indicator,
            bins=tuple(float(b) for b in bins),
            knots=tuple(float(k) for k in knots),
        )
    if kind == "categorical":
        levels = _texts(data, "levels", where)
        display = _texts(data, "display", where) if "display" in data else levels
        if len(display) != len(levels):
            msg = f"{where}: display has {len(display)} entries for {len(levels)} levels"
            raise ModelError(msg)
        bad = [level for level in levels if normalise_text(level) != level or level in (OTHER, MISSING)]
        if bad or len(set(levels)) != len(levels):
            msg = (
                f"{where}: levels must be distinct, stripped, lowercase and not (other)/(missing), "
                f"got {list(bad or levels)!r}"
            )
            raise ModelError(msg)
        placeholders = _texts(data, "missing_values", where) if "missing_values" in data else ()
        return Categorical(
            name,
            path,
            label,
            levels=levels,
            display=display,
            missing_values=frozenset(filter(None, map(normalise_text, placeholders))),
        )
    if kind == "flag":
        return Flag(name, path, label)
    if kind == "cross":
        return _cross_from_dict(data, name, path, label, where)
    if kind == "free_email":
        return FreeEmail(name, path, label, domains=frozenset(d.lower() for d in _texts(data, "domains", where)))
    pairs = data.get("keywords")
    if not (
        isinstance(pairs, list)
        and pairs
        and all(isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) and s for s in p) for p in pairs)
    ):
        msg = f"{where}: keywords must be a non-empty list of [keyword, level] pairs of strings, got {pairs!r}"
        raise ModelError(msg)
    default = _text(data, "default", where)
    return Keyword(name, path, label, keywords=tuple((k.lower(), v) for k, v in pairs), default=default)


def _cross_from_dict(data: Mapping[str, object], name: str, path: str, label: str, where: str) -> Cross:
    raw_parts = data.get("parts")
    if not isinstance(raw_parts, list) or len(raw_parts) != 2:
        msg = f"{where}: 'parts' must be a list of two features (categorical or flag), got {raw_parts!r:.120}"
        raise ModelError(msg)
    parts = [feature_from_dict(raw, f"{where}: parts[{i}]") for i, raw in enumerate(raw_parts)]
    first, second = parts
    if not isinstance(first, Categorical | Flag) or not isinstance(second, Categorical | Flag):
        msg = f"{where}: 'parts' must be categorical or flag features, got {[p.kind for p in parts]!r}"
        raise ModelError(msg)
    if first.path != path:
        msg = f"{where}: 'path' must be the first part's path {first.path!r}, got {path!r}"
        raise ModelError(msg)
    levels = _texts(data, "levels", where)
    known = {f"{a}{PAIR}{b}" for a in first.all_levels for b in second.all_levels}
    bad = [level for level in levels if level not in known]
    if bad or len(set(levels)) != len(levels):
        shown = list(bad or levels)
        msg = f"{where}: levels must be distinct pairs 'a{PAIR}b' of the parts' levels, got {shown!r:.200}"
        raise ModelError(msg)
    return Cross(name, label, (first, second), levels=levels)


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(data: Mapping[str, object], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        msg = f"{where}: {key!r} must be a non-empty string, got {value!r}"
        raise ModelError(msg)
    return value


def _texts(data: Mapping[str, object], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        msg = f"{where}: {key!r} must be a list of strings, got {value!r}"
        raise ModelError(msg)
    return tuple(value)


def columns_of(features: Sequence[Feature]) -> list[str]:
    """Every model column, in order."""
    return [column for feature in features for column in feature.columns]
