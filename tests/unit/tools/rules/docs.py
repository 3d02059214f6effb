"""Reading docs/RULES-TOOLING.md: its files (```yaml name) and its console examples (```console), run for real."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from worker.cli import main

DOC = Path(__file__).resolve().parents[4] / "docs" / "RULES-TOOLING.md"
BLOCK = re.compile(r"^```(\w*)(?: ([\w.-]+))?\n(.*?)^```", re.MULTILINE | re.DOTALL)
_ECHO = '; echo "exit $?"'


@dataclass(frozen=True)
class Example:
    """A console example, the files the page has shown before it, and the output it shows."""

    command: str
    files: dict[str, str]
    shown: str
    start: int
    end: int


def examples(text: str) -> list[Example]:
    files: dict[str, str] = {}
    out: list[Example] = []
    for match in BLOCK.finditer(text):
        lang, name, body = match.group(1), match.group(2), match.group(3)
        if name:
            files[name] = body
        elif lang == "console":
            command, _, shown = body.partition("\n")
            out.append(Example(command.removeprefix("$ "), dict(files), shown, match.start(3), match.end(3)))
    return out


def run(example: Example, where: Path) -> str:
    """Write the files into ``where``, run the command there, and return what it printed (and its exit code)."""
    for name, body in example.files.items():
        (where / name).write_text(body, encoding="utf-8")
    echo = example.command.endswith(_ECHO)
    argv = shlex.split(example.command.removesuffix(_ECHO))
    assert argv[0] == "leadflow"
    before = Path.cwd()
    buffer = io.StringIO()
    os.chdir(where)
    try:
        with contextlib.redirect_stdout(buffer):
            code = main(argv[1:])
    finally:
        os.chdir(before)
    return buffer.getvalue() + (f"exit {code}\n" if echo else "")
