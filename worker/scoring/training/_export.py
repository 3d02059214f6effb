"""A CRM export read as text cells, and each row turned into the facts the worker would build for that lead.

Each row becomes the ``lead`` of a ``lead.upserted`` event (placeholders such as "Select" left out, numbers as
numbers, ``custom.<name>`` under ``custom``) and goes through the worker's own event code (:mod:`._lead`): a
producer that sends the same fields gets the same facts, hence the same score.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.exceptions import EventError, TrainingError
from worker.scoring._features import flag_level
from worker.scoring._lead import REFERENCE_TIME, facts_from_fields
from worker.scoring.training._mapping import Column, ColumnMapping
from worker.scoring.training._progress import Bar

__all__ = ["Prepared", "Table", "prepare", "read_table"]

logger = logging.getLogger(__name__)

_YES_NO = frozenset({"yes", "no", "y", "n", "true", "false"})


@dataclass(frozen=True, slots=True)
class Table:
    """An export as text cells: the header, one dict per row, and the file's SHA-256."""

    path: Path
    header: tuple[str, ...]
    rows: list[dict[str, str]]
    sha256: str


def read_table(path: str | Path) -> Table:
    """Read a CSV (UTF-8, header row) or a Parquet file into text cells; raise TrainingError naming the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        msg = f"{path}: data file not found"
        raise TrainingError(msg, source=str(path)) from None
    except OSError as exc:
        msg = f"{path}: cannot read the data file: {exc}"
        raise TrainingError(msg, source=str(path)) from None
    digest = hashlib.sha256(raw).hexdigest()
    if path.suffix.lower() in (".parquet", ".pq"):
        header, rows = _read_parquet(path)
        return Table(path, header, rows, digest)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"{path}: not UTF-8 text ({exc}); export the CSV as UTF-8"
        raise TrainingError(msg, source=str(path)) from None
    reader = csv.reader(text.splitlines())
    try:
        header = tuple(h.strip() for h in next(reader))
    except StopIteration:
        msg = f"{path}: the file is empty; expected a header row and one row per lead"
        raise TrainingError(msg, source=str(path)) from None
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            msg = f"{path}:{line}: {len(cells)} cells for {len(header)} columns in the header"
            raise TrainingError(msg, source=str(path))
        row = dict(zip(header, cells, strict=True))
        row[_LINE] = str(line)
        rows.append(row)
    return Table(path, header, rows, digest)


_LINE = "\x00line"  # where a row came from, for messages; not a column


def _read_parquet(path: Path) -> tuple[tuple[str, ...], list[dict[str, str]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        msg = f"{path}: reading Parquet needs pyarrow ('pip install pyarrow'), or export the data as CSV"
        raise TrainingError(msg, source=str(path)) from None
    table = pq.read_table(path)
    header = tuple(str(name) for name in table.column_names)
    records = table.to_pylist()
    rows = []
    for i, record in enumerate(records, start=1):
        row = {str(k): "" if v is None else str(v) for k, v in record.items()}
        row[_LINE] = f"row {i}"
        rows.append(row)
    return header, rows


@dataclass(frozen=True, slots=True)
class Prepared:
    facts: list[dict[str, object]]
    labels: list[int]
    times: list[float] | None
    lines: list[str]  # where each row came from (CSV line number)
    columns: tuple[Column, ...]  # with kinds resolved
    skipped: int


def prepare(table: Table, mapping: ColumnMapping, bar: Bar) -> Prepared:
    """Cells → outcome, typed lead fields → facts (through the worker's event code)."""
    data = str(table.path)
    missing = mapping.missing_values
    columns = tuple(_resolve_kind(c, table.rows, missing, data) for c in mapping.columns)
    facts: list[dict[str, object]] = []
    labels: list[int] = []
    times: list[float] | None = [] if mapping.date is not None else None
    lines: list[str] = []
    skipped = 0
    step = max(1, len(table.rows) // 50)
    for i, row in enumerate(table.rows):
        where = f"{data}:{row[_LINE]}" if row[_LINE].isdigit() else f"{data} {row[_LINE]}"
        label = _outcome(row[mapping.outcome].strip().lower(), mapping, where)
        if label is None:
            skipped += 1
            continue
        fields: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for column in columns:
            value = _cell(row[column.column], column, missing, where)
            if value is None:
                continue
            if column.field.startswith("custom."):
                custom[column.field.removeprefix("custom.")] = value
            else:
                fields[column.field] = value
        if custom:
            fields["custom"] = custom
        when = REFERENCE_TIME
        if mapping.date is not None and times is not None:
            when = _date(row[mapping.date], mapping.date, where)
            times.append(when.timestamp())
        lead_id = (row[mapping.id].strip() if mapping.id else "") or f"row-{row[_LINE]}"
        try:
            facts.append(facts_from_fields(fields, lead_id[:200], when))
        except EventError as exc:
            msg = f"{where}: this row is not a valid lead once mapped: {exc}"
            raise TrainingError(msg, source=data) from None
        labels.append(label)
        lines.append(row[_LINE])
        if i % step == 0:
            bar("reading", i, len(table.rows))
    bar("reading", len(table.rows), len(table.rows))
    positives = sum(labels)
    if min(positives, len(labels) - positives) < 10:
        seen = sorted({r[mapping.outcome].strip() for r in table.rows})[:10]
        msg = (
            f"{data}: outcome column {mapping.outcome!r} gives {positives} converted and {len(labels) - positives} "
            f"not converted leads; training needs at least 10 of each (positive values {sorted(mapping.positive)!r}, "
            f"seen {seen!r})"
        )
        raise TrainingError(msg, source=data, column=mapping.outcome, key="outcome.positive")
    return Prepared(facts, labels, times, lines, columns, skipped)


def _outcome(cell: str, mapping: ColumnMapping, where: str) -> int | None:
    if cell in mapping.positive:
        return 1
    if cell in mapping.missing_values:
        return None
    if mapping.negative is None or cell in mapping.negative:
        return 0
    msg = (
        f"{where}: outcome {mapping.outcome!r} is {cell!r}, neither positive {sorted(mapping.positive)!r} "
        f"nor negative {sorted(mapping.negative)!r}"
    )
    raise TrainingError(msg, source=mapping.source, column=mapping.outcome, key="outcome")


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", "")) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _resolve_kind(column: Column, rows: Sequence[Mapping[str, str]], missing: frozenset[str], data: str) -> Column:
    """A column without ``kind``: numeric if every given cell is a number, yes_no if every one is yes/no, else text."""
    if column.kind is not None:
        return column
    given = [c for r in rows if (c := r[column.column].strip()) and c.lower() not in missing]
    if given and all(_number(c) is not None for c in given):
        kind = "numeric"
    elif given and all(c.lower() in _YES_NO for c in given):
        kind = "yes_no"
    else:
        kind = "categorical"
    logger.info("%s: column %r read as %s", data, column.column, kind)
    return dataclasses.replace(column, kind=kind)  # type: ignore[arg-type]  # one of COLUMN_KINDS


def _cell(raw: str, column: Column, missing: frozenset[str], where: str) -> object:
    text = raw.strip()
    if text.lower() in missing:
        return None
    if column.kind == "numeric":
        value = _number(text)
        if value is None:
            msg = (
                f"{where}: column {column.column!r} is numeric but holds {text!r}; add it to 'missing_values' "
                f"if it means 'not given', or map the column with kind: categorical"
            )
            raise TrainingError(msg, source=where, column=column.column, key="kind")
        if column.field == "number_of_employees" or value.is_integer():
            return int(value)
        return value
    if column.kind in ("yes_no", "boolean") and flag_level(text) not in ("yes", "no"):
        msg = f"{where}: column {column.column!r} is {column.kind} but holds {text!r}; expected yes/no, true/false, 1/0"
        raise TrainingError(msg, source=where, column=column.column, key="kind")
    return text[:255]


def _date(raw: str, column: str, where: str) -> dt.datetime:
    text = raw.strip()
    for parse in (dt.datetime.fromisoformat, lambda t: dt.datetime.strptime(t, "%d/%m/%Y")):  # noqa: DTZ007
        try:
            value = parse(text)
        except ValueError:
            continue
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    msg = f"{where}: date column {column!r} holds {text!r}; expected an ISO date such as 2024-03-01 or 2024-03-01T10:00"
    raise TrainingError(msg, source=where, column=column, key="date")
