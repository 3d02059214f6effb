"""The limits that keep any ruleset cheap to load and to evaluate; documented in docs/RULES.md ("Limits").

Each one is checked when the ruleset loads, and a ruleset over a limit is refused with a message naming the rule,
the limit and the actual size.
"""

from __future__ import annotations

from worker.lead.state import HISTORY_DAYS

__all__ = [
    "HISTORY_DAYS",
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "MAX_FIELDS",
    "MAX_LIST_VALUES",
    "MAX_PATTERN_CHARS",
    "MAX_RULES",
]

MAX_RULES = 2000
"""Scoring and qualification rules together."""

MAX_DEPTH = 10
"""Levels of all/any/not nesting in one condition (a single test is level 1)."""

MAX_CONDITIONS = 200
"""Tests (field, op, value) in one rule's condition."""

MAX_LIST_VALUES = 1000
"""Values in one list: an ``in`` list, texts for ``contains``, domains for ``domain_in``..."""

MAX_PATTERN_CHARS = 500
"""Characters in one ``matches`` regular expression."""

MAX_FIELDS = 500
"""Fields declared under ``fields:``."""

# HISTORY_DAYS (90): days of per-day activity history a lead's state keeps, the longest window
# ``count_in_days(N)`` can ask for; defined in worker.lead.state, which keeps the history.
