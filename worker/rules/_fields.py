"""The facts a rule may read (see :func:`worker.state.build_facts`) and what kind of value each one holds."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

from worker.events import KNOWN_ACTIVITY_TYPES
from worker.state import PROFILE_FIELDS

__all__ = ["FIXED_FIELDS", "FieldCheck", "Kind", "check_field"]


class Kind(Enum):
    """What kind of value a fact holds; decides which operators and values make sense."""

    TEXT = "text"
    NUMBER = "number"
    TIME = "time"  # epoch seconds: a number that within_days understands
    BOOL = "yes/no"
    ANY = "any"  # custom.* fields: anything goes


_NUMERIC_PROFILE = {"annual_revenue": Kind.NUMBER, "number_of_employees": Kind.NUMBER}

FIXED_FIELDS: dict[str, Kind] = {
    **{name: _NUMERIC_PROFILE.get(name, Kind.TEXT) for name in PROFILE_FIELDS},
    "status": Kind.TEXT,
    "activity.total": Kind.NUMBER,
    "last_activity_at": Kind.TIME,
    "days_since_last_activity": Kind.NUMBER,
    "points": Kind.NUMBER,
    "score": Kind.NUMBER,
    "converted": Kind.BOOL,
    "event.type": Kind.TEXT,
    "event.activity_type": Kind.TEXT,
    "now": Kind.TIME,
}

_ACTIVITY = re.compile(r"activity\.([a-z][a-z0-9_]{0,63})\.(count|last_at)")
_ACTIVITY_KINDS = {"count": Kind.NUMBER, "last_at": Kind.TIME}
_CANDIDATES = (
    *FIXED_FIELDS,
    *(f"activity.{t}.{part}" for t in KNOWN_ACTIVITY_TYPES for part in ("count", "last_at")),
)
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """The kind of a field, or why it is not a field (with a suggestion when there is a near miss)."""

    kind: Kind | None
    message: str | None = None
    suggestion: str | None = None


def check_field(name: object, activity_types: Collection[str] = ()) -> FieldCheck:
    """Classify a field name; ``activity_types`` are the ruleset's declared own activity types."""
    if not isinstance(name, str) or not name:
        return FieldCheck(None, f"a field name must be text, got {name!r}")
    kind = FIXED_FIELDS.get(name)
    if kind is not None:
        return FieldCheck(kind)
    if name.startswith("custom.") and len(name) > len("custom."):
        return FieldCheck(Kind.ANY)
    match = _ACTIVITY.fullmatch(name)
    if match is not None:
        kind_of_type, part = match.group(1), match.group(2)
        if kind_of_type not in KNOWN_ACTIVITY_TYPES and kind_of_type not in activity_types:
            close = difflib.get_close_matches(kind_of_type, KNOWN_ACTIVITY_TYPES, n=1, cutoff=0.8)
            if close:
                return FieldCheck(
                    None,
                    f"unknown activity type {kind_of_type!r} in field {name!r}"
                    " (list your own types under 'activity_types' to use it anyway)",
                    f"activity.{close[0]}.{part}",
                )
        return FieldCheck(_ACTIVITY_KINDS[part])
    close = difflib.get_close_matches(name, _CANDIDATES, n=1, cutoff=0.75)
    if close:
        return FieldCheck(None, f"unknown field {name!r}", close[0])
    if _PLAIN_NAME.fullmatch(name):
        return FieldCheck(
            None,
            f"unknown field {name!r}; org-specific fields are written 'custom.<name>'",
            f"custom.{name}",
        )
    return FieldCheck(None, f"unknown field {name!r}")
