"""What careless producers and attackers put on a topic, for the robustness tests and the fuzz target.

A catalogue of hostile JSON values (``HOSTILE``), the places of a lead event they can go (``PLACES``), records
that are wrong as a whole (``whole_record_hostility``), and hypothesis strategies of valid lead events across
everything the contract accepts (``valid_events``). The unit tests, ``make fuzz`` and the integration test that
sends thousands of hostile records to a real worker all draw from here.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import orjson
from hypothesis import strategies as st

__all__ = [
    "HOSTILE",
    "PLACES",
    "event",
    "hostile_records",
    "inject",
    "valid_events",
    "whole_record_hostility",
    "wrong_types",
]

_MARK = "@@hostile@@"


def _deep(opening: bytes, leaf: bytes, closing: bytes, depth: int = 10_000) -> bytes:
    return opening * depth + leaf + closing * depth


HOSTILE: dict[str, bytes] = {
    "deep_arrays": _deep(b"[", b"", b"]"),
    "deep_objects": _deep(b'{"a":', b"1", b"}"),
    "deep_mixed": _deep(b'[{"a":', b"1", b"}]", 5_000),
    "beyond_float": b"1e400",
    "beyond_float_negative": b"-1e400",
    "integer_of_5000_digits": b"9" * 5000,
    "integer_of_65_bits": b"36893488147419103232",
    "nan_literal": b"NaN",
    "infinity_literal": b"Infinity",
    "negative_infinity_literal": b"-Infinity",
    "lone_high_surrogate": b'"a\\ud800b"',
    "lone_low_surrogate": b'"\\udc00"',
    "raw_control_character": b'"a\x01b"',
    "raw_newline_in_string": b'"a\nb"',
    "string_of_100kb": b'"' + b"x" * 100_000 + b'"',
    "array_of_100000": b"[" + b",".join([b"1"] * 100_000) + b"]",
    "object_of_20000_keys": b"{" + b",".join(b'"k%d":1' % i for i in range(20_000)) + b"}",
    "truncated": b'{"a": [1, 2',
    "empty_object": b"{}",
    "null": b"null",
    "boolean": b"true",
    "not_utf8_in_string": b'"\xff\xfe"',
}
"""Hostile JSON values (raw bytes, some not valid JSON at all), by what they are."""

PLACES: list[tuple[str, ...]] = [
    (),  # the whole record
    ("schema_version",),
    ("event_id",),
    ("event_type",),
    ("occurred_at",),
    ("lead_id",),
    ("lead",),
    ("lead", "company"),
    ("lead", "email"),
    ("lead", "annual_revenue"),
    ("lead", "number_of_employees"),
    ("lead", "status"),
    ("lead", "custom"),
    ("lead", "custom", "budget"),
    ("activity",),
    ("activity", "type"),
    ("activity", "count"),
    ("activity", "detail"),
]
"""Where a hostile value can go in a lead event (paths into an upsert's or an activity's JSON)."""


def event(
    lead_id: str = "L1",
    event_id: str = "e1",
    kind: str = "lead.upserted",
    occurred_at: str = "2026-11-02T09:00:00Z",
    **body: Any,
) -> dict[str, Any]:
    """A valid lead event as JSON-ready data: an upsert (``lead=...``) or an activity (``activity=...``)."""
    out: dict[str, Any] = {
        "schema_version": 1,
        "event_id": event_id,
        "event_type": kind,
        "occurred_at": occurred_at,
        "lead_id": lead_id,
    }
    if kind == "lead.upserted":
        out["lead"] = body.get("lead", {"company": "Acme", "custom": {"budget": 1000}})
    else:
        out["activity"] = body.get("activity", {"type": "page_view", "detail": "/pricing", "count": 2})
    return out


def inject(data: dict[str, Any], place: tuple[str, ...], raw: bytes) -> bytes:
    """``data`` as JSON with the raw bytes ``raw`` at ``place`` (created where missing; () replaces it all)."""
    if not place:
        return raw
    data = orjson.loads(orjson.dumps(data))  # a deep copy
    node = data
    for part in place[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[place[-1]] = _MARK
    return orjson.dumps(data).replace(orjson.dumps(_MARK), raw, 1)


def wrong_types() -> Iterator[tuple[tuple[str, ...], bytes]]:
    """For every field of the contract, values of the wrong type (a count as text or a boolean, a time as a
    Unix integer, a text as a number...)."""
    texts = [("event_id",), ("lead_id",), ("lead", "company"), ("lead", "email"), ("lead", "status")]
    texts += [("lead", "title"), ("lead", "country"), ("activity", "type"), ("activity", "detail")]
    for place in texts:
        for raw in (b"1", b"true", b"[]", b"{}", b"1.5"):
            yield place, raw
    for place in [("lead", "annual_revenue"), ("lead", "number_of_employees"), ("activity", "count")]:
        for raw in (b'"3"', b"true", b"[3]", b"{}"):
            yield place, raw
    for raw in (b"1.5", b"2.0"):
        yield ("lead", "number_of_employees"), raw
        yield ("activity", "count"), raw
    for raw in (b"1700000000", b"1700000000.5", b'"yesterday"', b'"2026-11-02"', b'"2026-11-02T09:00:00"', b"true"):
        yield ("occurred_at",), raw
    for raw in (b'"1"', b"true", b"1.0", b"2"):
        yield ("schema_version",), raw
    for raw in (b"1", b'"lead.deleted"', b"null"):
        yield ("event_type",), raw
    for raw in (b"[]", b'"x"', b"1"):
        yield ("lead",), raw
        yield ("lead", "custom"), raw
        yield ("activity",), raw
    for raw in (b"[1]", b'{"a": 1}'):
        yield ("lead", "custom", "budget"), raw


def whole_record_hostility(rng: random.Random) -> tuple[str, bytes | None, bytes | None]:
    """One record that is wrong as a whole: ``(class, key, value)``."""
    good = orjson.dumps(event("L1", f"w{rng.randrange(10**9)}"))
    choice = rng.randrange(9)
    if choice == 0:
        return "not_utf8", b"L1", bytes(rng.randrange(128, 256) for _ in range(rng.randrange(1, 64)))
    if choice == 1:
        return "truncated", b"L1", good[: rng.randrange(1, len(good) - 1)]
    if choice == 2:
        return "tombstone", b"L1", None
    if choice == 3:
        return "key_mismatch", b"someone-else", good
    if choice == 4:
        return "no_key", None, good
    if choice == 5:  # the same key twice: the last wins, and this last lead_id does not match the record's key
        return "duplicate_keys", b"L1", good[:-1] + b',"lead_id":"L2"}'
    if choice == 6:
        return "bidi_in_id", b"L1", good.replace(b'"lead_id":"L1"', b'"lead_id":"L1\\u202e"')
    if choice == 7:
        return "control_in_id", b"L1", good.replace(b'"event_id":"w', b'"event_id":"\\u0007w')
    return "array", b"L1", b"[" + good + b"]"


def hostile_records(rng: random.Random, n: int) -> list[tuple[str, bytes | None, bytes | None]]:
    """``n`` hostile records ``(class, key, value)`` for lead ``L1``'s partition: a hostile value at a random
    place of a valid event, a wrong type, or a record wrong as a whole; none of them a valid lead event."""
    types = list(wrong_types())
    out = []
    for i in range(n):
        roll = rng.random()
        kind = rng.choice(["lead.upserted", "lead.activity"])
        base = event("L1", f"h{i}", kind)
        if roll < 0.5:
            name = rng.choice(sorted(HOSTILE))
            place = rng.choice(PLACES)
            if not _fatal(name, place, kind):
                place = ()
            out.append((f"{name}@{'.'.join(place) or 'record'}", b"L1", inject(base, place, HOSTILE[name])))
        elif roll < 0.8:
            place, raw = rng.choice(types)
            if place[0] in ("lead", "activity") and place[0] not in base:
                base = event("L1", f"h{i}", "lead.upserted" if place[0] == "lead" else "lead.activity")
            out.append((f"wrong_type@{'.'.join(place)}", b"L1", inject(base, place, raw)))
        else:
            out.append(whole_record_hostility(rng))
    return out


_HARMLESS = {
    ("empty_object", ("lead",)),
    ("empty_object", ("lead", "custom")),
    ("boolean", ("lead", "custom", "budget")),
}
"""Hostile values that are valid where they go: an empty ``lead`` or ``custom``, a boolean custom value."""


def _fatal(name: str, place: tuple[str, ...], kind: str) -> bool:
    """Whether the hostile value ``name`` at ``place`` of an event of ``kind`` makes the event invalid."""
    if place[:1] == ("lead",) and kind != "lead.upserted":
        return True  # a 'lead' object on an activity: a field the contract does not have
    if place[:1] == ("activity",) and kind != "lead.activity":
        return True
    if (name, place) in _HARMLESS:
        return False
    # null clears an optional field (and is refused for the activity's type and count, which are not optional)
    return not (name == "null" and len(place) > 1 and place not in (("activity", "type"), ("activity", "count")))


# --- valid events across everything the contract accepts ---------------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_ID = st.text(
    st.characters(
        exclude_categories=("Cs", "Cc"),
        exclude_characters="\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
    ),
    min_size=1,
    max_size=12,
)
_OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
# hypothesis takes naive bounds and attaches the zone: UTC instants from 0001-01-02 to 9999-12-30
_INSTANTS = st.datetimes(
    min_value=dt.datetime(1, 1, 2),  # noqa: DTZ001
    max_value=dt.datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)
_TIMES = st.tuples(_INSTANTS, _OFFSETS).map(lambda t: t[0].astimezone(t[1]).isoformat())
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_LEAD_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "first_name": st.none() | _TEXT,
        "company": st.none() | _TEXT,
        "email": st.none() | st.sampled_from(["a@acme.example", "bob@gmail.com", "x@", "", "ü@ü.example"]) | _TEXT,
        "title": st.none() | st.sampled_from(["VP Sales", "CEO", "intern"]) | _TEXT,
        "status": st.none() | st.sampled_from(["Open", "Working", "Nurture", "Qualified"]) | _TEXT,
        "lead_source": st.none() | st.sampled_from(["Web", "Referral", "Purchased List"]) | _TEXT,
        "industry": st.none() | _TEXT,
        "annual_revenue": st.none() | st.floats(min_value=0, max_value=1e18),
        "number_of_employees": st.none() | st.integers(min_value=0, max_value=10**9),
        "country": st.none() | st.sampled_from(["US", "Germany", "GB"]) | _TEXT,
        "website": st.none() | _TEXT,
        "custom": st.none() | st.dictionaries(_ID, _SCALARS, max_size=5),
    },
)
_ACTIVITY_TYPES = st.sampled_from(["page_view", "demo_request", "email_click", "webinar_attended", "unsubscribe"])
_ACTIVITY = st.fixed_dictionaries(
    {"type": _ACTIVITY_TYPES | st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)},
    optional={"count": st.integers(min_value=1, max_value=1_000_000), "detail": st.none() | _TEXT},
)


def valid_events(lead_ids: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Lead events the contract accepts, across all of it: any printable id, times from year 1 to 9999 with any
    offset, every field at its bounds."""
    leads = lead_ids if lead_ids is not None else _ID

    def build(parts: tuple[str, str, str, bool, dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
        lead_id, event_id, when, is_upsert, fields, activity = parts
        if is_upsert:
            return event(lead_id, event_id, "lead.upserted", when, lead=fields)
        return event(lead_id, event_id, "lead.activity", when, activity=activity)

    return st.tuples(leads, _ID, _TIMES, st.booleans(), _LEAD_FIELDS, _ACTIVITY).map(build)
