"""A lead written by hand (profile, custom fields, activity counts with times, status...) turned into the state
the core keeps, and the checks that report a badly written one with its line."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from worker.conditions import Loc, Source
from worker.lead import ids
from worker.lead.events import KNOWN_ACTIVITY_TYPES, Activity, LeadActivity, LeadFields, LeadUpserted
from worker.lead.state import HISTORY_FACT, LeadState, new_state

__all__ = [
    "DEFAULT_AT",
    "Doc",
    "EventDoc",
    "GivenDoc",
    "activities",
    "build_event",
    "build_state",
    "check_activity_type",
    "check_fields",
    "validate",
]

DEFAULT_AT = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.UTC)
"""The event time when a case does not give one."""

ActivityType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Scalar = str | int | float | bool


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ActivityDoc(Doc):
    """Activities of one type the lead already had: how many, and when the last one was."""

    count: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    days_ago: Annotated[float, Field(ge=0)] | None = None
    at: AwareDatetime | None = None


class GivenDoc(Doc):
    """The lead before the event."""

    profile: dict[str, Any] = Field(default_factory=dict)
    custom: dict[str, Scalar] = Field(default_factory=dict)
    activity: dict[ActivityType, Any] = Field(default_factory=dict)
    """Per type: a count (the last one at the event's time) or an :class:`ActivityDoc`; see :func:`activities`."""
    status: str | None = None
    converted: bool = False
    points: float = 0.0


class EventDoc(Doc):
    """The event being decided: a profile change (``upsert``) or an activity."""

    upsert: dict[str, Any] | None = None
    activity: ActivityType | None = None
    count: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    at: AwareDatetime | None = None


def _plain(err: Mapping[str, Any]) -> str:
    value = err.get("input")
    if err["type"] == "string_pattern_mismatch":
        return f"an activity type is lower case letters, digits and '_', like 'demo_request', got {value!r}"
    if err["type"].startswith("datetime"):
        return f"needs a time with its offset, like '2026-01-15T12:00:00Z', got {value!r}"
    msg = str(err["msg"])
    return f"{msg[:1].lower()}{msg[1:]}, got {value!r}"


def validate(model: type[Doc], raw: object, loc: Loc, src: Source, what: str) -> Any:
    """``raw`` validated as ``model``, or None with every problem recorded at its line."""
    if not isinstance(raw, dict):
        src.add(loc, f"{what} must be a mapping of keys, got {raw!r}")
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        meant: set[str] = set()  # a missing key that an unknown key probably meant is not reported twice
        for err in errors:
            where = tuple(err["loc"])
            if err["type"] == "extra_forbidden":
                key = str(where[-1])
                close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
                meant.update(close)
                src.add((*loc, *where), f"unknown key {key!r} in {what}", suggestion=close[0] if close else None)
        for err in errors:
            where = tuple(err["loc"])
            if err["type"] == "extra_forbidden" or (err["type"] == "missing" and where[-1] in meant):
                continue
            if err["type"] == "missing":
                src.add(loc, f"{what} is missing the required key {where[-1]!r}")
            else:
                src.add((*loc, *where), _plain(err))
    return None


def check_fields(fields: Mapping[str, Any], loc: Loc, src: Source, *, nested: bool) -> dict[str, Any] | None:
    """Lead fields checked like a producer's ``lead.upserted`` ones; ``nested`` allows ``custom`` and ``status``
    (in an event), otherwise they belong next to the profile (in a given lead)."""
    misplaced = [] if nested else [key for key in fields if key in ("custom", "status")]
    for key in misplaced:
        src.add((*loc, key), f"put {key!r} next to 'profile', not inside it")
    try:
        LeadFields.model_validate({k: v for k, v in fields.items() if k not in misplaced})
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            where = tuple(err["loc"])
            if err["type"] == "extra_forbidden":
                key = str(where[-1])
                names = [n for n in LeadFields.model_fields if nested or n not in ("custom", "status")]
                close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
                hint = close[0] if close else f"custom.{key}"
                msg = f"unknown lead field {key!r} (org-specific fields go under 'custom')"
                src.add((*loc, *where), msg, suggestion=hint)
            else:
                src.add((*loc, *where), _plain(err))
        return None
    return None if misplaced else dict(fields)


def activities(given: GivenDoc, loc: Loc, src: Source) -> dict[str, ActivityDoc] | None:
    """The given activities, each a count or a mapping ``{count, days_ago | at}``; None with problems."""
    out: dict[str, ActivityDoc] = {}
    for kind, raw in given.activity.items():
        where = (*loc, kind)
        if not check_activity_type(kind, where, src):
            continue
        if raw.__class__ is int and raw < 1:
            src.add(where, f"an activity count is 1 or more (leave the type out for none), got {raw!r}")
            continue
        if raw.__class__ is int:
            raw = {"count": raw}
        if not isinstance(raw, dict):
            src.add(where, f"an activity is a count (1 or more) or a mapping {{count, days_ago}}, got {raw!r}")
            continue
        item = validate(ActivityDoc, raw, where, src, f"activity {kind!r}")
        if item is not None and item.days_ago is not None and item.at is not None:
            src.add(where, f"activity {kind!r}: give 'days_ago' or 'at', not both")
        elif item is not None:
            out[kind] = item
    return out if len(out) == len(given.activity) else None


def check_activity_type(kind: str, loc: Loc, src: Source) -> bool:
    """False (with a problem) for a type one typo away from a standard one, such as ``demo_requests``."""
    if kind in KNOWN_ACTIVITY_TYPES:
        return True
    close = difflib.get_close_matches(kind, KNOWN_ACTIVITY_TYPES, n=1, cutoff=0.8)
    if close:
        src.add(loc, f"unknown activity type {kind!r}", suggestion=close[0])
        return False
    return True


def build_state(
    given: GivenDoc, profile: Mapping[str, Any], acts: Mapping[str, ActivityDoc], lead_id: str, at: dt.datetime
) -> LeadState:
    """The state a lead described by ``given`` would have just before an event at ``at``."""
    now = at.timestamp()
    state = new_state(lead_id, now)
    state.update((k, v) for k, v in profile.items() if v is not None)
    state.update(("custom." + k, v) for k, v in given.custom.items())
    last: float | None = None
    total = 0
    for kind, item in acts.items():
        when = now
        if item.at is not None:
            when = item.at.timestamp()
        elif item.days_ago is not None:
            when = now - item.days_ago * 86400.0
        state[f"activity.{kind}.count"] = item.count
        state[f"activity.{kind}.last_at"] = when
        total += item.count
        # the per-day history that windowed counts read: all of them on the day of the last one
        state[HISTORY_FACT][kind] = [[int(when // 86400.0), item.count]]
        last = when if last is None else max(last, when)
    state["activity.total"] = total
    state["last_activity_at"] = last
    state["status"] = given.status
    state["points"] = given.points
    if given.converted:
        state["converted"] = True
        state["opportunity_id"] = ids.opportunity_id(lead_id)
        state["converted_at"] = now
    return state


def build_event(
    event: EventDoc, upsert: Mapping[str, Any] | None, lead_id: str, event_id: str
) -> LeadUpserted | LeadActivity:
    """The lead event an :class:`EventDoc` describes (``upsert`` holds its checked fields)."""
    at = event.at or DEFAULT_AT
    if event.activity is not None:
        return LeadActivity(
            event_id=event_id,
            event_type="lead.activity",
            occurred_at=at,
            lead_id=lead_id,
            activity=Activity(type=event.activity, count=event.count),
        )
    return LeadUpserted(
        event_id=event_id,
        event_type="lead.upserted",
        occurred_at=at,
        lead_id=lead_id,
        lead=LeadFields.model_validate(dict(upsert or {})),
    )
