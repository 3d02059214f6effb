"""``leadflow rules check|test|explain`` through ``worker.cli.main``: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.tools.rules.helpers import leaf, q, ruleset_text, scoring_rule
from worker.cli import main

CLEAN = ruleset_text(
    [
        scoring_rule(leaf("number_of_employees", "gte", 1000), "big", 20),
        scoring_rule(leaf("activity.demo_request.count", "gte", 1), "demo", 40),
    ],
    [
        q("unsubscribed", leaf("activity.unsubscribe.count", "gte", 1), "Unqualified"),
        q("hot", {"all": [leaf("points", "gte", 60), leaf("score", "gte", 0.5)]}, "Qualified", convert=True),
    ],
)
WARNS = ruleset_text([scoring_rule(leaf("score", "gt", 1))])
INVALID = ruleset_text([scoring_rule(leaf("nmber_of_employees", "gt", 1))])


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["rules", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, text in (("clean.yaml", CLEAN), ("warns.yaml", WARNS), ("invalid.yaml", INVALID)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_check_exit_codes(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "check", "clean.yaml")
    assert code == 0
    assert out.splitlines()[-1] == "clean.yaml: valid; 0 warnings, 1 info (ok)"
    assert _cli(capsys, "check", "clean.yaml", "--strict")[0] == 1
    code, out, _ = _cli(capsys, "check", "warns.yaml")
    assert code == 1
    assert out.splitlines() == [
        "warns.yaml:3: warning: rule 's': can never match, so it never adds its points: `score gt 1` is never true "
        "(the score is a probability, from 0 to 1) [never-matches]",
        "warns.yaml: valid; 1 warning, 0 info (FAILED)",
    ]
    code, out, _ = _cli(capsys, "check", "invalid.yaml")
    assert code == 2
    assert out.splitlines() == [
        "ruleset has 1 problem:",
        "  invalid.yaml:5: rule 's': scoring[0].when.field: unknown field 'nmber_of_employees' "
        "(did you mean 'number_of_employees'?)",
    ]


def test_check_json(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "check", "warns.yaml", "--format", "json")
    data = json.loads(out)
    assert code == data["exit_code"] == 1
    assert [f["code"] for f in data["findings"]] == ["never-matches"]
    code, out, _ = _cli(capsys, "check", "invalid.yaml", "--format", "json")
    data = json.loads(out)
    assert (code, data["valid"], data["exit_code"]) == (2, False, 2)
    assert data["problems"][0]["suggestion"] == "number_of_employees"


def test_check_with_a_sample(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = {
        "event_id": "e1",
        "event_type": "lead.activity",
        "occurred_at": "2026-01-01T00:00:00Z",
        "lead_id": "L1",
        "activity": {"type": "demo_request"},
    }
    (files / "sample.jsonl").write_text(json.dumps(event) + "\n", encoding="utf-8")
    code, out, _ = _cli(capsys, "check", "clean.yaml", "--sample", "sample.jsonl")
    assert code == 1
    assert [line.rsplit(" ", 1)[-1] for line in out.splitlines()[:-1]] == [
        "[field-never-set]",
        "[field-never-set]",
        "[overlap]",
    ]


def test_check_a_missing_file_is_an_error(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "check", "nope.yaml")
    assert code == 2
    assert out == ""
    assert err.startswith("leadflow: error: cannot read the ruleset file 'nope.yaml': No such file or directory")
    code, _, err = _cli(capsys, "check", "clean.yaml", "--sample", "nope.jsonl")
    assert code == 2
    assert "cannot read the sample 'nope.jsonl'" in err


CASES = """
cases:
  - name: a demo from a big company converts
    given: {profile: {number_of_employees: 2000}}
    event: {activity: demo_request}
    score: 0.9
    expect: {status: Qualified, action: converted, points: 60}
"""


def test_test_exit_codes(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (files / "clean.tests.yaml").write_text(CASES, encoding="utf-8")
    code, out, _ = _cli(capsys, "test", "clean.yaml")
    assert code == 0
    assert out.splitlines() == [
        "PASS  a demo from a big company converts  (clean.tests.yaml:3)",
        "1 passed, 0 failed",
    ]
    (files / "failing.yaml").write_text(CASES.replace("points: 60", "points: 61"), encoding="utf-8")
    code, out, _ = _cli(capsys, "test", "clean.yaml", "--cases", "failing.yaml")
    assert code == 1
    assert out.splitlines()[0] == "FAIL  a demo from a big company converts  (failing.yaml:3)"
    (files / "bad.yaml").write_text(CASES.replace("score: 0.9", "score: high"), encoding="utf-8")
    code, out, _ = _cli(capsys, "test", "clean.yaml", "--cases", "bad.yaml")
    assert code == 2
    assert out.splitlines()[1] == (
        "  bad.yaml:6: cases[0].score: 'score' needs a number from 0 to 1 (the model's probability), got 'high'"
    )
    code, out, _ = _cli(capsys, "test", "invalid.yaml")
    assert code == 2
    assert out.startswith("ruleset has 1 problem:")
    code, _, err = _cli(capsys, "test", "warns.yaml")
    assert code == 2
    assert "cannot read the test case file 'warns.tests.yaml'" in err


def test_test_without_arguments_runs_the_default_cases(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "test")
    assert code == 0
    assert out.splitlines()[-1].endswith(" passed, 0 failed")
