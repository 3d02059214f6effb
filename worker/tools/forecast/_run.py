"""``leadflow forecast``: read the topics (or JSON-lines files), fold them, print the report, write JSON / HTML."""

from __future__ import annotations

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


def read_file(path: Path) -> list[Record]:
    """The records of a JSON-lines file (one record's value per line; blank lines skipped), in line order."""
    try:
        with path.open("rb") as handle:
            return [
                Record(None, line.rstrip(b"\r\n"), str(path), 0, number)
                for number, line in enumerate(handle, 1)
                if line.strip()
            ]
    except OSError as exc:
        msg = f"cannot read {str(path)!r}: {exc.strerror or exc}; expected JSON lines, one record per line"
        raise ForecastError(msg, source=str(path)) from exc


def read_topic(settings: Settings, topic: str) -> list[Record]:
    """Every record of ``topic`` up to its end offsets at the start, without a consumer group."""
    with open_topic(settings, topic, batch_size=5_000) as source:
        return [record for batch in source.batches for record in batch]


def _read(settings: Settings, files: ForecastFiles | None) -> tuple[dict[str, list[Record]], dict[str, str | None]]:
    if files is None:
        topics = {
            "opportunities": settings.topic_opportunities,
            "feedback": settings.topic_feedback,
            "decisions": settings.topic_decisions,
            "leads": settings.topic_leads,
        }
        records = {what: read_topic(settings, topic) for what, topic in topics.items()}
        return records, {what: f"topic {topic!r}" for what, topic in topics.items()}
    paths = {
        "opportunities": files.opportunities,
        "feedback": files.feedback,
        "decisions": files.decisions,
        "leads": files.leads,
    }
    records = {what: read_file(path) if path is not None else [] for what, path in paths.items()}
    return records, {what: None if path is None else f"file {str(path)!r}" for what, path in paths.items()}


def forecast_report(settings: Settings, files: ForecastFiles | None = None) -> dict[str, Any]:
    """Read, fold and add up: the report as plain data."""
    stages = load_ruleset(settings.rules or default_ruleset_path()).stages
    records, names = _read(settings, files)
    folded = fold_opportunities(records["opportunities"], records["feedback"], stages)
    if not folded.states:
        where = names["opportunities"] or "the opportunities"
        msg = (
            f"{where} holds no opportunity.created record ({len(records['opportunities']):,} records read); "
            "nothing to forecast: run the worker on some leads first, or point --broker / the files elsewhere"
        )
        raise ForecastError(msg, source=where)
    leads = count_leads(records["decisions"], records["leads"]) if records["decisions"] else None
    return build_forecast(folded, leads, names)


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
