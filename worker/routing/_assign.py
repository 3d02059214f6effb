"""Pick the member of a pool that gets a lead: weighted round robin by the Balinski-Young quota method.

Per member the state keeps ``count`` (leads received) and ``due`` (the share accrued while available). For each
lead, among the available members with total weight ``W``: ``after = due + w / W``; the eligible ones are those
with ``count < after`` (the upper quota: nobody runs ahead of their share by a whole lead); among them the lowest
pointer ``(count + 1) / w`` wins, ties to the top of the pool (LeanData's rule). Every available member's ``due``
becomes ``after``; the winner's ``count`` goes up. Skipped members accrue nothing, so a rep back from holiday is
not flooded, and a member added later starts at zero without taking every lead (the quota holds it to its share).
Over any run with everyone available, each count stays within one lead of ``n * w / W``.

The state stores ``lag = due - count`` rather than ``due``: the same decisions (``count < after`` is
``lag + w / W > 0``), but a number that stays near zero, so float rounding cannot build up over millions of leads.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.routing._pool import Member, Pool, local_time
from worker.routing._target import Target

__all__ = ["SKIP_REASONS", "STATE_VERSION", "Assignment", "Candidate", "assign"]

SKIP_REASONS = (
    "switched_off",
    "out_of_office",
    "outside_working_hours",
    "over_daily_cap",
    "over_window_cap",
    "already_tried",
)
"""Why a member was passed over, in the order they are checked."""

STATE_VERSION = 1
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Candidate:
    """One member as the assignment saw it: its weight, leads so far, pointer, and why it was skipped if it was."""

    member: str
    weight: int
    count: int
    pointer: float
    """``(count + 1) / weight`` before the assignment: the lowest eligible pointer wins."""
    skipped: str | None = None
    """One of :data:`SKIP_REASONS`, or None when the member was available."""

    def as_dict(self) -> dict[str, object]:
        return {
            "member": self.member,
            "weight": self.weight,
            "count": self.count,
            "pointer": self.pointer,
            "skipped": self.skipped,
        }


@dataclass(frozen=True, slots=True)
class Assignment:
    """The outcome of :func:`assign`: who got the lead (or the overflow target), and every candidate with why."""

    pool: str
    request_id: str
    member: str | None
    """None when every member was skipped and the lead overflowed."""
    target: Target
    overflow: bool
    candidates: tuple[Candidate, ...]
    strategy: str = "weighted_round_robin"
    at: float | None = None
    """The ``now`` the assignment was judged at (epoch seconds)."""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, for the routing-decisions topic (and :func:`explain_assignment`)."""
        return {
            "pool": self.pool,
            "request_id": self.request_id,
            "strategy": self.strategy,
            "at": self.at,
            "member": self.member,
            "target": self.target.as_dict(),
            "overflow": self.overflow,
            "candidates": [c.as_dict() for c in self.candidates],
        }


def _fresh() -> dict[str, Any]:
    return {"count": 0, "lag": 0.0, "day": None, "day_count": 0, "recent": []}


_NUMBERS = (int, float)


def _member_state(raw: object) -> dict[str, Any]:
    """A member's state as stored, or a fresh one when it is not in the expected shape."""
    if raw.__class__ is not dict:
        return _fresh()
    state: dict[str, Any] = raw  # checked just above
    try:
        day = state["day"]
        recent = state["recent"]
        if (
            state["count"].__class__ is int
            and state["lag"].__class__ in _NUMBERS
            and (day is None or day.__class__ is str)
            and state["day_count"].__class__ is int
            and recent.__class__ is list
            and all(t.__class__ in _NUMBERS for t in recent)
        ):
            return state
    except KeyError:
        pass
    return _fresh()


def _sync(pool: Pool, state: dict[str, Any] | None) -> dict[str, Any]:
    """The state for the pool's current members: removed ones dropped, new ones fresh (in place when possible)."""
    if not isinstance(state, dict) or state.get("v") != STATE_VERSION or not isinstance(state.get("members"), dict):
        state = {"v": STATE_VERSION, "members": {}}
    old: dict[str, Any] = state["members"]
    state["members"] = {m.id: _member_state(old.get(m.id)) for m in pool.members}
    return state


def _skip(
    member: Member, ms: dict[str, Any], now: float, local: datetime, day: str, exclude: Collection[str]
) -> str | None:
    if not member.active:
        return "switched_off"
    if member.out_of_office and member.away(now):
        return "out_of_office"
    if not member.working(now, local):
        return "outside_working_hours"
    caps = member.caps
    if caps.per_day is not None and ms["day"] == day and ms["day_count"] >= caps.per_day:
        return "over_daily_cap"
    if caps.window_count is not None and caps.window_seconds is not None:
        since = now - caps.window_seconds
        if sum(1 for t in ms["recent"] if t > since) >= caps.window_count:
            return "over_window_cap"
    if member.id in exclude:
        return "already_tried"
    return None


def _record(member: Member, ms: dict[str, Any], now: float, day: str) -> None:
    """Count a lead for the chosen member: total, today's count and the rolling window."""
    ms["count"] += 1
    if ms["day"] != day:
        ms["day"] = day
        ms["day_count"] = 0
    ms["day_count"] += 1
    caps = member.caps
    if caps.window_count is not None and caps.window_seconds is not None:
        since = now - caps.window_seconds
        recent = [t for t in ms["recent"] if t > since]
        recent.append(now)
        ms["recent"] = recent[-caps.window_count :]
    else:
        ms["recent"] = []


def assign(
    pool: Pool,
    state: dict[str, Any] | None,
    request_id: str,
    now: float,
    exclude: Collection[str] = (),
) -> tuple[dict[str, Any], Assignment]:
    """Choose the member of ``pool`` that gets the lead ``request_id`` at ``now`` (epoch seconds).

    ``state`` is the pool's JSON-ready state (None for a new pool); it is returned updated (possibly the same dict,
    mutated). ``exclude`` lists members already tried (SLA reassignment), skipped as ``already_tried``. When every
    member is skipped the lead goes to the pool's overflow target and no count changes. Pure and deterministic;
    replayed requests are deduplicated by the caller.
    """
    state = _sync(pool, state)
    states: dict[str, Any] = state["members"]
    candidates: list[Candidate] = []
    available: list[tuple[int, Member, dict[str, Any], str]] = []
    locals_by_zone: dict[str | None, tuple[datetime, str]] = {}  # one local time per time zone, not per member
    for index, member in enumerate(pool.members):
        ms = states[member.id]
        local_day = locals_by_zone.get(member.timezone)
        if local_day is None:
            local = local_time(now, member.timezone)
            local_day = locals_by_zone[member.timezone] = (local, local.date().isoformat())
        local, day = local_day
        reason = _skip(member, ms, now, local, day, exclude)
        candidates.append(Candidate(member.id, member.weight, ms["count"], (ms["count"] + 1) / member.weight, reason))
        if reason is None:
            available.append((index, member, ms, day))
    if not available:
        target = pool.overflow
        return state, Assignment(pool.name, request_id, None, target, True, tuple(candidates), pool.strategy, now)
    total = sum(member.weight for _, member, _, _ in available)
    ahead = [ms["lag"] + member.weight / total for _, member, ms, _ in available]  # after - count
    eligible = [i for i in range(len(available)) if ahead[i] > _EPSILON]  # count < after: within the upper quota
    pool_of = eligible or list(range(len(available)))  # none eligible (only after config changes): plain pointer
    best = min(pool_of, key=lambda i: (candidates[available[i][0]].pointer, available[i][0]))
    for i, (_, _, ms, _) in enumerate(available):
        ms["lag"] = ahead[i]
    _, chosen, ms, day = available[best]
    ms["lag"] -= 1
    _record(chosen, ms, now, day)
    target = Target("user", chosen.id)
    return state, Assignment(pool.name, request_id, chosen.id, target, False, tuple(candidates), pool.strategy, now)
