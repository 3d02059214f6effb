"""The examples in docs/RULES.md: full rulesets parse, error examples give the errors shown, and the code runs."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tests.builders import activity, upsert
from worker.conditions._fields import FIXED_FIELDS
from worker.core import Engine, decide
from worker.exceptions import RulesetError
from worker.lead.events import LeadActivity, LeadUpserted
from worker.rules import OPERATORS, parse_ruleset
from worker.scoring import default_model_path, load_model

DOC = Path(__file__).resolve().parents[3] / "docs" / "RULES.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


def rulesets() -> list[tuple[str, str | None]]:
    """Every full ruleset (a yaml block starting with ``version:``) and the error text shown after it, if any."""
    found = blocks()
    out: list[tuple[str, str | None]] = []
    for i, (lang, body) in enumerate(found):
        if lang != "yaml" or not body.startswith("version:"):
            continue
        following = found[i + 1] if i + 1 < len(found) else None
        error = None
        if following is not None and following[0] == "text" and following[1].startswith("ruleset has"):
            error = following[1].strip()
        out.append((body, error))
    return out


EXAMPLES = rulesets()


def test_the_doc_has_examples() -> None:
    assert len(EXAMPLES) >= 10
    assert sum(1 for _, error in EXAMPLES if error is not None) >= 3


@pytest.mark.parametrize(("text", "error"), EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_doc_example(text: str, error: str | None) -> None:
    if error is None:
        parse_ruleset(text, "rules.yaml")
        return
    with pytest.raises(RulesetError) as info:
        parse_ruleset(text, "rules.yaml")
    assert str(info.value) == error


def test_every_operator_has_an_example() -> None:
    used = set(re.findall(r"\bop: (\w+)", "\n".join(text for text, _ in EXAMPLES)))
    assert set(OPERATORS) <= used


def test_every_fact_is_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    missing = [name for name in FIXED_FIELDS if f"`{name}`" not in doc]
    assert missing == []


def test_the_python_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (code,) = [body for lang, body in blocks() if lang == "python"]
    (tmp_path / "rules.yaml").write_text(EXAMPLES[0][0], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {})  # noqa: S102  # our own documentation example
    assert capsys.readouterr().out.strip() == "40.0 ('demo-request', 'warm') Contacted"


def test_the_decay_example_gives_the_points_shown() -> None:
    (text,) = [body for body, _ in EXAMPLES if body.startswith('version: "1.0"\ndecay: {percent: 50, days: 30}')]
    engine = Engine(parse_ruleset(text, "rules.yaml"), load_model(default_model_path()))
    march = dt.datetime(2027, 3, 1, 9, 0, tzinfo=dt.UTC)
    events: list[LeadUpserted | LeadActivity] = [
        upsert("e1", march, number_of_employees=2000),
        activity("a1", "demo_request", march),
        activity("a2", "page_view", march + dt.timedelta(days=15), count=5),
        upsert("e2", march + dt.timedelta(days=30), title="CTO"),
    ]
    state = None
    points = []
    for event in events:
        state, decided = decide(engine, state, event, decided_at=0.0)
        points.append(decided.decision["points"])
    assert points[2:] == [65, 42.5]
    doc = DOC.read_text(encoding="utf-8")
    assert "The lead's points are 42.5; on 16 March" in doc
    assert "= 65." in doc
