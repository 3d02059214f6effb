"""``leadflow forecast``: read the topics (or JSON-lines files), fold them, print the report, write JSON / HTML."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console

from worker.batch import Record
from worker.exceptions import ForecastError
from worker.rules import default_ruleset_path, load_ruleset
from worker.settings import Settings
from worker.tools.backtest import open_topic
from worker.tools.forecast._fold import count_leads, fold_opportunities
from worker.tools.forecast._html import write_html
from worker.tools.forecast._report import build_forecast
from worker.tools.forecast._terminal import print_forecast

__all__ = ["ForecastFiles", "forecast_report", "read_file", "read_topic", "run_forecast"]


@dataclass(frozen=True)
class ForecastFiles:
    """JSON-lines files in place of the topics (decisions and leads are optional: without them, no lead counts)."""

    opportunities: Path
    feedback: Path | None = None
    decisions: Path | None = None
    leads: Path | None = None


def read_file(path: Path) -> Iterator[Record]:
    """The records of a JSON-lines file (one record's value per line; blank lines skipped), in line order."""
    number = 0
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):  # number names the line on a read error
                if line.strip():
                    yield Record(None, line.rstrip(b"\r\n"), str(path), 0, number)
    except OSError as exc:
        where = f" (line {number + 1})" if number else ""
        msg = f"cannot read {str(path)!r}{where}: {exc.strerror or exc}; expected JSON lines, one record per line"
        raise ForecastError(msg, source=str(path)) from exc


def read_topic(settings: Settings, topic: str) -> Iterator[Record]:
    """Every record of ``topic`` up to its end offsets at the start, without a consumer group, as it is read."""
    with open_topic(settings, topic, batch_size=5_000) as source:
        for batch in source.batches:
            yield from batch


def _read(settings: Settings, files: ForecastFiles | None) -> tuple[dict[str, Iterable[Record]], dict[str, str | None]]:
    """The four inputs as streams of records (decisions and leads, the big ones, are never held in memory)."""
    if files is None:
        topics = {
            "opportunities": settings.topic_opportunities,
            "feedback": settings.topic_feedback,
            "decisions": settings.topic_decisions,
            "leads": settings.topic_leads,
        }
        streams: dict[str, Iterable[Record]] = {what: read_topic(settings, topic) for what, topic in topics.items()}
        return streams, {what: f"topic {topic!r}" for what, topic in topics.items()}
    paths = {
        "opportunities": files.opportunities,
        "feedback": files.feedback,
        "decisions": files.decisions,
        "leads": files.leads,
    }
    files_read: dict[str, Iterable[Record]] = {
        what: read_file(path) for what, path in paths.items() if path is not None
    }
    return files_read, {what: None if path is None else f"file {str(path)!r}" for what, path in paths.items()}


def forecast_report(settings: Settings, files: ForecastFiles | None = None) -> dict[str, Any]:
    """Read, fold and add up: the report as plain data."""
    stages = load_ruleset(settings.rules or default_ruleset_path()).stages
    records, names = _read(settings, files)
    # the feedback first: every opportunity it names was converted before it, so it is on the opportunities topic
    # when that is read, even while the worker keeps converting
    feedback = list(records.get("feedback", ()))
    opportunities = list(records["opportunities"])
    folded = fold_opportunities(opportunities, feedback, stages)
    if not folded.states:
        where = names["opportunities"] or "the opportunities"
        msg = (
            f"{where} holds no opportunity.created record ({len(opportunities):,} records read); "
            "nothing to forecast: run the worker on some leads first, or point --broker / the files elsewhere"
        )
        raise ForecastError(msg, source=where)
    leads = None
    if "decisions" in records:
        leads = count_leads(records["decisions"], records.get("leads", ()))
    return build_forecast(folded, leads, names, list(stages))


def run_forecast(
    settings: Settings,
    files: ForecastFiles | None = None,
    *,
    as_json: bool = False,
    html: Path | None = None,
    out: IO[str] | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """``leadflow forecast``: the tables (or, with ``as_json``, the figures as JSON) and the HTML report."""
    report = forecast_report(settings, files)
    console = console or Console()
    if as_json:
        text = orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
        print(text, file=out)
    else:
        print_forecast(console, report)
    if html is not None:
        write_html(report, html)
        (Console(stderr=True) if as_json else console).print(f"wrote {html}", markup=False)
    return report
