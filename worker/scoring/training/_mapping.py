"""The column mapping of a CRM export: which column is the outcome, which become lead fields, which to leave out.

A mapping is YAML (see docs/MODEL.md, "Training on your CRM export"); :func:`load_mapping` validates it and raises
:class:`~worker.exceptions.TrainingError` naming the key or column and why, with a suggestion for a near miss.
:meth:`ColumnMapping.check_columns` then checks it against the export's header.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from worker.exceptions import TrainingError
from worker.lead.state import PROFILE_FIELDS

__all__ = [
    "COLUMN_KINDS",
    "DEFAULT_MISSING_VALUES",
    "LEAD_FIELDS",
    "Column",
    "ColumnMapping",
    "load_mapping",
    "parse_mapping",
]

ColumnKind = Literal["categorical", "numeric", "boolean", "yes_no", "free_email"]
COLUMN_KINDS: tuple[str, ...] = ("categorical", "numeric", "boolean", "yes_no", "free_email")

DEFAULT_MISSING_VALUES: tuple[str, ...] = ("", "select", "n/a", "na", "none", "null", "nan", "-", "--", "?", "unknown")
"""Placeholders that mean "not given" (compared after strip + lowercase); "Select" is a form left at its default."""

C_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
"""The values of C that ``model: {C: cv}`` (the default) chooses from by 5-fold cross-validation on training rows."""
DEFAULT_SPLITS = 10

_PERSONAL = ("first_name", "last_name", "phone")  # identify a person, predict nothing that may be used
_NUMERIC_FIELDS = ("annual_revenue", "number_of_employees")
LEAD_FIELDS: tuple[str, ...] = tuple(f for f in PROFILE_FIELDS if f not in ("status", *_PERSONAL))
"""Standard lead fields a column may map to (``status`` is the rules' output, names and phones are personal)."""

_TOP_KEYS = (
    "name",
    "outcome",
    "date",
    "id",
    "columns",
    "interactions",
    "exclude",
    "unmapped",
    "missing_values",
    "rare",
    "leakage",
    "evaluation",
    "calibration",
    "model",
)
_COLUMN_KEYS = ("field", "kind", "label", "bins", "knots", "transform")


@dataclass(frozen=True, slots=True)
class Column:
    """One mapped column: the fact it becomes (``lead_source``, ``custom.lead_origin``) and how it is read."""

    column: str
    field: str
    kind: ColumnKind | None  # None: inferred from the data
    label: str
    bins: int = 10  # numeric: quantile bins on top of the line (0: a straight line only)
    transform: Literal["auto", "identity", "log1p"] = "auto"
    knots: int = 0  # numeric: a curve through this many quantiles on top of the line (0: none)


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """A validated mapping; ``raw`` is the YAML as loaded (stored in the model's training metadata)."""

    name: str
    source: str
    outcome: str
    positive: frozenset[str]
    negative: frozenset[str] | None
    columns: tuple[Column, ...]
    exclude: frozenset[str]
    unmapped: Literal["error", "ignore"]
    missing_values: frozenset[str]
    date: str | None
    id: str | None
    min_share: float
    min_count: int
    max_auc: float
    drop_flagged: bool
    holdout: float
    seed: int
    calibration: Literal["platt", "none"]
    c: float  # the L2 strength when fixed (``model: {C: 0.3}``); with a grid, the fallback for code that wants one
    raw: MappingABC[str, Any]
    interactions: tuple[tuple[str, str], ...] = ()  # pairs of mapped text or yes/no columns, read together
    c_grid: tuple[float, ...] = ()  # ``model: {C: cv}`` (the default): C chosen by cross-validation from these
    splits: int = 10  # repeated stratified splits the hold-out figures are the mean and spread of

    def check_columns(self, header: Sequence[str], data: str) -> None:
        """Every column the mapping names exists in ``header``; every header column is accounted for."""
        present = set(header)
        problems: list[tuple[str, str | None, str]] = []
        named = [("outcome.column", self.outcome)]
        named += [(f"columns.{c.column!r}", c.column) for c in self.columns]
        named += [("exclude", c) for c in sorted(self.exclude)]
        named += [(key, c) for key, c in (("date", self.date), ("id", self.id)) if c is not None]
        for key, column in named:
            if column not in present:
                problems.append((f"{key}: column {column!r} is not in {data}{_hint(column, header)}", column, key))
        if self.unmapped == "error":
            known = {column for _, column in named}
            for column in header:
                if column and column not in known:
                    problems.append(
                        (
                            f"column {column!r} of {data} is neither mapped nor excluded: add it under 'columns' "
                            "or 'exclude' (or set 'unmapped: ignore')",
                            column,
                            "columns",
                        )
                    )
        _raise(problems, self.source)


def load_mapping(path: str | Path) -> ColumnMapping:
    """Read and validate a mapping YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"{path}: mapping file not found"
        raise TrainingError(msg, source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read the mapping: {exc}"
        raise TrainingError(msg, source=str(path)) from None
    return parse_mapping(text, source=str(path), default_name=path.parent.name if path.stem == "mapping" else path.stem)


def parse_mapping(text: str, *, source: str = "<mapping>", default_name: str = "model") -> ColumnMapping:
    """Validate a mapping given as YAML text; every problem is reported, each naming its key or column."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"{source}: not valid YAML: {exc}"
        raise TrainingError(msg, source=source) from None
    if not isinstance(data, dict):
        msg = f"{source}: a mapping is a YAML object with 'outcome' and 'columns', got {type(data).__name__}"
        raise TrainingError(msg, source=source)
    p = _Problems(source)
    for key in data:
        if key not in _TOP_KEYS:
            p.add(f"unknown key {key!r}{_hint(str(key), _TOP_KEYS)}; expected one of {', '.join(_TOP_KEYS)}", key=key)
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        p.add(f"'name' must be a non-empty string, got {name!r}", key="name")
        name = default_name
    outcome, positive, negative = _outcome(data.get("outcome"), p)
    columns = _columns(data.get("columns"), p)
    exclude = _strings(data.get("exclude", []), "exclude", p)
    interactions = _interactions(data.get("interactions", []), columns, p)
    for column in columns:
        if column.column in exclude:
            p.add(f"column {column.column!r} is both mapped and excluded", column=column.column, key="exclude")
    if outcome in {c.column for c in columns} | set(exclude):
        p.add(f"the outcome column {outcome!r} cannot also be mapped or excluded", column=outcome, key="outcome")
    unmapped = data.get("unmapped", "error")
    if unmapped not in ("error", "ignore"):
        p.add(f"'unmapped' must be 'error' or 'ignore', got {unmapped!r}", key="unmapped")
        unmapped = "error"
    missing_values = _strings(data.get("missing_values", list(DEFAULT_MISSING_VALUES)), "missing_values", p)
    date = _optional_column(data.get("date"), "date", p)
    id_column = _optional_column(data.get("id"), "id", p)
    rare = _section(data, "rare", {"min_share": 0.01, "min_count": 10}, p)
    leakage = _section(data, "leakage", {"max_auc": 0.85, "drop_flagged": True}, p)
    evaluation = _section(data, "evaluation", {"holdout": 0.3, "seed": 42, "splits": DEFAULT_SPLITS}, p)
    model = _section(data, "model", {"C": "cv"}, p)
    min_share = _number(rare, "rare.min_share", 0.0, 0.5, p)
    min_count = int(_number(rare, "rare.min_count", 1, 1e9, p))
    max_auc = _number(leakage, "leakage.max_auc", 0.5, 1.0, p)
    drop_flagged = leakage.get("drop_flagged")
    if not isinstance(drop_flagged, bool):
        p.add(f"'leakage.drop_flagged' must be true or false, got {drop_flagged!r}", key="leakage.drop_flagged")
    holdout = _number(evaluation, "evaluation.holdout", 0.05, 0.9, p)
    seed = evaluation.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        p.add(f"'evaluation.seed' must be an integer, got {seed!r}", key="evaluation.seed")
        seed = 0
    splits = int(_number(evaluation, "evaluation.splits", 1, 1000, p))
    c_grid: tuple[float, ...] = ()
    if model["C"] == "cv":
        c, c_grid = 1.0, C_GRID
    elif isinstance(model["C"], list) and len(model["C"]) > 1:
        c_grid = tuple(_number({"C": v}, "model.C", 1e-6, 1e6, p) for v in model["C"])
        c = c_grid[0]
    elif isinstance(model["C"], str | list):
        p.add(
            f"'model.C' must be a number, a list of numbers to choose from, or 'cv', got {model['C']!r}", key="model.C"
        )
        c = 1.0
    else:
        c = _number(model, "model.C", 1e-6, 1e6, p)
    calibration = data.get("calibration", "platt")
    if calibration not in ("platt", "none"):
        p.add(f"'calibration' must be 'platt' or 'none', got {calibration!r}", key="calibration")
    p.raise_if_any()
    return ColumnMapping(
        name=name.strip(),
        source=source,
        outcome=outcome,
        positive=positive,
        negative=negative,
        columns=tuple(columns),
        exclude=frozenset(exclude),
        unmapped=unmapped,
        missing_values=frozenset(v.strip().lower() for v in missing_values),
        date=date,
        id=id_column,
        min_share=min_share,
        min_count=min_count,
        max_auc=max_auc,
        drop_flagged=bool(drop_flagged),
        holdout=holdout,
        seed=seed,
        calibration=calibration,
        c=c,
        raw=data,
        interactions=interactions,
        c_grid=c_grid,
        splits=splits,
    )


def _interactions(raw: object, columns: Sequence[Column], p: _Problems) -> tuple[tuple[str, str], ...]:
    """``[[column, column], ...]``: each a pair of different mapped columns that are not numbers or emails."""
    if not isinstance(raw, list):
        p.add(f"'interactions' must be a list of [column, column] pairs, got {raw!r:.80}", key="interactions")
        return ()
    kinds = {c.column: c.kind for c in columns}
    out: list[tuple[str, str]] = []
    for i, pair in enumerate(raw):
        where = f"interactions[{i}]"
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(c, str) for c in pair)):
            p.add(f"{where}: expected a pair [column, column], got {pair!r:.80}", key=where)
            continue
        if pair[0] == pair[1]:
            p.add(f"{where}: a column cannot interact with itself, got {pair!r}", column=pair[0], key=where)
            continue
        for column in pair:
            if column not in kinds:
                p.add(f"{where}: {column!r} is not a mapped column{_hint(column, kinds)}", column=column, key=where)
            elif kinds[column] in ("numeric", "free_email"):
                p.add(
                    f"{where}: {column!r} is {kinds[column]}; interactions read text or yes/no columns",
                    column=column,
                    key=where,
                )
        out.append((pair[0], pair[1]))
    return tuple(out)


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str, str | None, str | None]] = []

    def add(self, message: str, *, column: str | None = None, key: str | None = None) -> None:
        self.items.append((message, column, key))

    def raise_if_any(self) -> None:
        _raise(self.items, self.source)


def _raise(problems: Sequence[tuple[str, str | None, str | None]], source: str) -> None:
    if not problems:
        return
    message, column, key = problems[0]
    if len(problems) == 1:
        msg = f"{source}: {message}"
    else:
        msg = f"{source}: {len(problems)} problems:\n" + "\n".join(f"  {m}" for m, _, _ in problems)
    raise TrainingError(msg, source=source, column=column, key=key)


def _hint(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower().replace(" ", "").replace("_", ""): c for c in choices}
        hit = lowered.get(name.lower().replace(" ", "").replace("_", ""))
        close = [hit] if hit else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _outcome(raw: object, p: _Problems) -> tuple[str, frozenset[str], frozenset[str] | None]:
    if not isinstance(raw, dict):
        p.add(
            f"'outcome' must be an object with 'column' and 'positive' (e.g. {{column: Converted, positive: [1]}}), "
            f"got {raw!r}",
            key="outcome",
        )
        return "", frozenset(), None
    for key in raw:
        if key not in ("column", "positive", "negative"):
            p.add(f"unknown key 'outcome.{key}'; expected column, positive, negative", key=f"outcome.{key}")
    column = raw.get("column")
    if not isinstance(column, str) or not column:
        p.add(f"'outcome.column' must name the outcome column, got {column!r}", key="outcome.column")
        column = ""
    positive = _values(raw.get("positive"), "outcome.positive", p)
    if not positive:
        p.add("'outcome.positive' must list the values that mean converted, e.g. [1, 'Won']", key="outcome.positive")
    negative = _values(raw.get("negative"), "outcome.negative", p) if "negative" in raw else None
    if negative is not None and positive & negative:
        p.add(f"'outcome' values {sorted(positive & negative)!r} are both positive and negative", key="outcome")
    return column, positive, negative


def _values(raw: object, key: str, p: _Problems) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(v, str | int | float | bool) for v in raw):
        p.add(f"{key!r} must be a list of values, got {raw!r}", key=key)
        return frozenset()
    return frozenset(_scalar_text(v) for v in raw)


def _scalar_text(value: str | int | float | bool) -> str:
    """How a YAML value compares with a CSV cell: 1, 1.0 and "1" all read "1"; true reads "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _columns(raw: object, p: _Problems) -> list[Column]:
    if not isinstance(raw, dict) or not raw:
        p.add(
            "'columns' must map each column to a lead field, e.g. {'Lead Source': lead_source, "
            f"'Lead Origin': {{field: custom.lead_origin, kind: categorical}}}}, got {raw!r:.80}",
            key="columns",
        )
        return []
    out: list[Column] = []
    targets: dict[str, str] = {}
    for column, spec in raw.items():
        column = str(column)
        where = f"columns.{column!r}"
        entry = {"field": spec} if isinstance(spec, str) else spec
        if not isinstance(entry, dict):
            p.add(f"{where}: expected a field name or an object with 'field', got {spec!r}", column=column, key=where)
            continue
        for key in entry:
            if key not in _COLUMN_KEYS:
                p.add(
                    f"{where}: unknown key {key!r}{_hint(str(key), _COLUMN_KEYS)}; expected {', '.join(_COLUMN_KEYS)}",
                    column=column,
                    key=f"{where}.{key}",
                )
        target = entry.get("field")
        kind = entry.get("kind")
        if not _valid_field(target, column, where, p):
            continue
        assert isinstance(target, str)  # noqa: S101  # checked by _valid_field; narrows for mypy
        if target in targets:
            p.add(
                f"{where}: field {target!r} is already the target of column {targets[target]!r}",
                column=column,
                key=f"{where}.field",
            )
        targets[target] = column
        if kind is not None and kind not in COLUMN_KINDS:
            p.add(
                f"{where}: kind {kind!r} is not one of {', '.join(COLUMN_KINDS)}{_hint(str(kind), COLUMN_KINDS)}",
                column=column,
                key=f"{where}.kind",
            )
            kind = None
        kind = _kind_for_field(target, kind, column, where, p)
        label = entry.get("label", column)
        if not isinstance(label, str) or not label.strip():
            p.add(f"{where}: 'label' must be a non-empty string, got {label!r}", column=column, key=f"{where}.label")
            label = column
        bins = entry.get("bins", 10)
        if not isinstance(bins, int) or isinstance(bins, bool) or not 0 <= bins <= 50 or bins == 1:
            p.add(f"{where}: 'bins' must be 0 (a line) or 2-50, got {bins!r}", column=column, key=f"{where}.bins")
            bins = 0
        knots = entry.get("knots", 0)
        if not isinstance(knots, int) or isinstance(knots, bool) or not (knots == 0 or 3 <= knots <= 50):
            p.add(f"{where}: 'knots' must be 0 (none) or 3-50, got {knots!r}", column=column, key=f"{where}.knots")
            knots = 0
        transform = entry.get("transform", "auto")
        if transform not in ("auto", "identity", "log1p"):
            p.add(
                f"{where}: 'transform' must be auto, identity or log1p, got {transform!r}",
                column=column,
                key=f"{where}.transform",
            )
            transform = "auto"
        out.append(Column(column, target, kind, label.strip(), bins, transform, knots))
    return out


def _valid_field(target: object, column: str, where: str, p: _Problems) -> bool:
    if not isinstance(target, str) or not target:
        p.add(f"{where}: 'field' must name a lead field or custom.<name>, got {target!r}", column=column, key=where)
        return False
    if target.startswith("custom."):
        name = target.removeprefix("custom.")
        if not 1 <= len(name) <= 100:
            p.add(f"{where}: custom field names are 1-100 characters, got {target!r}", column=column, key=where)
            return False
        return True
    if target in _PERSONAL:
        p.add(
            f"{where}: {target!r} is personal data and is not used as a model feature; exclude the column",
            column=column,
            key=where,
        )
        return False
    if target not in LEAD_FIELDS:
        hint = _hint(target, LEAD_FIELDS)
        p.add(
            f"{where}: {target!r} is not a lead field{hint}; use one of {', '.join(LEAD_FIELDS)} "
            f"or custom.<name> for your own",
            column=column,
            key=where,
        )
        return False
    return True


def _kind_for_field(target: str, kind: object, column: str, where: str, p: _Problems) -> ColumnKind | None:
    """Standard fields have a fixed type: numbers stay numbers, email is read for its domain, the rest is text."""
    if target.startswith("custom."):
        return kind  # type: ignore[return-value]  # checked against COLUMN_KINDS by the caller
    expected: ColumnKind = (
        "numeric" if target in _NUMERIC_FIELDS else "free_email" if target == "email" else "categorical"
    )
    if kind is not None and kind != expected:
        p.add(
            f"{where}: the lead field {target!r} is {expected}, not {kind}; map the column to custom.<name> to "
            f"read it as {kind}",
            column=column,
            key=f"{where}.kind",
        )
    return expected


def _strings(raw: object, key: str, p: _Problems) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(v, str | int | float) for v in raw):
        p.add(f"{key!r} must be a list of column names or values, got {raw!r:.80}", key=key)
        return []
    return [str(v) for v in raw]


def _optional_column(raw: object, key: str, p: _Problems) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw:
        p.add(f"{key!r} must name a column, got {raw!r}", key=key)
        return None
    return raw


def _section(data: MappingABC[str, Any], key: str, defaults: dict[str, Any], p: _Problems) -> dict[str, Any]:
    raw = data.get(key, {})
    if not isinstance(raw, dict):
        p.add(f"{key!r} must be an object with {', '.join(defaults)}, got {raw!r}", key=key)
        return defaults
    for sub in raw:
        if sub not in defaults:
            p.add(f"unknown key '{key}.{sub}'{_hint(str(sub), defaults)}; expected {', '.join(defaults)}", key=key)
    return {**defaults, **raw}


def _number(section: MappingABC[str, Any], key: str, lo: float, hi: float, p: _Problems) -> float:
    value = section.get(key.rpartition(".")[2])
    if not isinstance(value, int | float) or isinstance(value, bool) or not lo <= value <= hi:
        p.add(f"{key!r} must be a number in [{lo:g}, {hi:g}], got {value!r}", key=key)
        return lo
    return float(value)
