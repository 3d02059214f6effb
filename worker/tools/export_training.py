"""``leadflow export-training``: the facts the worker decided on, joined with what sales made of them.

For every lead that reached an outcome, one row: the lead's facts at the event the worker converted it on (the
``event_id`` of its ``opportunity.created``) with the opportunity's outcome from the feedback (won 1, lost 0); a
lead that never converted and whose last event is before the cutoff is a negative too, with its facts at that last
event (``--converted-only`` leaves those out). Leads with an open opportunity, or still active since the cutoff,
have no outcome yet and are skipped.

The decisions do not carry the facts (only the top factors), so the facts are rebuilt from the ``leads`` topic
with the worker's own event code (``apply_event`` → ``build_facts``, the same dedupe window): the same events give
the same facts. The columns are the live model's features (the model's mapping, when it was trained with
``train --data``, with its settings), written so that ``train --data`` reads each cell back as the fact the worker
read. Each row's live score (from its decision, or its opportunity) is compared with the model's score of the
exported facts: the summary says how many were reproduced.

:class:`Join` is plain code over records (no Kafka); :func:`run_export` reads the topics or files and writes.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import yaml

from worker.exceptions import BacktestError, EventError, ExportError
from worker.lead.events import LeadErased, LeadMatched
from worker.lead.parse import parse_event
from worker.lead.state import LeadState, apply_event, build_facts, event_digest, new_state, seen
from worker.opportunities import CREATED_TYPES, FEEDBACK_TYPES, apply_feedback, parse_feedback, state_from_created
from worker.rules import StageDef
from worker.scoring import Model
from worker.scoring.training import LEAD_FIELDS, parse_mapping
from worker.settings import Settings

__all__ = [
    "META_COLUMNS",
    "Export",
    "ExportColumn",
    "Inputs",
    "Join",
    "Row",
    "Summary",
    "export_columns",
    "run_export",
    "write_export",
]

META_COLUMNS = ("lead_id", "won", "outcome", "facts_at", "opportunity_id", "live_score", "model_version")
"""Columns besides the features: ``won`` is the outcome train reads; the others are for people (excluded)."""
_TOLERANCE = 1e-9  # a reproduced live score: equal up to this
_KIND = {"numeric": "numeric", "categorical": "categorical", "keyword": "categorical", "flag": "yes_no"}
_BREAKS = str.maketrans(dict.fromkeys("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))
"""What ``str.splitlines`` breaks a line at: train reads a CSV one row per line, so these become spaces."""


@dataclass(frozen=True, slots=True)
class ExportColumn:
    """One feature column: its CSV header, the fact path it holds, and its entry in the mapping."""

    name: str
    path: str
    kind: str  # numeric, categorical, yes_no, free_email
    spec: dict[str, Any]
    feature: Any  # the model's feature that reads it


def export_columns(model: Model) -> tuple[list[ExportColumn], dict[str, Any], list[str]]:
    """The model's features as columns, the mapping's other settings, and the features no column can hold.

    A model trained with ``train --data`` keeps its mapping in its training metadata: each feature keeps its
    original column name and settings (bins, knots, label...), and the mapping's rare/leakage/evaluation/model/
    calibration settings and interactions are kept, so a retrain uses the same ones. Another model (the synthetic
    one) gets a column per feature that reads a lead field or ``custom.<name>``; features that read engagement
    (``activity.*``) or other derived facts cannot be a CSV column and are listed.
    """
    training = model.training or {}
    raw = training.get("mapping") if isinstance(training.get("mapping"), dict) else None
    column_of = {f.get("feature"): f.get("column") for f in training.get("features", []) if isinstance(f, dict)}
    columns: list[ExportColumn] = []
    skipped: list[str] = []
    seen_paths: set[str] = set()
    for feature in model.features:
        if feature.kind == "cross":
            continue  # its parts are features of their own; the pair is kept as an interaction
        path = feature.path
        kind = "free_email" if feature.kind == "free_email" else _KIND.get(feature.kind)
        readable = path.startswith("custom.") or path in LEAD_FIELDS
        if kind is None or not readable:
            skipped.append(feature.name)
            continue
        if path in seen_paths:
            continue
        seen_paths.add(path)
        original = column_of.get(feature.name) if raw is not None else None
        entry = raw.get("columns", {}).get(original) if raw is not None and original is not None else None
        spec: dict[str, Any] = {"field": entry} if isinstance(entry, str) else dict(entry or {})
        spec.setdefault("field", path)
        if spec["field"] != path:  # a metadata that does not match its features: trust the features
            spec = {"field": path}
        spec["kind"] = kind
        if "label" not in spec and original is None and feature.kind != "keyword":
            spec["label"] = feature.label  # a keyword feature's label names its levels, not the raw text
        columns.append(ExportColumn(original or path, path, kind, spec, feature))
    settings: dict[str, Any] = {"name": (raw or {}).get("name", model.name)}
    for key in ("missing_values", "rare", "leakage", "evaluation", "calibration", "model"):
        if raw is not None and key in raw:
            settings[key] = raw[key]
    names = {c.name for c in columns}
    pairs = raw.get("interactions", []) if raw is not None else []
    kept = [pair for pair in pairs if isinstance(pair, list) and all(c in names for c in pair)]
    if kept:
        settings["interactions"] = kept
    if raw is not None and raw.get("date") is not None:
        settings["date"] = "facts_at"
    taken = names.intersection(META_COLUMNS)
    if taken:
        msg = (
            f"the model's column {sorted(taken)[0]!r} has the name of a column export-training adds "
            f"({', '.join(META_COLUMNS)}); rename it in the mapping and retrain, then export"
        )
        raise ExportError(msg, source=str(sorted(taken)[0]))
    return columns, settings, skipped


@dataclass(slots=True)
class _Seen:
    """A lead's facts after one of its events, reduced to the paths the model reads."""

    event_id: str
    at: float
    facts: dict[str, object]


@dataclass(frozen=True, slots=True)
class Row:
    lead_id: str
    won: int
    outcome: str  # won, lost, not_converted
    at: float
    opportunity_id: str | None
    facts: dict[str, object]
    live_score: float | None
    model_version: str | None
    reproduced: bool | None  # None: decided by another model version, or no live score found


@dataclass(slots=True)
class Summary:
    lead_events: int = 0
    leads: int = 0
    opportunities: int = 0
    feedback: int = 0
    won: int = 0
    lost: int = 0
    not_converted: int = 0
    open_opportunities: int = 0
    active_leads: int = 0
    left_out_not_converted: int = 0
    facts_not_found: int = 0
    duplicates: int = 0
    unknown_feedback: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    checked: int = 0
    reproduced: int = 0
    other_models: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    broken_cells: int = 0
    cutoff: float | None = None


@dataclass(frozen=True, slots=True)
class Export:
    rows: list[Row]
    summary: Summary


class Join:
    """Feed the opportunities and the feedback first, then the lead events, then (optionally) the decisions."""

    def __init__(
        self, model: Model, stages: Mapping[str, StageDef], *, dedupe_window: int = 64, max_event_bytes: int = 1 << 20
    ) -> None:
        self.model = model
        self.stages = stages
        self.window = dedupe_window
        self.max_event_bytes = max_event_bytes
        self.paths = sorted({p for f in model.features for p in getattr(f, "paths", (f.path,))})
        self.summary = Summary()
        self._opportunities: dict[str, dict[str, Any]] = {}  # by opportunity id: its state
        self._converted: dict[str, tuple[str, str]] = {}  # lead id -> (opportunity id, converting event id)
        self._states: dict[str, LeadState] = {}
        self._last: dict[str, _Seen] = {}
        self._at_conversion: dict[str, _Seen] = {}
        self._live: dict[tuple[str, str], tuple[float, str]] = {}  # (lead, event) -> (score, model version)

    def opportunity(self, value: bytes | None) -> None:
        if value is None:  # a tombstone: its lead was erased (the lead's lead.erased event forgets the rest)
            return
        try:
            record = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            self.summary.bad["opportunities"] += 1
            return
        if not isinstance(record, dict) or record.get("event_type") not in CREATED_TYPES:
            self.summary.bad["opportunities"] += 1
            return
        opportunity_id, lead_id = record.get("opportunity_id"), record.get("lead_id")
        if opportunity_id in self._opportunities or not isinstance(opportunity_id, str) or not isinstance(lead_id, str):
            return  # sent again, or reassigned: the conversion is the first
        try:
            self._opportunities[opportunity_id] = state_from_created(record)
        except (KeyError, TypeError, ValueError):
            self.summary.bad["opportunities"] += 1
            return
        self.summary.opportunities += 1
        self._converted[lead_id] = (opportunity_id, str(record.get("event_id")))
        if isinstance(record.get("score"), float | int) and isinstance(record.get("event_id"), str):
            self._live[(lead_id, record["event_id"])] = (float(record["score"]), str(record.get("model_version")))

    def feedback(self, value: bytes | None) -> None:
        """``opportunity.updated`` / ``.closed`` folded in the order read (``opportunity.accepted`` is skipped)."""
        try:
            kind = orjson.loads(value or b"").get("event_type")
        except (orjson.JSONDecodeError, AttributeError):
            kind = None
        if kind == "opportunity.accepted":
            return
        if kind not in FEEDBACK_TYPES:
            self.summary.bad["feedback"] += 1
            return
        try:
            event = parse_feedback(value)
            state = self._opportunities.get(event.opportunity_id)
            if state is None:
                self.summary.unknown_feedback += 1
                return
            apply_feedback(state, event, self.stages)
        except EventError:
            self.summary.bad["feedback"] += 1
            return
        self.summary.feedback += 1

    def lead_event(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the leads topic, applied as the worker applies it (a repeated event id changes nothing)."""
        try:
            event = parse_event(key, value, self.max_event_bytes)
        except EventError:
            self.summary.bad["leads"] += 1  # the worker sent it to the dead letters: no decision, no facts
            return
        lead_id = event.lead_id
        if isinstance(event, LeadErased):  # the lead is forgotten: no row from what it did before
            for kept in (self._states, self._last, self._at_conversion):
                kept.pop(lead_id, None)
            return
        if isinstance(event, LeadMatched):  # the match step's answer: changes none of the lead's facts
            return
        now = event.occurred_at.timestamp()
        state = self._states.get(lead_id)
        if state is None:
            state = self._states[lead_id] = new_state(lead_id, now)
        digest = event_digest(event.event_id)
        if seen(state, digest):
            self.summary.duplicates += 1
            return
        changed = apply_event(state, event, digest, now, self.window)
        facts = build_facts(state, now, event, changed)
        snapshot = _Seen(event.event_id, now, {p: facts.get(p) for p in self.paths})
        self.summary.lead_events += 1
        self._last[lead_id] = snapshot
        converted = self._converted.get(lead_id)
        if converted is not None and converted[1] == event.event_id and lead_id not in self._at_conversion:
            self._at_conversion[lead_id] = snapshot

    def decision(self, value: bytes | None) -> None:
        try:
            record = orjson.loads(value or b"")
            if isinstance(record, dict) and record.get("event_type") == "lead.erased":
                return  # an erasure's audit record, no decision (the lead's event said it all)
            key = (record["lead_id"], record["event_id"])
            score, version = float(record["score"]), str(record["model_version"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.summary.bad["decisions"] += 1
            return
        if key in self._live or self._wanted(*key):
            self._live[key] = (score, version)

    def _wanted(self, lead_id: str, event_id: str) -> bool:
        last = self._last.get(lead_id)
        return last is not None and last.event_id == event_id and lead_id not in self._converted

    def finish(self, cutoff: float | None = None, *, converted_only: bool = False, stale_days: float = 30.0) -> Export:
        """The rows, in the order of the events their facts are at (then lead id), and the counts.

        ``cutoff`` (epoch seconds; default: ``stale_days`` before the newest lead event) decides which leads that
        never converted count as negatives: those whose last event is before it.
        """
        s = self.summary
        s.leads = len(self._states)
        if cutoff is None and self._last:
            cutoff = max(seen.at for seen in self._last.values()) - stale_days * 86_400.0
        s.cutoff = cutoff
        rows: list[Row] = []
        for lead_id, (opportunity_id, _) in self._converted.items():
            outcome = self._opportunities[opportunity_id]["outcome"]
            if outcome == "open":
                s.open_opportunities += 1
                continue
            snapshot = self._at_conversion.get(lead_id)
            if snapshot is None:
                s.facts_not_found += 1
                continue
            rows.append(self._row(lead_id, outcome, snapshot, opportunity_id))
        for lead_id, snapshot in self._last.items():
            if lead_id in self._converted:
                continue
            if cutoff is None or snapshot.at >= cutoff:
                s.active_leads += 1
            elif converted_only:
                s.left_out_not_converted += 1
            else:
                rows.append(self._row(lead_id, "not_converted", snapshot, None))
        rows.sort(key=lambda r: (r.at, r.lead_id))
        for row in rows:
            s.won += row.outcome == "won"
            s.lost += row.outcome == "lost"
            s.not_converted += row.outcome == "not_converted"
        return Export(rows, s)

    def _row(self, lead_id: str, outcome: str, snapshot: _Seen, opportunity_id: str | None) -> Row:
        live = self._live.get((lead_id, snapshot.event_id))
        reproduced: bool | None = None
        if live is not None and live[1] == self.model.version:
            score = self.model.score(snapshot.facts).probability
            reproduced = abs(score - live[0]) <= _TOLERANCE
            self.summary.checked += 1
            self.summary.reproduced += reproduced
            if not reproduced and len(self.summary.mismatches) < 5:
                self.summary.mismatches.append(f"{lead_id}: live {live[0]:.6f}, from the exported facts {score:.6f}")
        elif live is not None:
            self.summary.other_models[live[1]] += 1
        return Row(
            lead_id=lead_id,
            won=int(outcome == "won"),
            outcome=outcome,
            at=snapshot.at,
            opportunity_id=opportunity_id,
            facts=snapshot.facts,
            live_score=None if live is None else live[0],
            model_version=None if live is None else live[1],
            reproduced=reproduced,
        )


def _cell(value: object, column: ExportColumn, summary: Summary) -> str:
    """The text ``train --data`` reads back as the fact the worker read (the same level, number or yes/no)."""
    if column.kind == "numeric":
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return repr(value)  # the shortest text that reads back as the same float
        return ""  # not a number: the model read it as missing, and so does train
    if column.kind == "yes_no":
        level = column.feature.value({column.path: value})  # as the model read it: yes, no or missing
        return str(level) if level in ("yes", "no") else ""
    if value is None or isinstance(value, dict | list):
        return ""
    text = value if isinstance(value, str) else str(value)
    clean = text.translate(_BREAKS)
    summary.broken_cells += clean != text
    return clean


def write_export(export: Export, columns: list[ExportColumn], settings: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``training.csv`` and ``mapping.yaml`` into ``out``; the mapping is checked as ``train`` checks it."""
    data, mapping_path = out / "training.csv", out / "mapping.yaml"
    mapping: dict[str, Any] = {
        "name": settings["name"],
        "outcome": {"column": "won", "positive": [1], "negative": [0]},
        "id": "lead_id",
        **({"date": settings["date"]} if "date" in settings else {}),
        "columns": {c.name: c.spec for c in columns},
        "exclude": [c for c in META_COLUMNS if c not in ("lead_id", "won", settings.get("date"))],
        "unmapped": "error",
        **{k: v for k, v in settings.items() if k not in ("name", "date")},
    }
    text = yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None)
    header = (
        "# Written by 'leadflow export-training': one row per lead that reached an outcome, its facts as the worker\n"
        "# decided on them. won: 1 won, 0 lost or never converted before the cutoff (see docs/MODEL.md).\n"
        f"#   leadflow train --data {data} --mapping {mapping_path} --out model/\n"
    )
    parse_mapping(text, source=str(mapping_path))  # what train will say about it, said now
    try:
        out.mkdir(parents=True, exist_ok=True)
        with data.open("w", newline="", encoding="utf-8") as handle:
            _write_rows(handle, export, columns)
        mapping_path.write_text(header + text, encoding="utf-8")
    except OSError as exc:
        msg = f"cannot write the export into {str(out)!r}: {exc.strerror or exc}"
        raise ExportError(msg, source=str(out)) from exc
    return data, mapping_path


def _write_rows(handle: IO[str], export: Export, columns: list[ExportColumn]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow([*META_COLUMNS, *(c.name for c in columns)])
    for row in export.rows:
        meta = [
            row.lead_id,
            str(row.won),
            row.outcome,
            _iso(row.at),
            row.opportunity_id or "",
            "" if row.live_score is None else repr(row.live_score),
            row.model_version or "",
        ]
        writer.writerow([*meta, *(_cell(row.facts.get(c.path), c, export.summary) for c in columns)])


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat()


# ---------------------------------------------------------------------------------------------------- the shell


@dataclass(frozen=True, slots=True)
class Inputs:
    """JSON-lines files, or None: read the topics named in the settings."""

    leads: Path | None = None
    opportunities: Path | None = None
    feedback: Path | None = None
    decisions: Path | None = None


def run_export(
    settings: Settings,
    *,
    out: Path,
    inputs: Inputs,
    model_path: Path | None = None,
    rules: Path | None = None,
    cutoff: dt.datetime | None = None,
    converted_only: bool = False,
    stale_days: float = 30.0,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> Export:
    """Read, join, write, print the summary."""
    import sys

    from rich.console import Console

    from worker.rules import default_ruleset_path, load_ruleset
    from worker.scoring import default_model_path, load_model

    out_stream = stdout or sys.stdout
    model = load_model(model_path or settings.model or default_model_path())
    ruleset = load_ruleset(rules or settings.rules or default_ruleset_path())
    files = (inputs.leads, inputs.opportunities, inputs.feedback)
    if any(f is not None for f in files) and not all(f is not None for f in files):
        msg = (
            "give all three files (--leads, --opportunities, --feedback; --decisions is optional), "
            "or none to read the topics"
        )
        raise ExportError(msg, source="arguments")
    join = Join(model, ruleset.stages, dedupe_window=settings.dedupe_window, max_event_bytes=settings.max_event_bytes)
    steps: list[tuple[str, Path | str, Any]] = [
        ("opportunities", inputs.opportunities or settings.topic_opportunities, join.opportunity),
        ("feedback", inputs.feedback or settings.topic_feedback, join.feedback),
        ("leads", inputs.leads or settings.topic_leads, lambda r: join.lead_event(r.key, r.value)),
    ]
    if inputs.leads is None or inputs.decisions is not None:
        steps.append(("decisions", inputs.decisions or settings.topic_decisions, join.decision))
    console = Console(file=stderr or sys.stderr)
    with ExitStack() as stack:
        try:
            topics = inputs.leads is None
            sources = [(name, stack.enter_context(_open(settings, name, where, topics))) for name, where, _ in steps]
        except BacktestError as exc:  # the same readers as backtest: their messages name the topic or file
            raise ExportError(str(exc), source=exc.source) from exc
        _read(sources, [step[2] for step in steps], console)
    when = None if cutoff is None else (cutoff if cutoff.tzinfo else cutoff.replace(tzinfo=dt.UTC)).timestamp()
    export = join.finish(when, converted_only=converted_only, stale_days=stale_days)
    columns, mapping_settings, skipped = export_columns(model)
    data, mapping = write_export(export, columns, mapping_settings, out)
    print(_summary(export, model, data, mapping, columns, skipped, converted_only), file=out_stream)
    return export


def _open(settings: Settings, name: str, where: Path | str, topic: bool) -> Any:
    from worker.tools.backtest import open_events_file, open_topic

    if topic:
        return open_topic(settings, str(where), settings.batch_size)
    if not Path(where).is_file():
        what = "is a directory" if Path(where).is_dir() else "does not exist"
        msg = f"{name} file {str(where)!r} {what}; expected JSON lines, one {_RECORD[name]} per line, as on its topic"
        raise ExportError(msg, source=str(where))
    return open_events_file(Path(where), settings.batch_size)


_RECORD = {
    "leads": "lead event",
    "opportunities": "opportunity.created record",
    "feedback": "opportunity feedback event",
    "decisions": "decision",
}


def _read(sources: list[tuple[str, Any]], handlers: list[Any], console: Any) -> None:
    """Each source in turn, with one progress bar over all of them (records read of the records there are)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("reading {task.fields[what]:<13}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("export", total=sum(s.total for _, s in sources), what="")
        for (name, source), handle in zip(sources, handlers, strict=True):
            progress.update(task, what=name)
            for batch in _batches(source):
                for record in batch:
                    handle(record if name == "leads" else record.value)
                progress.update(task, advance=len(batch), total=sum(s.total for _, s in sources))


def _batches(source: Any) -> Iterator[Any]:
    try:
        yield from source.batches
    except BacktestError as exc:
        raise ExportError(str(exc), source=exc.source) from exc


def _summary(
    export: Export,
    model: Model,
    data: Path,
    mapping: Path,
    columns: list[ExportColumn],
    skipped: list[str],
    converted_only: bool,
) -> str:
    s = export.summary
    negatives = s.lost + s.not_converted
    cutoff = "" if s.cutoff is None else _iso(s.cutoff)[:19].replace("T", " ")
    lines = [
        f"read {s.lead_events:,} lead events of {s.leads:,} leads, {s.opportunities:,} opportunities, "
        f"{s.feedback:,} feedback events",
        f"wrote {len(export.rows):,} rows to {data} and the mapping {mapping} ({len(columns)} feature columns)",
        f"  positives (won)          {s.won:>7,}",
        f"  negatives                {negatives:>7,}  (lost {s.lost:,}; never converted, last event before "
        f"{cutoff or 'the cutoff'}: {s.not_converted:,})",
        f"  skipped, no outcome yet  {s.open_opportunities + s.active_leads:>7,}  (open opportunities "
        f"{s.open_opportunities:,}; not converted, active since the cutoff {s.active_leads:,})",
    ]
    if converted_only:
        lines.append(f"  left out (--converted-only): {s.left_out_not_converted:,} leads never converted")
    if s.facts_not_found:
        lines.append(
            f"  skipped, facts not found {s.facts_not_found:>7,}  (the converting event is not on the leads topic)"
        )
    if s.checked:
        lines.append(
            f"live scores reproduced from the exported facts: {s.reproduced:,} of {s.checked:,} (model {model.version})"
        )
    lines += [f"  differs: {m}" for m in s.mismatches]
    if s.other_models:
        others = ", ".join(f"{v} ({n:,})" for v, n in s.other_models.most_common())
        lines.append(f"  decided by other model versions, not checked: {others}")
    if skipped:
        lines.append(f"features no column can hold (train --data reads lead fields): {', '.join(skipped)}")
    if s.bad:
        lines.append("records not read: " + ", ".join(f"{k} {n:,}" for k, n in sorted(s.bad.items())))
    if s.duplicates or s.unknown_feedback or s.broken_cells:
        lines.append(
            f"repeated lead events {s.duplicates:,}; feedback for unknown opportunities {s.unknown_feedback:,}; "
            f"line breaks in text cells made spaces {s.broken_cells:,}"
        )
    return "\n".join(lines)
