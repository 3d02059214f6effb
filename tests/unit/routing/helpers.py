"""Shared helpers for the routing tests: pools built in Python, rulesets with a routing section, times."""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from worker.exceptions import Problem, RulesetError
from worker.routing import Caps, Member, Pool, Routing, Target, assign
from worker.rules import parse_ruleset

UTC = ZoneInfo("UTC")
MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()
"""Monday 23 November 2026, 12:00 UTC."""
HOUR = 3600.0


def at(text: str, tz: str = "UTC") -> float:
    """Epoch seconds of an ISO local time in ``tz``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def pool(*members: Member | str, name: str = "p", strategy: str = "weighted_round_robin") -> Pool:
    """A pool of the given members (a plain id is a member of weight 1) overflowing to queue 'Overflow'."""
    built = tuple(Member(m) if isinstance(m, str) else m for m in members)
    return Pool(name, strategy, built, Target("queue", "Overflow"))


def weighted(*weights: int) -> Pool:
    """A pool of members A, B, C, ... with these weights, always available."""
    return pool(*(Member(chr(ord("A") + i), w) for i, w in enumerate(weights)))


def run(
    p: Pool, n: int, now: float = MONDAY_NOON, state: dict[str, Any] | None = None
) -> tuple[list[str | None], dict[str, Any]]:
    """Assign ``n`` leads one second apart; the members chosen and the final state."""
    chosen: list[str | None] = []
    for i in range(n):
        state, decision = assign(p, state, f"r{i}", now + i)
        chosen.append(decision.member)
    assert state is not None
    return chosen, state


def routing_of(routing: dict[str, Any], **top: Any) -> Routing:
    """The compiled routing of a ruleset with this ``routing`` section (through the real YAML loader)."""
    doc = {"version": "1", **top, "routing": routing}
    compiled = parse_ruleset(yaml.safe_dump(doc, sort_keys=False)).routing
    assert compiled is not None
    return compiled


def problems(text: str) -> list[Problem]:
    """The problems of a ruleset whose text (after ``version``) is ``text``."""
    with pytest.raises(RulesetError) as info:
        parse_ruleset('version: "1"\n' + textwrap.dedent(text), "rules.yaml")
    return list(info.value.problems)


def only(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


__all__ = ["HOUR", "MONDAY_NOON", "Caps", "at", "only", "pool", "problems", "routing_of", "run", "weighted"]
