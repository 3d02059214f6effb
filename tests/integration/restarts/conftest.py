"""Lead state across worker restarts: nothing lost, nothing skipped, nothing counted twice.

The embedded broker answers ListOffsets with an offset short of the real end when the last batch held several
records; a Faust table then loses updates on restart (memory store) or crash-loops (RocksDB). These tests write
changelog batches of many records and restart the worker, so they fail without leadflow's transport fix.

The tests are split over several files of this folder only so that ``make test`` (``--dist loadfile``) runs them
in several processes side by side; this file holds what they share: the counting ruleset, reading decisions until
every event has one, and a worker whose Faust seek to the committed offsets waits.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Flow, activity, write_rules

COUNTING_RULES = """
version: "count-1"
scoring:
  - id: views
    per: activity.page_view.count
    points: 1
qualification:
  - id: never
    when: {field: points, op: gte, value: 1000000000}
    status: Contacted
"""


@pytest.fixture
def counting_rules(tmp_path: Path) -> Path:
    return write_rules(tmp_path, COUNTING_RULES, "count.yaml")


def _views(leads: list[str], round_: int, per_lead: int) -> list[dict[str, Any]]:
    return [
        activity(lead, f"{lead}-r{round_}-{i}", "page_view", f"2026-11-{3 + round_:02d}T10:{i % 60:02d}:00Z")
        for i in range(per_lead)
        for lead in leads
    ]


def _latest_points(flow: Flow, want_ids: set[str], timeout: float = 90.0) -> dict[str, float]:
    """Read decisions until every event id in ``want_ids`` has one; the last points seen per lead."""
    deadline = time.monotonic() + timeout
    topic = flow.settings.topic_decisions
    decisions: list[dict[str, Any]] = []  # every decision read so far, in order, each decoded once
    decided: set[str] = set()
    while True:
        for output in flow.read(topic, 0)[len(decisions) :]:
            decisions.append(output.json)
            decided.add(decisions[-1]["event_id"])
        missing = want_ids - decided
        if not missing:
            break
        if time.monotonic() > deadline:
            shown = sorted(missing)[:10]
            msg = f"{len(missing)} events never got a decision, e.g. {shown}\n{flow.log()[-3000:]}"
            raise AssertionError(msg)
        try:
            flow.read(topic, len(decisions) + 1, timeout=1.0)
        except AssertionError:
            continue  # nothing new within a second; the deadline above decides when to give up
    points: dict[str, float] = {}
    for d in decisions:
        points[d["lead_id"]] = d["points"]
    return points


SEEK_DELAY_SECONDS = 3
DELAYED_SEEK = f"""
# Loaded by the worker's interpreter (PYTHONPATH): Faust's seek of the stream partitions to their committed offsets
# waits {SEEK_DELAY_SECONDS} s, with the partitions resumed and the fetcher running, as a slow broker makes it.
import asyncio
import sys

from faust.transport import consumer

_perform_seek = consumer.Consumer.perform_seek


async def perform_seek(self):
    print("test hook: Faust's seek to the committed offsets waits {SEEK_DELAY_SECONDS} s", file=sys.stderr, flush=True)
    await asyncio.sleep({SEEK_DELAY_SECONDS})
    await _perform_seek(self)
    print("test hook: Faust's seek to the committed offsets is done", file=sys.stderr, flush=True)


consumer.Consumer.perform_seek = perform_seek
"""


def _delayed_seek(tmp_path: Path) -> dict[str, str]:
    """The environment of a worker whose Faust seek to the committed offsets waits (``DELAYED_SEEK``)."""
    hook = tmp_path / "delayed-seek"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(DELAYED_SEEK)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)}


def _wait_for_log(flow: Flow, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in flow.log():
        assert time.monotonic() < deadline, f"{text!r} not in the worker's log\n{flow.log()[-3000:]}"
        time.sleep(0.05)
