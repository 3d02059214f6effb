"""``leadflow backtest`` from the command line: exit codes, what it prints and writes, and its errors."""

from __future__ import annotations

import io
import re
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from tests.unit.tools.backtest.conftest import HAND_HISTORY, RULES, variant, write_lines
from worker.cli import main
from worker.exceptions import BacktestError
from worker.settings import Settings
from worker.tools.backtest import open_topic, run_backtest
from worker.tools.broker import free_port


def _backtest(files: dict[str, Path], *args: str) -> int:
    """``leadflow backtest`` of the hand-made history with the old rules, plus ``args``."""
    return main(["backtest", "--rules", str(files["old"]), "--events", str(files["events"]), *args])


def test_a_comparison_prints_the_tables_and_writes_json_and_html(
    hand_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outcomes = tmp_path / "won.csv"
    outcomes.write_text("lead_id,won\nL1,yes\nL2,no\nL4,yes\n", encoding="utf-8")
    out_json, out_html = tmp_path / "out.json", tmp_path / "out.html"
    code = main(
        [
            "backtest",
            "--rules", str(hand_files["new"]),
            "--against", str(hand_files["old"]),
            "--events", str(hand_files["events"]),
            "--outcomes", str(outcomes),
            "--json", str(out_json),
            "--html", str(out_html),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    for heading in ("overview", "leads by final status", "opportunities by stage", "points per lead", "precision"):
        assert heading in printed
    assert "leads whose outcome changed: 4" in printed
    assert "Open → Contacted" in printed
    assert "warm → hot" in printed
    assert "changed: page-views" in printed

    report = orjson.loads(out_json.read_bytes())
    assert [s["role"] for s in report["rulesets"]] == ["new", "old"]
    assert [s["converted"] for s in report["rulesets"]] == [2, 1]
    assert report["changed"]["total"] == 4
    assert [s["outcomes"]["recall"] for s in report["rulesets"]] == [0.5, 0.0]
    assert out_html.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_one_ruleset_alone_is_reported_without_a_change_column(
    hand_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "out.json"
    assert _backtest(hand_files, "--json", str(out_json)) == 0
    printed = capsys.readouterr().out
    assert "change" not in printed
    assert "outcome changed" not in printed
    assert orjson.loads(out_json.read_bytes())["changed"] is None


def test_a_missing_events_file_is_an_error_naming_it(
    hand_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backtest", "--rules", str(hand_files["old"]), "--events", "nowhere.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "events file 'nowhere.jsonl' does not exist" in err
    assert "JSON lines" in err
    assert "--topic" in err


def test_a_file_that_is_not_json_lines_is_refused_with_its_first_line(
    hand_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pretty = write_lines(tmp_path / "pretty.json", [b"[", b'  {"lead_id": "L1"},', b"]"])
    assert main(["backtest", "--rules", str(hand_files["old"]), "--events", str(pretty)]) == 2
    err = capsys.readouterr().err
    assert f"events file {str(pretty)!r} holds no valid lead event; line 1: not_json" in err
    assert "one lead event per line" in err


def test_an_invalid_ruleset_lists_its_problems_and_which_flag_gave_it(
    hand_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(variant(RULES, "field: points, op: gte, value: 50", "field: pionts, op: gte, value: 50"))
    args = [
        "backtest",
        "--rules",
        str(hand_files["new"]),
        "--against",
        str(broken),
        "--events",
        str(hand_files["events"]),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"--against {str(broken)!r} is not a valid ruleset" in err
    assert "'pionts'" in err
    assert "did you mean 'points'?" in err


def test_an_outcomes_file_without_an_outcome_column_names_the_columns_it_has(
    hand_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crm = tmp_path / "crm.csv"
    crm.write_text("Lead,Stage\nL1,Closed Won\n", encoding="utf-8")
    assert _backtest(hand_files, "--outcomes", str(crm)) == 2
    assert "found columns 'Lead', 'Stage'" in capsys.readouterr().err


@pytest.mark.parametrize("history", [[], ["--events", "a.jsonl", "--topic", "leads"]])
def test_exactly_one_history_is_required(
    hand_files: dict[str, Path], history: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["backtest", "--rules", str(hand_files["old"]), *history])
    assert caught.value.code == 2
    assert "--events" in capsys.readouterr().err


def test_an_unreachable_broker_is_an_error_naming_its_url() -> None:
    settings = Settings(broker_url=f"127.0.0.1:{free_port()}")
    with pytest.raises(BacktestError) as caught, open_topic(settings, "leads", connect_timeout=1.0):
        pass
    assert f"cannot reach the broker at {settings.broker_url!r} to read topic 'leads'" in str(caught.value)
    assert caught.value.source == settings.broker_url


def test_the_progress_bar_shows_events_read_of_the_total_and_the_rate(hand_files: dict[str, Path]) -> None:
    out, err = io.StringIO(), io.StringIO()
    run_backtest(
        settings=Settings(batch_size=2),
        rules=hand_files["new"],
        events=hand_files["events"],
        console=Console(file=out),
        progress_console=Console(file=err, force_terminal=True, width=120),
    )
    shown = err.getvalue()
    assert "replaying" in shown
    assert f"{len(HAND_HISTORY)}/{len(HAND_HISTORY)}" in shown
    assert re.search(r"\d events/s", shown)
    assert "leads by final status" in out.getvalue()
