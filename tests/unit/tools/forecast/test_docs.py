"""docs/FORECAST.md's JSON excerpt is what ``leadflow forecast --json`` prints for the hand-built history."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.unit.tools.forecast.conftest import write_files
from worker.cli import main

DOC = Path(__file__).parents[4] / "docs" / "FORECAST.md"


def _subset(shown: Any, real: Any) -> None:
    """Every value the doc shows is the real one ("..." stands for what the doc leaves out)."""
    if isinstance(shown, dict):
        for key, value in shown.items():
            if key != "...":
                assert key in real, key
                _subset(value, real[key])
    elif isinstance(shown, list):
        for i, value in enumerate(v for v in shown if v != "..."):
            _subset(value, real[i])
    else:
        assert shown == real


def test_the_json_excerpt_is_a_real_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    excerpt = re.search(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert excerpt is not None
    assert main(["forecast", "--json", *write_files(tmp_path)]) == 0
    real = orjson.loads(capsys.readouterr().out)
    shown = orjson.loads(excerpt.group(1))
    assert set(shown) == {"forecast", "calibration", "rules", "feedback"}
    _subset(shown, real)
