"""Facts computed from other facts when a ruleset asks for them: windowed counts and days since an activity type.

``activity.<type>.count_in_days(N)`` sums the lead's per-day activity history (see :mod:`worker.lead.state`) over the
N UTC days ending with the event's day; ``activity.<type>.days_since`` is the days (with decimals) from the last
activity of the type to the event. Both are relative to the event's time (``now``), never the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.conditions._fields import activity_part
from worker.conditions._model import Facts
from worker.lead.state import HISTORY_FACT

__all__ = ["derived_fact"]

_NUMBER: frozenset[type[float]] = frozenset({int, float})
_DAY = 86400.0


def _count_in_days(activity_type: str, days: int) -> Callable[[Facts], object]:
    def count_in_days(facts: Facts) -> object:
        now: Any = facts.get("now")
        if now.__class__ not in _NUMBER:
            return None
        history: Any = facts.get(HISTORY_FACT)
        buckets = history.get(activity_type) if isinstance(history, dict) else None
        if not buckets:
            return 0
        today = int(now // _DAY)
        first = today - days + 1
        total = 0
        for day, count in reversed(buckets):  # newest first: stop at the first day before the window
            if day > today:  # a later event already applied (a replay out of order): not in this window
                continue
            if day < first:
                break
            total += count
        return total

    return count_in_days


def _days_since(activity_type: str) -> Callable[[Facts], object]:
    last_key = f"activity.{activity_type}.last_at"

    def days_since(facts: Facts) -> object:
        now: Any = facts.get("now")
        last: Any = facts.get(last_key)
        if now.__class__ not in _NUMBER or last.__class__ not in _NUMBER:
            return None
        return max(0.0, (now - last) / _DAY)

    return days_since


def derived_fact(name: str) -> Callable[[Facts], object] | None:
    """How to compute the fact ``name``, when it is a derived one (None for facts that build_facts sets)."""
    part = activity_part(name)
    if part is None:
        return None
    activity_type, what, days = part
    if what == "count_in_days" and days is not None:
        return _count_in_days(activity_type, days)
    if what == "days_since":
        return _days_since(activity_type)
    return None
