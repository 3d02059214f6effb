"""Per-lead state: what leadflow remembers about a lead, and how one event changes it.

The state is a plain JSON-able dict so that it can live in a Faust table, be replayed and be tested without a
broker. Timestamps are epoch seconds (floats): cheap to compare in rules and stable in JSON.

Layout (``STATE_VERSION`` 1)::

    {"v": 1, "lead_id": str,
     "profile": {field: value},            # standard lead fields that are set (never None)
     "custom": {name: scalar},             # org-specific fields that are set
     "activity": {type: [count, last_at]}, # engagement counters with the last time seen
     "last_activity_at": float | None,
     "status": str | None,                 # None until a rule or a producer sets one
     "points": float, "score": float | None,
     "converted": bool, "opportunity_id": str | None, "converted_at": float | None,
     "recent": " d1 d2 ...",               # digests of the last N event ids, for replay detection
     "events": int, "first_seen_at": float, "updated_at": float}
"""

from __future__ import annotations

import hashlib
from typing import Any

from worker.events import LeadActivity, LeadFields, LeadUpserted

__all__ = [
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


def apply_event(state: LeadState, event: LeadUpserted | LeadActivity, digest: str, now: float, window: int) -> None:
    """Merge one event into ``state`` in place (partial update semantics; counters add up).

    ``now`` is the event's time in epoch seconds; ``window`` bounds how many event digests are remembered.
    """
    if isinstance(event, LeadUpserted):
        _merge_fields(state, event.lead)
    else:
        activity = event.activity
        counters: dict[str, list[Any]] = state["activity"]
        entry = counters.get(activity.type)
        if entry is None:
            counters[activity.type] = [activity.count, now]
        else:
            entry[0] += activity.count
            if entry[1] is None or now > entry[1]:
                entry[1] = now
        last = state["last_activity_at"]
        if last is None or now > last:
            state["last_activity_at"] = now
    recent: str = state["recent"] + " " + digest
    keep = window * (_DIGEST_CHARS + 1)
    state["recent"] = recent if len(recent) <= keep else recent[-keep:]
    state["events"] += 1
    state["updated_at"] = now


def _merge_fields(state: LeadState, fields: LeadFields) -> None:
    profile: dict[str, object] = state["profile"]
    for name in fields.model_fields_set:
        if name == "custom":
            continue
        value = getattr(fields, name)
        if name == "status":
            state["status"] = value
            continue
        if value is None:
            profile.pop(name, None)
        else:
            profile[name] = value
    if fields.custom is not None:
        custom: dict[str, object] = state["custom"]
        for key, value in fields.custom.items():
            if value is None:
                custom.pop(key, None)
            else:
                custom[key] = value


_ACTIVITY_KEYS: dict[str, tuple[str, str]] = {}
_MAX_CACHED_KINDS = 10_000  # activity types are open-ended: do not let producers grow this without bound


def _activity_keys(kind: str) -> tuple[str, str]:
    keys = (f"activity.{kind}.count", f"activity.{kind}.last_at")
    if len(_ACTIVITY_KEYS) < _MAX_CACHED_KINDS:
        _ACTIVITY_KEYS[kind] = keys
    return keys


def build_facts(state: LeadState, now: float, event: LeadUpserted | LeadActivity | None) -> dict[str, object]:
    """The flat ``path -> value`` view of a state that rules and the model read.

    Paths: the standard lead fields, ``custom.<name>``, ``activity.<type>.count`` and ``.last_at``,
    ``activity.total``, ``last_activity_at``, ``days_since_last_activity``, ``status``, ``points``, ``score``,
    ``converted``, ``event.type``, ``event.activity_type`` and ``now`` (the event's time).
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
    return facts
