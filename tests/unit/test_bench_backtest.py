"""The backtest benchmark's pure parts: the history it writes, and how it compares the engines' reports."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_backtest import Measured, chunk_sizes, compare, count_lines, differences, headline, history, write_history
from bench_e2e import load_events

from worker.lead.parse import parse_event
from worker.rules import default_ruleset_path
from worker.settings import Settings
from worker.tools.backtest import run_backtest


def test_the_history_is_n_valid_events_with_unique_ids_and_replays_under_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_history(path, 600, leads=6, chunk=6)  # 6 leads hold about 230 events: more than two passes
    lines = path.read_bytes().splitlines()
    assert len(lines) == count_lines(path) == 600
    events = [parse_event(orjson.loads(line)["lead_id"].encode(), line) for line in lines]
    ids = [event.event_id for event in events]
    assert len(set(ids)) == 600
    assert len({event.lead_id for event in events}) == 6
    replayed = [i for i in ids if "-r" in i]
    assert replayed, "600 events of 6 leads must go round the leads again"
    assert ids[-1] == f"{ids[-1].rsplit('-r', 1)[0]}-r599"  # named by the line it is written on
    assert count_lines(tmp_path / "absent.jsonl") == 0


def test_one_chunk_is_bench_e2e_s_events() -> None:
    assert list(history(300, leads=8)) == [value for _, value in load_events(300, 8)]


def test_chunks_add_leads_of_their_own() -> None:
    assert chunk_sizes(7, 3) == [3, 3, 1]
    assert chunk_sizes(6, 3) == [3, 3]
    assert chunk_sizes(2, 5) == [2]
    with pytest.raises(ValueError, match="leads >= 1"):
        chunk_sizes(0, 5)
    events = [orjson.loads(line) for line in history(2_000, leads=7, chunk=3)]
    leads = {event["lead_id"] for event in events}
    assert len(leads) == 7
    assert sum(lead.endswith("-c1") for lead in leads) == 3
    assert sum(lead.endswith("-c2") for lead in leads) == 1
    assert len({event["event_id"] for event in events}) == len(events)
    first = [event["event_id"] for event in events if event["lead_id"].endswith("-c2")]
    assert all(event_id.split("-r")[0].endswith("-c2") for event_id in first)


def test_differences_name_the_paths_that_differ() -> None:
    a: dict[str, Any] = {"x": 1, "y": {"z": [1, 2], "w": "a"}}
    assert differences(a, a) == []
    assert differences(a, {"x": 1, "y": {"z": [1, 3], "w": "a"}}) == [".y.z[1]"]
    assert differences(a, {"x": 2, "y": {"z": [1], "w": "a"}, "v": 0}) == [".v", ".x", ".y.z"]


def _report(engine: str, events: Path, tmp_path: Path, batch_size: int) -> dict[str, Any]:
    out = tmp_path / f"{engine}-{batch_size}.json"
    run_backtest(
        settings=Settings(engine=engine, batch_size=batch_size),  # type: ignore[arg-type]
        rules=default_ruleset_path(),
        events=events,
        json_out=out,
        console=Console(file=io.StringIO()),
        progress_console=Console(quiet=True),
    )
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    return report


def test_both_engines_and_batch_sizes_report_the_same_backtest(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_history(events, 1_500, leads=30, chunk=20)
    reports = {
        (engine, size): _report(engine, events, tmp_path, size)
        for engine in ("reference", "columnar")
        for size in (97, 1_000)
    }
    first = reports["reference", 97]
    assert headline(first)["decided"] == 1_500
    assert headline(first)["converted"] > 0, "some leads must convert for the comparison to mean anything"
    runs = [Measured(e, s, 1.0, 1, r) for (e, s), r in reports.items()]
    said = compare(runs)
    assert said.count("the same report") == 3, said
    changed = {**first, "rulesets": [{**first["rulesets"][0], "converted": -1}]}
    assert "DIFFERENT reports at .rulesets[0].converted" in compare([runs[0], Measured("x", 1, 1.0, 1, changed)])
