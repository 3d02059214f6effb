"""The columnar engine's decoder (worker/columnar/_decode.py): what its fast path takes, pydantic (the reference's
parser) takes with the same values, whatever the bytes; and it does take the plain lead activities producers send."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from worker.batch import Record
from worker.columnar._decode import FastActivity, _fast, fast_parsed
from worker.exceptions import EventError
from worker.lead.events import LeadActivity
from worker.lead.parse import parse_event

_PLAIN = {
    "schema_version": 1,
    "event_id": "L1-1",
    "event_type": "lead.activity",
    "occurred_at": "2026-09-01T06:45:56+00:00",
    "lead_id": "L1",
    "activity": {"type": "page_view", "count": 3, "detail": "/customers"},
}

_texts = st.one_of(
    st.sampled_from(["L1", "x", "", "L1\n", "L1\r", "a\u202eb", "a\x85", "\ud7ff", "é", "L" * 200, "L" * 201]),
    st.text(max_size=8),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=4),
)
_times = st.one_of(
    st.sampled_from(
        [
            "2026-09-01T06:45:56+00:00",
            "2026-09-01T06:45:56Z",
            "2026-09-01T06:45:56z",
            "2026-09-01t06:45:56Z",
            "2026-09-01 06:45:56Z",
            "2026-09-01T06:45:56.5+02:00",
            "2026-09-01T06:45:56.123456-05:30",
            "2026-09-01T06:45:56.1234567Z",
            "2026-09-01T06:45:56-00:00",
            "2026-09-01T06:45:56+23:59",
            "2026-09-01T06:45:56+24:00",
            "2026-09-01T06:45:56+01:60",
            "2026-09-01T06:45:56",
            "2026-02-29T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2026-09-01T24:00:00Z",
            "2026-09-01T23:59:60Z",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:30:00+01:00",
            "0002-01-01T00:30:00+01:00",
            "9999-12-31T23:59:59Z",
            "9998-12-31T23:59:59-23:59",
            "2026-09-01T06:45:56+0200",
            "2026-9-01T06:45:56Z",
            "２０２６-09-01T06:45:56Z",
            "2026-09-01T06:45:56Z\n",
        ]
    ),
    st.builds(
        lambda d, off, frac: d.strftime("%Y-%m-%dT%H:%M:%S") + frac + off,
        st.datetimes(),  # naive, years 1 to 9999: the offset is written after it
        st.sampled_from(["Z", "+00:00", "+14:00", "-12:30", "+05:45"]),
        st.sampled_from(["", ".0", ".123", ".999999"]),
    ),
    st.integers(),
    st.none(),
)
_counts = st.one_of(
    st.integers(min_value=-2, max_value=3),
    st.sampled_from([1_000_000, 1_000_001, 2**63, 2**64 + 1, 1.0, 2.5, True, "3", None]),
)
_types = st.sampled_from(["page_view", "x", "a" * 64, "a" * 65, "Page_view", "page_view\n", "1x", "", "ü"])
_details = st.one_of(st.none(), st.sampled_from(["", "d" * 2000, "d" * 2001, "\x00", "é" * 2000]), st.text(max_size=5))


@st.composite
def _records(draw: st.DrawFn) -> tuple[bytes | None, bytes | None, int]:
    """A lead activity's record as a careless producer might send it: fields changed, dropped, added or given
    twice, spaced or escaped differently, keyed by something else."""
    event: dict[str, object] = json.loads(json.dumps(_PLAIN))
    activity: dict[str, object] = event["activity"]  # type: ignore[assignment]
    for name, strategy in (
        ("event_id", _texts),
        ("lead_id", _texts),
        ("occurred_at", _times),
        ("schema_version", st.sampled_from([1, 2, 1.0, "1", True, None])),
        ("event_type", st.sampled_from(["lead.activity", "lead.upserted", "lead.erased", "Lead.activity", 1])),
    ):
        if draw(st.integers(0, 9)) == 0:
            event[name] = draw(strategy)
    for name, strategy in (("type", _types), ("count", _counts), ("detail", _details)):
        if draw(st.integers(0, 6)) == 0:
            activity[name] = draw(strategy)
    for container in (event, activity):
        if draw(st.integers(0, 9)) == 0:
            container.pop(draw(st.sampled_from(sorted(container))), None)
        if draw(st.integers(0, 9)) == 0:
            container[draw(st.sampled_from(["extra", "lead", "activity", "count"]))] = draw(st.integers(0, 2))
    pairs = list(event.items())
    if draw(st.booleans()):
        pairs = draw(st.permutations(pairs))
    if pairs and draw(st.integers(0, 6)) == 0:  # a key given twice: the last one counts
        name, _ = draw(st.sampled_from(pairs))
        pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(st.one_of(_texts, _times, st.integers(0, 2)))))
    spaced = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :")]))
    ascii_only = draw(st.booleans())
    body = spaced[0].join(
        json.dumps(name) + spaced[1] + json.dumps(value, ensure_ascii=ascii_only, separators=spaced)
        for name, value in pairs
    )
    value = ("{" + body + "}" + draw(st.sampled_from(["", "", "", " ", "\n", "x"]))).encode("utf-8", "surrogatepass")
    lead_id = event.get("lead_id")
    own = lead_id if isinstance(lead_id, str) else "L1"
    key = draw(st.sampled_from([own, own, own, own, "L1", "other", None]))
    encoded = None if key is None else key.encode("utf-8", "surrogatepass")
    sent = draw(st.sampled_from([value] * 9 + [None]))
    return encoded, sent, draw(st.sampled_from([1024 * 1024] * 9 + [len(value) - 1]))


_DEEP = orjson.dumps(_PLAIN)[:-1] + b',"extra":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
"""Nested deeper than msgspec goes (it raises RecursionError, not its own error)."""


def _same(fast: FastActivity, reference: LeadActivity) -> None:
    assert (fast.event_id, fast.lead_id, fast.schema_version, fast.event_type) == (
        reference.event_id,
        reference.lead_id,
        reference.schema_version,
        reference.event_type,
    )
    assert (fast.activity.type, fast.activity.count, fast.activity.detail) == (
        reference.activity.type,
        reference.activity.count,
        reference.activity.detail,
    )
    assert fast.occurred_at == reference.occurred_at
    assert fast.occurred_at.utcoffset() == reference.occurred_at.utcoffset()
    assert fast.occurred_at.isoformat() == reference.occurred_at.isoformat()
    assert orjson.dumps(fast.occurred_at) == orjson.dumps(reference.occurred_at)
    assert fast.occurred_at.timestamp() == reference.occurred_at.timestamp()


@given(_records())
@example((b"L1", orjson.dumps(_PLAIN), 1024 * 1024))
@example((b"L1", _DEEP, 2**20))
@example((b"L1", orjson.dumps({**_PLAIN, "event_id": "e\n"}), 2**20))
@example((b"L1", orjson.dumps({**_PLAIN, "event_id": "e\u202e"}), 2**20))
@example((b"L1", orjson.dumps({**_PLAIN, "event_id": "e\x85"}), 2**20))
@example(("Lé".encode(), orjson.dumps({**_PLAIN, "lead_id": "Lé"}), 2**20))
@example((b"L1", orjson.dumps({**_PLAIN, "occurred_at": "0001-01-01T00:30:00+01:00"}), 2**20))  # before year 1
@example((b"L1", orjson.dumps({**_PLAIN, "occurred_at": "2026-09-01T06:45:56.1234567Z"}), 2**20))
@example((b"L1", orjson.dumps({**_PLAIN, "activity": {"type": "page_view", "detail": "d" * 2001}}), 2**20))
@example((b"L1", orjson.dumps({**_PLAIN, "activity": {"type": "Page_view"}}), 2**20))
@example((b"L1", orjson.dumps({**_PLAIN, "activity": {"type": "page_view\n"}}), 2**20))
def test_what_the_fast_path_takes_pydantic_takes_the_same(record: tuple[bytes | None, bytes | None, int]) -> None:
    key, value, max_bytes = record
    fast = _fast(key, value, max_bytes)
    if fast is None:
        return
    reference = parse_event(key, value, max_bytes)  # raises (and fails the test) if pydantic refuses it
    assert isinstance(reference, LeadActivity)
    _same(fast, reference)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"occurred_at": "2026-09-01T06:45:56Z"},
        {"occurred_at": "2026-09-01T06:45:56.250+02:00"},
        {"schema_version": None},  # dropped: the default
        {"activity": {"type": "email_open"}},
    ],
)
def test_the_fast_path_takes_plain_lead_activities(changes: dict[str, object]) -> None:
    event = {**_PLAIN, **changes}
    event = {name: value for name, value in event.items() if value is not None}
    value = orjson.dumps(event)
    fast = _fast(b"L1", value, 1024 * 1024)
    assert fast is not None
    reference = parse_event(b"L1", value)
    assert isinstance(reference, LeadActivity)
    _same(fast, reference)


def test_a_batch_keeps_its_order_and_the_references_reasons() -> None:
    upsert = {**_PLAIN, "event_type": "lead.upserted", "lead": {"email": "a@example.com"}, "event_id": "L1-0"}
    del upsert["activity"]
    values = [
        orjson.dumps(upsert),
        orjson.dumps(_PLAIN),
        b"not json",
        orjson.dumps({**_PLAIN, "event_id": "L1-2", "occurred_at": "2026-09-01 06:45:56Z"}),
        orjson.dumps({**_PLAIN, "event_id": "L1-3", "activity": {"type": "page_view", "count": 0}}),
    ]
    records = [Record(b"L1", value, "leads", 0, offset) for offset, value in enumerate(values)]
    failed: dict[int, EventError] = {}
    events = fast_parsed(records, list(range(len(records))), 1024 * 1024, failed)
    assert [index for index, _ in events] == [0, 1, 3]
    assert [type(event).__name__ for _, event in events] == ["LeadUpserted", "FastActivity", "LeadActivity"]
    assert {index: error.reason for index, error in failed.items()} == {2: "not_json", 4: "schema_violation"}
    for index, error in failed.items():
        with pytest.raises(EventError) as raised:
            parse_event(b"L1", values[index])
        assert str(raised.value) == str(error)
