"""``leadflow backtest``: load the rulesets, replay the source with a progress bar, report and write files."""

from __future__ import annotations

import dataclasses
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from worker.columnar import BatchEngine, batch_engine
from worker.core import Engine
from worker.exceptions import BacktestError, RulesetError
from worker.rules import Ruleset, load_ruleset
from worker.scoring import default_model_path, load_model
from worker.settings import Settings
from worker.tools.backtest._html import write_html
from worker.tools.backtest._outcomes import Outcomes, load_outcomes
from worker.tools.backtest._replay import Run, replay
from worker.tools.backtest._report import build_report
from worker.tools.backtest._rulediff import diff_rules
from worker.tools.backtest._sources import EventSource, open_events_file, open_topic
from worker.tools.backtest._terminal import print_report

__all__ = ["run_backtest"]


class _RateColumn(ProgressColumn):
    """Events per second so far."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s", style="progress.data.speed")


def _ruleset(path: Path, flag: str) -> Ruleset:
    try:
        return load_ruleset(path)
    except RulesetError as exc:
        msg = f"{flag} {str(path)!r} is not a valid ruleset; fix it and run again: {exc}"
        raise BacktestError(msg, source=str(path)) from exc


def _source(settings: Settings, events: Path | None, topic: str | None) -> AbstractContextManager[EventSource]:
    if (events is None) == (topic is None):
        msg = "give the history to replay: either --events FILE or --topic TOPIC"
        raise BacktestError(msg, source="")
    if events is not None:
        return open_events_file(events, settings.batch_size)
    return open_topic(settings, topic or "", settings.batch_size)


def _check_read(source: EventSource, run: Run) -> None:
    """A history with no valid event is not worth a report: say what is wrong with it instead."""
    if run.valid_events:
        return
    if not run.bad_examples:
        msg = f"{source.name} holds no events; nothing to replay"
        raise BacktestError(msg, source=source.name)
    first = run.bad_examples[0]
    expected = (
        "JSON lines, one lead event per line, as 'leadflow produce' takes them"
        if source.kind == "file"
        else "lead events as the worker reads them (schemas/README.md)"
    )
    msg = f"{source.name} holds no valid lead event; {first.where}: {first.reason}: {first.error}; expected {expected}"
    raise BacktestError(msg, source=source.name)


def _replay_with_progress(
    source: EventSource, engines: dict[str, Engine], console: Console, decide: BatchEngine, cache_size: int
) -> dict[str, Run]:
    columns = (
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("replay", total=source.total)

        def advance(n: int) -> None:
            progress.update(task, advance=n, total=source.total)  # a topic's total may be corrected while read

        return replay(engines, source.batches, source.where, advance, decide, cache_size)


def run_backtest(
    *,
    settings: Settings,
    rules: Path,
    against: Path | None = None,
    events: Path | None = None,
    topic: str | None = None,
    model: Path | None = None,
    outcomes: Path | None = None,
    html: Path | None = None,
    json_out: Path | None = None,
    console: Console | None = None,
    progress_console: Console | None = None,
) -> dict[str, Any]:
    """Replay a history through ``rules`` (and ``against``), print the report, write ``--json``/``--html``."""
    console = console or Console()
    paths = {"new": rules} if against is None else {"new": rules, "old": against}
    rulesets = {role: _ruleset(path, "--rules" if role == "new" else "--against") for role, path in paths.items()}
    scoring = load_model(model or settings.model or default_model_path())
    known: Outcomes | None = load_outcomes(outcomes) if outcomes is not None else None
    engines = {
        role: Engine(
            # each lead on its own: a history has no match step to answer duplicate claims (docs/RULES.md)
            ruleset=dataclasses.replace(ruleset, duplicates=None),
            model=scoring,
            dedupe_window=settings.dedupe_window,
            top_factors=settings.top_factors,
            max_event_bytes=settings.max_event_bytes,
        )
        for role, ruleset in rulesets.items()
    }
    with _source(settings, events, topic) as source:
        bar = progress_console or Console(stderr=True)
        decide = batch_engine(settings.engine)
        runs = _replay_with_progress(source, engines, bar, decide, settings.state_cache_size)
        records = source.total
    _check_read(source, runs["new"])
    report = build_report(
        source={"kind": source.kind, "name": source.name, "records": records},
        model={"path": str(model or settings.model or default_model_path()), "version": scoring.version},
        runs=runs,
        paths={role: str(path) for role, path in paths.items()},
        rule_changes=diff_rules(rules, against) if against is not None else None,
        outcomes=known,
    )
    print_report(report, console)
    if json_out is not None:
        _write(json_out, orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
        console.print(f"wrote {json_out}", markup=False)
    if html is not None:
        write_html(report, html)
        console.print(f"wrote {html}", markup=False)
    return report


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        msg = f"cannot write {str(path)!r}: {exc.strerror or exc}"
        raise BacktestError(msg, source=str(path)) from exc
