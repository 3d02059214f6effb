"""The examples of docs/BACKTEST.md run as written and print what the page shows."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from worker.cli import main
from worker.rules import default_ruleset_path

DOC = Path(__file__).parents[4] / "docs" / "BACKTEST.md"


def test_backtest_md_example_prints_what_the_page_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DOC.read_text(encoding="utf-8")
    (script,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    (commands,) = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    shown = text.split("It prints", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    copy, sed, backtest = commands.strip().splitlines()
    assert copy == "cp worker/rules/default.yaml default.yaml"
    old, new = re.fullmatch(r"sed 's/(.*)/(.*)/' default.yaml > hot60.yaml", sed).groups()  # type: ignore[union-attr]

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    exec(compile(script, str(DOC), "exec"), {})  # noqa: S102  # our own documentation
    shutil.copy(default_ruleset_path(), "default.yaml")
    rules = Path("default.yaml").read_text(encoding="utf-8")
    assert rules.count(old) == 1, "the sed command must change exactly one line of the default ruleset"
    Path("hot60.yaml").write_text(rules.replace(old, new), encoding="utf-8")
    assert main(shlex.split(backtest)[1:]) == 0

    printed = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
    assert printed == shown.rstrip("\n").splitlines(), "docs/BACKTEST.md: re-run the example and paste its output"
    assert Path("report.html").is_file()
    assert Path("report.json").is_file()


def test_backtest_md_routing_example_prints_the_per_member_load_the_page_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DOC.read_text(encoding="utf-8")
    (script,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    (routing,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    (commands,) = re.findall(r"```shell\n(.*?)```", text, flags=re.DOTALL)
    shown = text.split("the routing ones:", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    grep, sed, backtest = commands.strip().splitlines()
    assert grep == "grep -v 'queue: Inbound AEs' default.yaml | cat - routing.yaml > routed.yaml"
    old, new = re.fullmatch(r"sed 's/(.*)/(.*)/' routed.yaml > even.yaml", sed).groups()  # type: ignore[union-attr]

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    exec(compile(script, str(DOC), "exec"), {})  # noqa: S102  # our own documentation
    rules = default_ruleset_path().read_text(encoding="utf-8")
    kept = "".join(line for line in rules.splitlines(keepends=True) if "queue: Inbound AEs" not in line)
    routed = kept + routing
    assert routed.count(old) == 1, "the sed command must change exactly one line of routed.yaml"
    Path("routed.yaml").write_text(routed, encoding="utf-8")
    Path("even.yaml").write_text(routed.replace(old, new), encoding="utf-8")
    assert main(shlex.split(backtest)[1:]) == 0

    printed = [line.rstrip() for line in capsys.readouterr().out.splitlines()]
    expected = shown.rstrip("\n").splitlines()
    start = printed.index(expected[0])
    assert printed[start : start + len(expected)] == expected, "docs/BACKTEST.md: re-run the routing example"
    assert Path("routing.json").is_file()
