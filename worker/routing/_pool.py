"""Pools of reps: members with weights, schedules, caps and out-of-office periods, all resolved at load time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from worker.routing._target import Sla, Target

__all__ = ["DAYS", "STRATEGIES", "Caps", "Member", "Pool", "WorkingHours", "local_time", "zone"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STRATEGIES = ("weighted_round_robin", "round_robin")

WorkingHours = tuple[tuple[tuple[int, int], ...], ...]
"""Per weekday (Monday first) the ``(start, end)`` minutes of the day a member works, end excluded."""


@lru_cache(maxsize=1024)
def zone(name: str | None) -> ZoneInfo:
    """The time zone called ``name`` (UTC for None); names are checked when the ruleset loads."""
    return ZoneInfo(name or "UTC")


def local_time(now: float, tz: str | None) -> datetime:
    """``now`` (epoch seconds) as a wall-clock time in ``tz`` (UTC for None)."""
    return datetime.fromtimestamp(now, zone(tz))


@dataclass(frozen=True, slots=True)
class Caps:
    """How many leads a member may get: per day (in the member's time zone) and per rolling window."""

    per_day: int | None = None
    window_count: int | None = None
    window_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """One rep of a pool, with the pool's defaults (time zone, hours, caps) already applied."""

    id: str
    weight: int = 1
    active: bool = True
    timezone: str | None = None
    """IANA name of the zone the member's hours and day cap are judged in; None: UTC."""
    working_hours: WorkingHours | None = None
    """None: always available."""
    caps: Caps = Caps()
    out_of_office: tuple[tuple[float, float], ...] = ()
    """``(from, to)`` epoch seconds, ``to`` excluded."""

    def away(self, now: float) -> bool:
        """Whether ``now`` falls in one of the member's out-of-office periods."""
        return any(start <= now < end for start, end in self.out_of_office)

    def working(self, now: float, local: datetime | None = None) -> bool:
        """Whether ``now`` is within the member's working hours (always, when none are set); ``local`` is ``now`` in
        the member's time zone, when the caller has it already."""
        if self.working_hours is None:
            return True
        if local is None:
            local = local_time(now, self.timezone)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.working_hours[local.weekday()])


@dataclass(frozen=True, slots=True)
class Pool:
    """A pool of members that leads rotate among; ``overflow`` takes a lead when every member is skipped."""

    name: str
    strategy: str
    members: tuple[Member, ...]
    overflow: Target
    sla: Sla | None = None
    timezone: str | None = None
    """The pool's default time zone (members without their own use it)."""
