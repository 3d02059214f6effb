"""docs/RULES-TOOLING.md: every console example prints exactly what the page shows, given the page's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.tools.rules.docs import DOC, Example, examples, run

EXAMPLES = examples(DOC.read_text(encoding="utf-8"))


def test_the_page_shows_every_command_and_exit_code() -> None:
    commands = " ".join(e.command for e in EXAMPLES)
    for needed in ("rules check", "--sample", "--strict", "rules test", "--cases", "rules explain", ".jsonl"):
        assert needed in commands
    codes = {line for e in EXAMPLES for line in e.shown.splitlines() if line.startswith("exit ")}
    assert codes == {"exit 0", "exit 1", "exit 2"}


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.command for e in EXAMPLES])
def test_console_example(example: Example, tmp_path: Path) -> None:
    assert run(example, tmp_path) == example.shown


def test_rules_md_links_here() -> None:
    rules_md = (DOC.parent / "RULES.md").read_text(encoding="utf-8")
    assert "(RULES-TOOLING.md)" in rules_md
