"""A small history and ruleset pairs for the backtest tests, written to files as a user would give them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest

from worker.batch import Record
from worker.core import Engine
from worker.rules import default_ruleset_path, parse_ruleset
from worker.scoring import default_model_path, load_model
from worker.scoring.training import generate

START = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)

RULES = """
version: "t-1"
scoring:
  - id: demo-request
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 50
  - id: page-views
    per: activity.page_view.count
    points: 1
    max: 20
  - id: chat
    when: {field: activity.chat.count, op: gte, value: 1}
    points: 10
qualification:
  - id: unsubscribed
    when: {field: activity.unsubscribe.count, op: gte, value: 1}
    status: Unqualified
  - id: hot
    when: {field: points, op: gte, value: 50}
    status: Qualified
    convert: true
    opportunity: {stage: Needs Analysis, amount: 12000, close_in_days: 45, queue: Enterprise AEs}
  - id: warm
    when: {field: points, op: gte, value: 5}
    status: Contacted
"""

# page views count 5 each (up to 60), a new form rule, and no chat rule
RULES_NEW = (
    RULES.replace("    points: 1\n    max: 20", "    points: 5\n    max: 60")
    .replace(
        "  - id: chat\n    when: {field: activity.chat.count, op: gte, value: 1}\n    points: 10\n",
        "  - id: form\n    when: {field: activity.form_submit.count, op: gte, value: 1}\n    points: 10\n",
    )
    .replace('version: "t-1"', 'version: "t-2"')
)


def variant(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced by ``new``, which must occur exactly once."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def upsert(lead_id: str, n: int, day: int = 1, **lead: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": f"{lead_id}-{n}",
        "event_type": "lead.upserted",
        "occurred_at": f"2026-11-{day:02d}T09:00:00Z",
        "lead_id": lead_id,
        "lead": {"company": f"{lead_id} Ltd", **lead},
    }


def act(lead_id: str, n: int, kind: str, count: int = 1, day: int = 2) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": f"{lead_id}-{n}",
        "event_type": "lead.activity",
        "occurred_at": f"2026-11-{day:02d}T10:{n:02d}:00Z",
        "lead_id": lead_id,
        "activity": {"type": kind, "count": count},
    }


HAND_HISTORY: list[dict[str, Any]] = [
    upsert("L1", 0),
    act("L1", 1, "page_view", 10),  # old 10 points (Contacted); new 50 (converted by hot)
    upsert("L2", 0),
    act("L2", 1, "demo_request"),  # 50 points in both: converted in both, not a change
    upsert("L3", 0),
    act("L3", 1, "page_view"),  # old 1 point (Open); new 5 (Contacted)
    upsert("L4", 0),
    act("L4", 1, "form_submit"),  # old 0 (Open); new 10 (Contacted)
    upsert("L5", 0),
    act("L5", 1, "chat"),  # old 10 (Contacted); new 0 (Open)
    upsert("L6", 0),
    act("L6", 1, "unsubscribe"),  # Unqualified in both
]


def lines(events: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(e) for e in events]


def write_lines(path: Path, rows: list[bytes]) -> Path:
    path.write_bytes(b"".join(row + b"\n" for row in rows))
    return path


def records(events: list[dict[str, Any]]) -> list[Record]:
    """The events as raw records, keyed by lead id, offsets counting from 1 like file lines."""
    return [Record(e["lead_id"].encode(), orjson.dumps(e), "t", 0, i) for i, e in enumerate(events, 1)]


def engine(text: str) -> Engine:
    return Engine(ruleset=parse_ruleset(text), model=load_model(default_model_path()))


@pytest.fixture(scope="session")
def synthetic() -> list[dict[str, Any]]:
    """About 150 generated leads over four weeks (a few thousand events)."""
    return generate(150, seed=11, start=START, weeks=4).events


@pytest.fixture(scope="session")
def default_text() -> str:
    return default_ruleset_path().read_text(encoding="utf-8")


@pytest.fixture
def hand_files(tmp_path: Path) -> dict[str, Path]:
    """The hand-made history and both rulesets as files."""
    (tmp_path / "old.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "new.yaml").write_text(RULES_NEW, encoding="utf-8")
    return {
        "old": tmp_path / "old.yaml",
        "new": tmp_path / "new.yaml",
        "events": write_lines(tmp_path / "events.jsonl", lines(HAND_HISTORY)),
    }
