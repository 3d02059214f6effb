"""The facts a rule may read (see :func:`worker.lead.state.build_facts`) and what kind of value each one holds."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum

from worker.lead.events import KNOWN_ACTIVITY_TYPES
from worker.lead.state import HISTORY_DAYS, PROFILE_FIELDS

__all__ = [
    "FIXED_FIELDS",
    "KINDS",
    "ROUTING_FIELDS",
    "FieldCheck",
    "Kind",
    "activity_part",
    "can_change",
    "check_field",
]


class Kind(Enum):
    """What kind of value a fact holds; decides which operators and values make sense."""

    TEXT = "text"
    NUMBER = "number"
    TIME = "time"  # epoch seconds: a number that within_days understands
    BOOL = "yes/no"
    ANY = "any"  # custom.* fields when no declarations are given (outside a ruleset): anything goes


KINDS: Mapping[str, Kind] = {k.value: k for k in (Kind.TEXT, Kind.NUMBER, Kind.BOOL, Kind.TIME)}
"""The kinds a ruleset can declare its ``custom.*`` fields with, by their name under ``fields:``."""


_NUMERIC_PROFILE = {
    "annual_revenue": Kind.NUMBER,
    "number_of_employees": Kind.NUMBER,
    "has_opted_out_of_email": Kind.BOOL,  # not numeric: the lead fields that are not text
    "do_not_call": Kind.BOOL,
}

FIXED_FIELDS: dict[str, Kind] = {
    **{name: _NUMERIC_PROFILE.get(name, Kind.TEXT) for name in PROFILE_FIELDS},
    "status": Kind.TEXT,
    "activity.total": Kind.NUMBER,
    "last_activity_at": Kind.TIME,
    "days_since_last_activity": Kind.NUMBER,
    "days_in_status": Kind.NUMBER,
    "points": Kind.NUMBER,
    "score": Kind.NUMBER,
    "converted": Kind.BOOL,
    "event.type": Kind.TEXT,
    "event.activity_type": Kind.TEXT,
    "now": Kind.TIME,
}

ROUTING_FIELDS: Mapping[str, Kind] = {"account.matched": Kind.BOOL, "account.id": Kind.TEXT}
"""Facts only routing rules can read: routing sets them from lead-to-account matching before its rules run."""

_ACTIVITY = re.compile(r"activity\.([a-z][a-z0-9_]{0,63})\.(count|last_at|days_since|count_in_days\((\d{1,9})\))")
_WINDOW_LIKE = re.compile(r"activity\.([a-z][a-z0-9_]{0,63})\.count_in_days\b.*")
_ACTIVITY_KINDS = {"count": Kind.NUMBER, "last_at": Kind.TIME, "days_since": Kind.NUMBER}
_PARTS = ("count", "last_at", "days_since", "count_in_days(7)")
_CANDIDATES = (
    *FIXED_FIELDS,
    *(f"activity.{t}.{part}" for t in KNOWN_ACTIVITY_TYPES for part in _PARTS),
)
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHANGEABLE = frozenset({*PROFILE_FIELDS, "status", "activity.total", "last_activity_at"})


def activity_part(name: str) -> tuple[str, str, int | None] | None:
    """``activity.<type>.<part>`` split into ``(type, part, window days)``; part is count, last_at, days_since or
    count_in_days (with its days); None for any other name."""
    match = _ACTIVITY.fullmatch(name)
    if match is None:
        return None
    part = match.group(2)
    if part.startswith("count_in_days"):
        return match.group(1), "count_in_days", int(match.group(3))
    return match.group(1), part, None


def can_change(name: str) -> bool:
    """Whether an event can change this fact (what ``changed`` may test): sent fields and activity counters."""
    if name in _CHANGEABLE or name.startswith("custom."):
        return True
    part = activity_part(name)
    return part is not None and part[1] in ("count", "last_at")


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """The kind of a field, or why it is not a field (with a suggestion when there is a near miss)."""

    kind: Kind | None
    message: str | None = None
    suggestion: str | None = None


def check_field(
    name: object,
    activity_types: Collection[str] = (),
    custom: Mapping[str, Kind] | None = None,
    expect: Kind = Kind.TEXT,
) -> FieldCheck:
    """Classify a field name.

    ``activity_types`` are the ruleset's declared own activity types, ``custom`` its declared ``custom.*`` fields
    (full names) with their kinds; when ``custom`` is None (outside a ruleset) any ``custom.*`` name is accepted.
    ``expect`` is the kind the use suggests, shown in how to declare an undeclared custom field.
    """
    if not isinstance(name, str) or not name:
        return FieldCheck(None, f"a field name must be text, got {name!r}")
    kind = FIXED_FIELDS.get(name)
    if kind is not None:
        return FieldCheck(kind)
    if name.startswith("custom.") and len(name) > len("custom."):
        return _custom_field(name, custom, expect)
    part = activity_part(name)
    if part is not None:
        return _activity_field(name, *part, activity_types)
    if _WINDOW_LIKE.fullmatch(name):
        msg = f"unknown field {name!r}; a window is written count_in_days(N) with N a whole number of days"
        return FieldCheck(None, msg)
    close = difflib.get_close_matches(name, [*_CANDIDATES, *(custom or ())], n=1, cutoff=0.75)
    if close:
        return FieldCheck(None, f"unknown field {name!r}", close[0])
    if _PLAIN_NAME.fullmatch(name):
        return FieldCheck(
            None,
            f"unknown field {name!r}; org-specific fields are written 'custom.<name>'",
            f"custom.{name}",
        )
    return FieldCheck(None, f"unknown field {name!r}")


def _custom_field(name: str, custom: Mapping[str, Kind] | None, expect: Kind) -> FieldCheck:
    if custom is None:
        return FieldCheck(Kind.ANY)
    kind = custom.get(name)
    if kind is not None:
        return FieldCheck(kind)
    close = difflib.get_close_matches(name, list(custom), n=1, cutoff=0.75)
    if close:
        return FieldCheck(None, f"unknown field {name!r}; it is not declared under 'fields:'", close[0])
    msg = (
        f"unknown field {name!r}; declare it under 'fields:' with its kind (text, number, yes/no or time),"
        f" e.g. fields: {{{name}: {expect.value if expect is not Kind.ANY else Kind.TEXT.value}}}"
    )
    return FieldCheck(None, msg)


def _activity_field(
    name: str, activity_type: str, part: str, days: int | None, activity_types: Collection[str]
) -> FieldCheck:
    if activity_type not in KNOWN_ACTIVITY_TYPES and activity_type not in activity_types:
        close = difflib.get_close_matches(activity_type, KNOWN_ACTIVITY_TYPES, n=1, cutoff=0.8)
        if close:
            return FieldCheck(
                None,
                f"unknown activity type {activity_type!r} in field {name!r}"
                " (list your own types under 'activity_types' to use it anyway)",
                name.replace(f"activity.{activity_type}.", f"activity.{close[0]}.", 1),
            )
    if days is None:
        return FieldCheck(_ACTIVITY_KINDS[part])
    if days < 1:
        return FieldCheck(None, f"field {name!r}: a window needs at least 1 day, got {days}")
    if days > HISTORY_DAYS:
        msg = (
            f"field {name!r}: a window of {days} days is over the limit of {HISTORY_DAYS} days"
            f" (leadflow keeps {HISTORY_DAYS} days of activity history per lead)"
        )
        return FieldCheck(None, msg, f"activity.{activity_type}.count_in_days({HISTORY_DAYS})")
    return FieldCheck(Kind.NUMBER)
