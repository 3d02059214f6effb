"""Known outcomes (a CSV of leads and whether they converted or were won), and how "qualified" compares to them."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from worker.exceptions import BacktestError

__all__ = ["Confusion", "Outcomes", "confusion", "load_outcomes", "parse_outcomes"]

ID_COLUMNS = ("lead_id", "leadid", "lead", "id")
OUTCOME_COLUMNS = ("converted", "won", "is_won", "is_converted", "closed_won", "outcome", "result")
_TRUE = frozenset({"yes", "y", "true", "t", "1", "won", "converted"})
_FALSE = frozenset({"no", "n", "false", "f", "0", "lost", "not converted"})


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Each lead's known outcome (True: converted or won), read from ``path``; ``blank`` rows had no value."""

    path: str
    id_column: str
    outcome_column: str
    converted: Mapping[str, bool]
    blank: int = 0


@dataclass(frozen=True, slots=True)
class Confusion:
    """Leadflow's "converted" against the known outcome, over the leads that have both."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float | None:
        """Of the leads leadflow converted, the share that did convert (None when it converted none)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """Of the leads that did convert, the share leadflow converted (None when none did)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None


def _normalise(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _pick(header: list[str], names: tuple[str, ...]) -> int | None:
    normalised = [_normalise(h) for h in header]
    for name in names:
        if name in normalised:
            return normalised.index(name)
    return None


def parse_outcomes(text: str, path: str = "<outcomes>") -> Outcomes:
    """Read a CSV with a header: a lead id column and a converted/won column (yes/no, true/false, 1/0).

    A lead listed on several rows counts as converted if any row says so; a blank value is an unknown outcome.
    """
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    header = next(rows, None)
    if not header:
        msg = f"outcomes file {path!r} is empty; expected a CSV with a header, e.g. 'lead_id,converted'"
        raise BacktestError(msg, source=path)
    id_at, outcome_at = _pick(header, ID_COLUMNS), _pick(header, OUTCOME_COLUMNS)
    if id_at is None or outcome_at is None:
        what = "lead id" if id_at is None else "outcome"
        names = ID_COLUMNS if id_at is None else OUTCOME_COLUMNS
        msg = (
            f"outcomes file {path!r}: cannot tell which column is the {what}; found columns "
            f"{', '.join(repr(h) for h in header)}; name it one of {', '.join(names)}"
        )
        raise BacktestError(msg, source=path)
    converted: dict[str, bool] = {}
    blank = 0
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        line = rows.line_num
        if len(row) <= max(id_at, outcome_at):
            msg = f"outcomes file {path!r} line {line}: {len(row)} columns, expected {len(header)} as in the header"
            raise BacktestError(msg, source=path)
        lead_id, value = row[id_at].strip(), row[outcome_at].strip().lower()
        if not lead_id:
            msg = f"outcomes file {path!r} line {line}: the lead id column {header[id_at]!r} is empty"
            raise BacktestError(msg, source=path)
        if not value:
            blank += 1
            continue
        if value not in _TRUE and value not in _FALSE:
            msg = (
                f"outcomes file {path!r} line {line}: {header[outcome_at]!r} is {row[outcome_at]!r}; expected "
                "yes/no, true/false, 1/0 or won/lost"
            )
            raise BacktestError(msg, source=path)
        converted[lead_id] = converted.get(lead_id, False) or value in _TRUE
    return Outcomes(path, header[id_at], header[outcome_at], converted, blank)


def load_outcomes(path: Path) -> Outcomes:
    """Read the outcomes CSV at ``path`` (UTF-8, a byte-order mark allowed)."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        msg = f"outcomes file {name!r} does not exist; expected a CSV with a header, e.g. 'lead_id,converted'"
        raise BacktestError(msg, source=name) from exc
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read outcomes file {name!r}: {exc}; expected a UTF-8 CSV"
        raise BacktestError(msg, source=name) from exc
    return parse_outcomes(text, name)


def confusion(predicted: Mapping[str, bool], actual: Mapping[str, bool]) -> Confusion:
    """Compare ``predicted`` (leadflow converted the lead) to ``actual`` over the leads present in both."""
    tp = fp = fn = tn = 0
    for lead_id, said in predicted.items():
        truth = actual.get(lead_id)
        if truth is None:
            continue
        if said:
            tp, fp = (tp + 1, fp) if truth else (tp, fp + 1)
        else:
            fn, tn = (fn + 1, tn) if truth else (fn, tn + 1)
    return Confusion(tp, fp, fn, tn)
