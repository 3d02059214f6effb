"""Per-lead state: what leadflow remembers about a lead, and how one event changes it.

The state is a plain JSON-able dict so that it can live in a Faust table, be replayed and be tested without a
broker. Timestamps are epoch seconds (floats): cheap to compare in rules and stable in JSON.

Layout (``STATE_VERSION`` 1)::

    {"v": 1, "lead_id": str,
     "profile": {field: value},            # standard lead fields that are set (never None)
     "custom": {name: scalar},             # org-specific fields that are set
     "activity": {type: [count, last_at]}, # engagement counters with the last time seen
     "history": {type: [[day, count], ...]},  # per-UTC-day counts, oldest first, the last HISTORY_DAYS days
     "last_activity_at": float | None,
     "status": str | None,                 # None until a rule or a producer sets one
     "points": float, "score": float | None,
     "converted": bool, "opportunity_id": str | None, "converted_at": float | None,
     "recent": " d1 d2 ...",               # digests of the last N event ids, for replay detection
     "events": int, "first_seen_at": float, "updated_at": float}

``history`` was added without changing the version: a stored state without it loads as a lead with no history
(windows over it count 0 until new activities arrive). ``day`` is ``int(epoch seconds // 86400)``, the event's
UTC day; days are kept relative to the newest day seen for the type, never the wall clock, so replays agree.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Collection
from typing import Any

from worker.events import LeadActivity, LeadFields, LeadUpserted

__all__ = [
    "CHANGED_FACT",
    "HISTORY_DAYS",
    "HISTORY_FACT",
    "PROFILE_FIELDS",
    "LeadState",
    "apply_event",
    "build_facts",
    "event_digest",
    "new_state",
    "seen",
]

STATE_VERSION = 1
LeadState = dict[str, Any]

HISTORY_DAYS = 90
"""Days of per-day activity counts kept per activity type (the longest ``count_in_days`` window)."""
HISTORY_FACT = "activity.history"
"""The facts key of the state's ``history`` (read by windowed counts; not a fact rules name)."""
CHANGED_FACT = "event.changed"
"""The facts key of the paths the event changed (read by ``changed``; not a fact rules name)."""
_DAY = 86400.0
_NO_HISTORY: dict[str, list[list[int]]] = {}
_NOTHING_CHANGED: frozenset[str] = frozenset()

PROFILE_FIELDS: tuple[str, ...] = tuple(f for f in LeadFields.model_fields if f != "custom")
_BLANK_PROFILE: dict[str, object] = dict.fromkeys(PROFILE_FIELDS)


def new_state(lead_id: str, now: float) -> LeadState:
    """An empty state for a lead seen for the first time at ``now``."""
    return {
        "v": STATE_VERSION,
        "lead_id": lead_id,
        "profile": {},
        "custom": {},
        "activity": {},
        "history": {},
        "last_activity_at": None,
        "status": None,
        "points": 0.0,
        "score": None,
        "converted": False,
        "opportunity_id": None,
        "converted_at": None,
        "recent": "",
        "events": 0,
        "first_seen_at": now,
        "updated_at": now,
    }


_DIGEST_CHARS = 12


def event_digest(event_id: str) -> str:
    """A short, stable digest of an event id (48 bits: collisions within one lead are negligible)."""
    return hashlib.blake2b(event_id.encode(), digest_size=_DIGEST_CHARS // 2).hexdigest()


def seen(state: LeadState, digest: str) -> bool:
    """Whether the event with this digest was already applied to the state.

    ``recent`` is one string of space-led, fixed-width digests (cheaper to store and load than a list); a space
    followed by 12 hex characters can only match a whole digest.
    """
    return " " + digest in state["recent"]


def apply_event(
    state: LeadState, event: LeadUpserted | LeadActivity, digest: str, now: float, window: int
) -> Collection[str]:
    """Merge one event into ``state`` in place (partial update semantics; counters add up).

    ``now`` is the event's time in epoch seconds; ``window`` bounds how many event digests are remembered.
    Returns the fact paths the event changed: fields set to a different value (or cleared), and for an activity
    its counter, ``activity.total`` and the last-activity times it moved.
    """
    changed: Collection[str]
    if isinstance(event, LeadUpserted):
        changed = set()
        _merge_fields(state, event.lead, changed)
    else:
        activity = event.activity
        kind, count = activity.type, activity.count
        keys = _ACTIVITY_KEYS.get(kind) or _activity_keys(kind)
        counters: dict[str, list[Any]] = state["activity"]
        entry = counters.get(kind)
        if entry is None:
            counters[kind] = [count, now]
            moved = True
        else:
            entry[0] += count
            moved = entry[1] is None or now > entry[1]
            if moved:
                entry[1] = now
        day = int(now // _DAY)
        history = state.get("history")
        buckets = None if history is None else history.get(kind)
        if buckets is not None and buckets[-1][0] == day:  # another activity the same day
            buckets[-1][1] += count
        elif buckets is not None and buckets[-1][0] < day and buckets[0][0] > day - HISTORY_DAYS:
            buckets.append([day, count])  # a new day, and nothing falls out of the history yet
        else:
            _count_day(state, kind, day, count)
        last = state["last_activity_at"]
        if last is None or now > last:
            state["last_activity_at"] = now
            changed = keys[2] if moved else keys[3]
        else:
            changed = keys[4] if moved else keys[5]
    recent: str = state["recent"] + " " + digest
    keep = window * (_DIGEST_CHARS + 1)
    state["recent"] = recent if len(recent) <= keep else recent[-keep:]
    state["events"] += 1
    state["updated_at"] = now
    return changed


def _count_day(state: LeadState, kind: str, day: int, count: int) -> None:
    """Add ``count`` to the type's bucket of ``day``, dropping buckets that fall out of the kept history."""
    history: dict[str, list[list[int]]] | None = state.get("history")
    if history is None:  # a state stored before the history existed
        history = state["history"] = {}
    buckets = history.get(kind)
    if buckets is None:
        history[kind] = [[day, count]]
        return
    newest = buckets[-1]
    if newest[0] == day:
        newest[1] += count
    elif newest[0] < day:
        buckets.append([day, count])
        oldest_kept = day - HISTORY_DAYS + 1
        if buckets[0][0] < oldest_kept:
            del buckets[: bisect.bisect_left(buckets, oldest_kept, key=lambda b: b[0])]
    elif day > newest[0] - HISTORY_DAYS:  # a late event within the kept history
        at = bisect.bisect_left(buckets, day, key=lambda b: b[0])
        if at < len(buckets) and buckets[at][0] == day:
            buckets[at][1] += count
        else:
            buckets.insert(at, [day, count])


def _merge_fields(state: LeadState, fields: LeadFields, changed: set[str]) -> None:
    profile: dict[str, object] = state["profile"]
    for name in fields.model_fields_set:
        if name == "custom":
            continue
        value = getattr(fields, name)
        if name == "status":
            if state["status"] != value:
                state["status"] = value
                changed.add(name)
            continue
        if value is None:
            if profile.pop(name, None) is not None:
                changed.add(name)
        elif profile.get(name) != value:
            profile[name] = value
            changed.add(name)
    if fields.custom is not None:
        custom: dict[str, object] = state["custom"]
        for key, value in fields.custom.items():
            if value is None:
                if custom.pop(key, None) is not None:
                    changed.add("custom." + key)
            elif custom.get(key, _ABSENT) != value or type(custom[key]) is not type(value):
                custom[key] = value
                changed.add("custom." + key)


_ABSENT = object()


_ActivityKeys = tuple[str, str, frozenset[str], frozenset[str], frozenset[str], frozenset[str]]
_ACTIVITY_KEYS: dict[str, _ActivityKeys] = {}
_MAX_CACHED_KINDS = 10_000  # activity types are open-ended: do not let producers grow this without bound


def _activity_keys(kind: str) -> _ActivityKeys:
    """The type's fact keys (count, last_at), and what an activity of it changed, built once per type: with
    both times moved, only the overall one, only the type's, neither."""
    count, last_at = f"activity.{kind}.count", f"activity.{kind}.last_at"
    base = frozenset({count, "activity.total"})
    keys = (
        count,
        last_at,
        base | {last_at, "last_activity_at"},
        base | {"last_activity_at"},
        base | {last_at},
        base,
    )
    if len(_ACTIVITY_KEYS) < _MAX_CACHED_KINDS:
        _ACTIVITY_KEYS[kind] = keys
    return keys


def build_facts(
    state: LeadState,
    now: float,
    event: LeadUpserted | LeadActivity | None,
    changed: Collection[str] = _NOTHING_CHANGED,
) -> dict[str, object]:
    """The flat ``path -> value`` view of a state that rules and the model read.

    Paths: the standard lead fields, ``custom.<name>``, ``activity.<type>.count`` and ``.last_at``,
    ``activity.total``, ``last_activity_at``, ``days_since_last_activity``, ``status``, ``points``, ``score``,
    ``converted``, ``event.type``, ``event.activity_type`` and ``now`` (the event's time); plus, for the rules'
    windows and ``changed``, the per-day history (``HISTORY_FACT``) and what the event changed (``changed``, as
    returned by :func:`apply_event`, under ``CHANGED_FACT``).
    """
    facts: dict[str, object] = dict(_BLANK_PROFILE)
    facts.update(state["profile"])
    for key, value in state["custom"].items():
        facts["custom." + key] = value
    total = 0
    keys_of = _ACTIVITY_KEYS.get
    for kind, (count, last_at) in state["activity"].items():
        keys = keys_of(kind) or _activity_keys(kind)
        facts[keys[0]] = count
        facts[keys[1]] = last_at
        total += count
    facts["activity.total"] = total
    last = state["last_activity_at"]
    facts["last_activity_at"] = last
    facts["days_since_last_activity"] = None if last is None else max(0.0, (now - last) / 86400.0)
    facts["status"] = state["status"]
    facts["points"] = state["points"]
    facts["score"] = state["score"]
    facts["converted"] = state["converted"]
    if event is None:
        facts["event.type"] = None
        facts["event.activity_type"] = None
    else:
        facts["event.type"] = event.event_type
        facts["event.activity_type"] = event.activity.type if isinstance(event, LeadActivity) else None
    facts["now"] = now
    facts[HISTORY_FACT] = state.get("history") or _NO_HISTORY
    facts[CHANGED_FACT] = changed
    return facts
