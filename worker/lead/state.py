"""Per-lead state: what leadflow remembers about a lead, and how one event changes it.

The state is a plain JSON-able dict so that it can live in a Faust table, be replayed and be tested without a
broker. Timestamps are epoch seconds (floats): cheap to compare in rules and stable in JSON.

Layout (``STATE_VERSION`` 2): flat, keyed by the fact paths that rules and the model read, so that the facts of
an event are a copy of the state plus what the event itself says (:func:`build_facts`)::

    {"v": 2, "lead_id": str,
     <field>: value,                       # standard lead fields that are set (never None); status below
     "custom.<name>": scalar,              # org-specific fields that are set
     "activity.<type>.count": int,         # engagement counters ...
     "activity.<type>.last_at": float,     # ... with the last time seen
     "activity.total": int, "last_activity_at": float | None,
     "activity.history": {type: [[day, count], ...]},  # per-UTC-day counts, oldest first, the last HISTORY_DAYS days
     "status": str | None,                 # None until a rule or a producer sets one
     "status_since": float | None,         # when the status last changed (None: stored before it was kept)
     "wake_at": float | None,              # when time alone may change a decision (absent/None: never)
     "points": float, "score": float | None, "converted": bool,
     "opportunity_id": str | None, "converted_at": float | None,
     "recent": " d1 d2 ...",               # digests of the last N event ids, for replay detection
     "source": [topic, partition, offset, timestamp],  # where the last applied event was read (if from Kafka)
     "events": int, "first_seen_at": float, "updated_at": float}

``day`` is ``int(epoch seconds // 86400)``, the event's UTC day; days are kept relative to the newest day seen for
the type, never the wall clock, so replays agree. States stored by earlier versions (version 1: nested
``profile``, ``custom``, ``activity`` and ``history`` maps) are read by :func:`upgrade`, which
:func:`decode_state` applies; they are stored again in this layout.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Collection, Mapping, MutableMapping
from typing import Any

import orjson

from worker.exceptions import StateError
from worker.lead.events import LeadActivity, LeadFields, LeadMatched, LeadUpserted

__all__ = [
    "CHANGED_FACT",
    "HISTORY_DAYS",
    "HISTORY_FACT",
    "PROFILE_FIELDS",
    "STATE_VERSION",
    "LeadState",
    "age_facts",
    "apply_event",
    "build_facts",
    "decode_state",
    "event_digest",
    "new_state",
    "profile_of",
    "redelivered",
    "remember",
    "seen",
    "upgrade",
]

STATE_VERSION = 2
LeadState = dict[str, Any]

HISTORY_DAYS = 90
"""Days of per-day activity counts kept per activity type (the longest ``count_in_days`` window)."""
HISTORY_FACT = "activity.history"
"""The state's (and the facts') key of the per-day history (read by windowed counts; not a fact rules name)."""
CHANGED_FACT = "event.changed"
"""The facts key of the paths the event changed (read by ``changed``; not a fact rules name)."""
_DAY = 86400.0
_NOTHING_CHANGED: frozenset[str] = frozenset()

PROFILE_FIELDS: tuple[str, ...] = tuple(f for f in LeadFields.model_fields if f != "custom")


def new_state(lead_id: str, now: float) -> LeadState:
    """An empty state for a lead seen for the first time at ``now``."""
    return {
        "v": STATE_VERSION,
        "lead_id": lead_id,
        "activity.total": 0,
        "last_activity_at": None,
        "status": None,
        "status_since": now,
        "points": 0.0,
        "score": None,
        "converted": False,
        "opportunity_id": None,
        "converted_at": None,
        HISTORY_FACT: {},
        "recent": "",
        "events": 0,
        "first_seen_at": now,
        "updated_at": now,
    }


_OWN_KEYS = frozenset(new_state("", 0.0)) - {"status"}  # the state's keys that are not lead fields
if _OWN_KEYS.intersection(PROFILE_FIELDS):  # pragma: no cover - a guard for whoever adds a lead field
    _msg = f"lead fields {sorted(_OWN_KEYS.intersection(PROFILE_FIELDS))!r} clash with the state's own keys"
    raise AssertionError(_msg)
_CARRIED = (  # what layout 1 kept under the same keys
    *("last_activity_at", "status", "points", "score", "converted", "opportunity_id", "converted_at"),
    *("recent", "events", "updated_at"),
)


def decode_state(raw: bytes) -> LeadState:
    """A stored state (JSON bytes) in this version's layout, upgrading one stored by an earlier version."""
    state: Any = orjson.loads(raw)
    if state.__class__ is dict and state.get("v") == STATE_VERSION:
        return state
    return upgrade(state)


def upgrade(state: Any) -> LeadState:
    """The state in this version's layout: version 2 as it is, version 1 (nested maps) flattened.

    Raises :class:`StateError` for anything else (a state written by a newer leadflow, or not a state at all).
    """
    if not isinstance(state, dict) or "lead_id" not in state:
        msg = f"stored state is not a leadflow lead state (a JSON object with 'v' and 'lead_id'): {str(state)[:80]!r}"
        raise StateError(msg)
    version = state.get("v")
    if version == STATE_VERSION:
        return state
    if version != 1:
        msg = (
            f"stored state of lead {state['lead_id']!r} has layout version {version!r}; this leadflow reads "
            f"versions 1 and {STATE_VERSION}: run the leadflow that wrote it, or a newer one"
        )
        raise StateError(msg, lead_id=str(state["lead_id"]))
    out = new_state(state["lead_id"], state.get("first_seen_at", 0.0))
    out["status_since"] = None  # not kept by layout 1: unknown, not the first event's time
    out.update((k, v) for k, v in (state.get("profile") or {}).items() if v is not None and k in PROFILE_FIELDS)
    out.update(("custom." + k, v) for k, v in (state.get("custom") or {}).items() if v is not None)
    total = 0
    for kind, (count, last_at) in (state.get("activity") or {}).items():
        keys = _ACTIVITY_KEYS.get(kind) or _activity_keys(kind)
        out[keys[0]], out[keys[1]] = count, last_at
        total += count
    out["activity.total"] = total
    out[HISTORY_FACT] = state.get("history") or {}  # a state stored before the history existed has none
    out.update((key, state[key]) for key in _CARRIED if key in state)
    return out


def profile_of(state: Mapping[str, Any]) -> dict[str, Any]:
    """The lead's standard fields that are set (the status is kept as its own fact, not here)."""
    return {name: state[name] for name in PROFILE_FIELDS if name != "status" and state.get(name) is not None}


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


Position = tuple[str, int, int, float | None]
"""Where a record was read: topic, partition, offset and its timestamp (epoch seconds, None if it has none)."""


def redelivered(state: LeadState, position: Position | None) -> bool:
    """Whether the record read at ``position`` is at or before the last one applied to the state (``source``) in
    the same partition: a record that Kafka delivers again after a crash, however many events ago.

    The event ids in ``recent`` catch a repeat within the last N events, whoever sent it; the position catches
    any redelivery of the partition, beyond that window. A record at a lower offset with a later timestamp than
    the one applied is not taken for a redelivery (the topic was deleted and created again: its offsets started
    over); the event ids still guard it.
    """
    source = state.get("source")
    if source is None or position is None:
        return False
    topic, partition, offset, timestamp = position
    if offset > source[2] or partition != source[1] or topic != source[0]:
        return False
    applied_at = source[3]
    return timestamp is None or applied_at is None or timestamp <= applied_at


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
        count_key, last_key = keys[0], keys[1]
        old = state.get(count_key)
        if old is None:
            state[count_key] = count
            state[last_key] = now
            moved = True
        else:
            state[count_key] = old + count
            last_at = state.get(last_key)
            moved = last_at is None or now > last_at
            if moved:
                state[last_key] = now
        state["activity.total"] += count
        day = int(now // _DAY)
        buckets = state[HISTORY_FACT].get(kind)
        if buckets is not None and buckets[-1][0] == day:  # another activity the same day
            buckets[-1][1] += count
        elif buckets is not None and buckets[-1][0] < day and buckets[0][0] > day - HISTORY_DAYS:
            buckets.append([day, count])  # a new day, and nothing falls out of the history yet
        else:
            _count_day(state[HISTORY_FACT], kind, day, count)
        last = state["last_activity_at"]
        if last is None or now > last:
            state["last_activity_at"] = now
            changed = keys[2] if moved else keys[3]
        else:
            changed = keys[4] if moved else keys[5]
    remember(state, digest, now, window)
    return changed


def remember(state: LeadState, digest: str, now: float, window: int) -> None:
    """Note an applied event: its digest among the recent ones (at most ``window``), the count and the time."""
    recent: str = state["recent"] + " " + digest
    keep = window * (_DIGEST_CHARS + 1)
    state["recent"] = recent if len(recent) <= keep else recent[-keep:]
    state["events"] += 1
    state["updated_at"] = now


def _count_day(history: dict[str, list[list[int]]], kind: str, day: int, count: int) -> None:
    """Add ``count`` to the type's bucket of ``day``, dropping buckets that fall out of the kept history."""
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
    for name in fields.model_fields_set:
        if name == "custom":
            continue
        value = getattr(fields, name)
        if name == "status":
            if state["status"] != value:
                state["status"] = value
                changed.add(name)
        elif value is None:
            if state.pop(name, None) is not None:
                changed.add(name)
        elif state.get(name) != value:
            state[name] = value
            changed.add(name)
    if fields.custom is not None:
        for key, value in fields.custom.items():
            path = "custom." + key
            if value is None:
                if state.pop(path, None) is not None:
                    changed.add(path)
            elif state.get(path, _ABSENT) != value or type(state[path]) is not type(value):
                state[path] = value
                changed.add(path)


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
    event: LeadUpserted | LeadActivity | LeadMatched | None,
    changed: Collection[str] = _NOTHING_CHANGED,
) -> dict[str, object]:
    """The flat ``path -> value`` view of a state that rules and the model read: a copy of the state, plus

    ``days_since_last_activity``, ``days_in_status``, ``event.type``, ``event.activity_type``, ``now`` (the event's
    time, or the wake-up time of a decision that time triggers: ``event`` None) and what the
    event changed (``changed``, as returned by :func:`apply_event`, under ``CHANGED_FACT``). The paths: the
    standard lead fields that are set, ``custom.<name>``, ``activity.<type>.count`` and ``.last_at``,
    ``activity.total``, ``last_activity_at``, ``status``, ``points``, ``score``, ``converted``, and the per-day
    history for the rules' windows (``HISTORY_FACT``). A field that is not set is absent (read as None).
    """
    facts: dict[str, object] = state.copy()
    facts.pop("wake_at", None)  # the state's own bookkeeping, which a batch sets after a lead's last event only
    age_facts(facts, now)
    if event is None:
        facts["event.type"] = None
        facts["event.activity_type"] = None
    else:
        facts["event.type"] = event.event_type
        facts["event.activity_type"] = event.activity.type if isinstance(event, LeadActivity) else None
    facts[CHANGED_FACT] = changed
    return facts


def age_facts(facts: MutableMapping[str, object], now: float) -> None:
    """Set the facts that depend on the time alone: ``now``, ``days_since_last_activity`` and ``days_in_status``
    (from ``last_activity_at`` and ``status_since`` among ``facts``); None where the time they count from is unknown."""
    facts["now"] = now
    last: Any = facts.get("last_activity_at")
    facts["days_since_last_activity"] = None if last is None else max(0.0, (now - last) / _DAY)
    since: Any = facts.get("status_since")
    facts["days_in_status"] = None if since is None else max(0.0, (now - since) / _DAY)
