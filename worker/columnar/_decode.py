"""The columnar engine's decoder: a batch's lead activities read by msgspec's strict C decoder, the reference's
parser (pydantic, :func:`worker.lead.parse.parse_event`) for every other record.

Validating a record with pydantic costs about 3 µs an event, a ninth of what the whole core spends on one; the
columnar design of issue #21 has no room for it. msgspec decodes and checks a lead activity in C against the same
contract written a second time below (:class:`FastActivity`): with the checks it leaves to Python, in about 40 %
of pydantic's time (2.0 µs against 4.75 in one run; docs/PERFORMANCE.md, eleventh pass). The fast path only
ever *accepts less*: whatever it does not take (another event type, a time outside the plain RFC 3339 form it
knows, a key that is not the lead id, anything it refuses) goes to pydantic, which then accepts it or says why not
exactly as the reference does. What it accepts, pydantic accepts with the same values (checked by a property test
over generated and mangled records, ``tests/unit/test_columnar_decode.py``), so a dead letter's reason is always
the reference's.

Where the two contracts are written differently:

- the texts' patterns are checked after decoding (msgspec's own pattern checks cost 1.4 µs an event: more than
  the rest of the decoding), an id first as printable ASCII, an activity type once per type; they end in ``\\Z``:
  Python's ``$`` also matches before a final newline, the Rust engine's (pydantic's) does not;
- the time is taken only in the form ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)`` with ASCII digits (hours to 23,
  minutes and seconds to 59, in the offset too), in the years 0002 to 9998 (so that no offset moves its instant
  out of the years 1 to 9999 the contract allows), and read by :meth:`datetime.datetime.fromisoformat`; a date
  that does not exist makes it fall back;
- the ``event_type`` is required (as the tag of a union: msgspec takes a lone tagged type without its tag);
- a duplicated key is decoded each time it appears (the last one wins, as in pydantic), so a duplicate that
  pydantic would drop but msgspec refuses makes the record fall back, never the other way round.

An event read here is a :class:`FastActivity`, not a :class:`~worker.lead.events.LeadActivity`: it has the
attributes the columnar block reads (and :func:`~worker.lead.state.apply_event` merges it as an activity), and
where an event goes to the core itself (a conversion, the reference's per-lead path) it is read again by
pydantic (:func:`reference_events`, :func:`reference_event`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from worker.batch import RecordLike, _Event, _parsed
from worker.exceptions import EventError
from worker.lead.events import ACTIVITY_TYPE, NO_CONTROLS
from worker.lead.parse import parse_event

__all__ = ["FastActivity", "fast_parsed", "reference_event", "reference_events"]

_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\Z"
)  # fromisoformat takes an offset's minutes up to 99, pydantic up to 59
_Id = Annotated[str, Meta(min_length=1, max_length=200)]  # and NO_CONTROLS, checked by _printable


class _Activity(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """:class:`worker.lead.events.Activity`."""

    type: str  # ACTIVITY_TYPE, checked by _known_type
    detail: Annotated[str, Meta(max_length=2000)] | None = None
    count: Annotated[int, Meta(ge=1, le=1_000_000)] = 1


class FastActivity(msgspec.Struct, tag_field="event_type", tag="lead.activity", forbid_unknown_fields=True):
    """:class:`worker.lead.events.LeadActivity` as msgspec reads it; ``occurred_at`` is any JSON value as read,
    made a time by :func:`_fast` (or the record falls back)."""

    event_type: ClassVar[str] = "lead.activity"
    event_id: _Id
    occurred_at: Any
    lead_id: _Id
    activity: _Activity
    schema_version: Literal[1] = 1


class _Untaken(msgspec.Struct, tag_field="event_type", tag="", forbid_unknown_fields=True):
    """A second tagged type, so that msgspec requires the tag: decoding one tagged type alone, it takes a record
    with no ``event_type`` at all (pydantic refuses it). Nothing decoded as this is taken."""


_decode = msgspec.json.Decoder(FastActivity | _Untaken).decode
_time = re.compile(_TIME).match


def _whole_text(pattern: str) -> str:
    """The contract's pattern for Python's ``re``: its final ``$`` (the end of the text, to pydantic's Rust engine)
    made ``\\Z`` (Python's ``$`` also matches before a final newline)."""
    if not pattern.endswith("$"):
        msg = f"the contract's pattern {pattern!r} does not end in $"
        raise AssertionError(msg)
    return pattern[:-1] + r"\Z"


_no_controls = re.compile(_whole_text(NO_CONTROLS)).search
_type = re.compile(_whole_text(ACTIVITY_TYPE)).search
_TYPES: dict[str, bool] = {}
_MAX_TYPES = 10_000  # activity types are open-ended: a producer must not grow this without bound


def _printable(text: str) -> bool:
    """Whether an id has none of the characters the contract refuses (``NO_CONTROLS``): printable ASCII has none
    (two C calls), anything else is matched by the pattern."""
    return (text.isascii() and text.isprintable()) or _no_controls(text) is not None


def _known_type(kind: str) -> bool:
    """Whether an activity type is of the contract's form, remembered per type (a few types, many events)."""
    good = _TYPES.get(kind)
    if good is None:
        good = _type(kind) is not None
        if len(_TYPES) < _MAX_TYPES:
            _TYPES[kind] = good
    return good


_from_iso = dt.datetime.fromisoformat


def _fast(key: bytes | None, value: bytes | None, max_bytes: int) -> FastActivity | None:
    """The record as a lead activity, or None when the fast path does not take it (pydantic then reads it)."""
    if value is None or len(value) > max_bytes:
        return None
    try:
        event = _decode(value)
    except (msgspec.MsgspecError, RecursionError):  # RecursionError: nested deeper than msgspec goes
        return None
    if event.__class__ is not FastActivity:
        return None
    text = event.occurred_at
    if text.__class__ is not str or not _time(text) or not "0001" < text[:4] < "9999":
        return None
    if key != event.lead_id.encode() or not _known_type(event.activity.type):
        return None
    if not _printable(event.event_id) or not _printable(event.lead_id):
        return None
    try:
        event.occurred_at = _from_iso(text)
    except ValueError:  # a day or an offset that does not exist
        return None
    return event


def fast_parsed(
    records: Sequence[RecordLike], indexes: list[int], max_bytes: int, failed: dict[int, EventError]
) -> list[tuple[int, Any]]:
    """:func:`worker.batch._parsed` with lead activities read by the fast path: the valid events among one key's
    records, the others in ``failed`` with the reference's reason."""
    events: list[tuple[int, Any]] = []
    slow: list[int] = []
    for index in indexes:
        record = records[index]
        event = _fast(record.key, record.value, max_bytes)
        if event is None:
            slow.append(index)
        events.append((index, event))
    if not slow:
        return events
    parsed = dict(_parsed(records, slow, max_bytes, failed))
    return [(index, parsed[index] if event is None else event) for index, event in events if index not in failed]


def reference_event(record: RecordLike, event: Any, max_bytes: int) -> _Event:
    """The event as the reference reads it (pydantic's object): a :class:`FastActivity` read again."""
    if event.__class__ is FastActivity:
        return parse_event(record.key, record.value, max_bytes)
    return event  # type: ignore[no-any-return]


def reference_events(
    records: Sequence[RecordLike], events: list[tuple[int, Any]], max_bytes: int, failed: dict[int, EventError]
) -> list[tuple[int, _Event]]:
    """A lead's events as the reference reads them, for its per-lead path (what pydantic refuses, which the fast
    path never takes, would go to ``failed``)."""
    if not any(event.__class__ is FastActivity for _, event in events):
        return events
    return _parsed(records, [index for index, _ in events], max_bytes, failed)
