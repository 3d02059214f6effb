"""The parser: every kind of bad input gets its own reason, and nothing it is fed can crash it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.exceptions import EventError
from worker.lead.events import LeadActivity, LeadUpserted
from worker.lead.parse import parse_event

GOOD = {
    "schema_version": 1,
    "event_id": "e-1",
    "event_type": "lead.activity",
    "occurred_at": "2026-11-01T10:00:00+02:00",
    "lead_id": "L1",
    "activity": {"type": "page_view"},
}


def _bytes(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_a_good_activity_parses_with_defaults() -> None:
    event = parse_event(b"L1", _bytes(GOOD))
    assert isinstance(event, LeadActivity)
    assert event.activity.count == 1
    assert event.occurred_at.utcoffset() is not None


def test_partial_upsert_keeps_track_of_explicit_nulls() -> None:
    value = {**GOOD, "event_type": "lead.upserted", "lead": {"company": "Acme", "phone": None}}
    del value["activity"]
    event = parse_event(b"L1", _bytes(value))
    assert isinstance(event, LeadUpserted)
    assert event.lead.model_fields_set == {"company", "phone"}


@pytest.mark.parametrize(
    ("key", "value", "reason", "words"),
    [
        (b"L1", b"\xff\xfe\x00", "not_utf8", "not UTF-8"),
        (b"L1", b"{not json", "not_json", "not JSON"),
        (b"L1", None, "tombstone", "tombstone"),
        (b"L1", b"[1, 2]", "not_an_object", "got list"),
        (b"L1", _bytes({**GOOD, "lead_id": None}), "missing_lead_id", "lead_id"),
        (b"L1", _bytes({**GOOD, "event_type": "lead.deleted"}), "unknown_event_type", "'lead.deleted'"),
        (b"L1", _bytes({**GOOD, "schema_version": 2}), "unsupported_schema_version", "schema_version 2"),
        (b"L1", _bytes({**GOOD, "occurred_at": "2026-11-01T10:00:00"}), "schema_violation", "occurred_at"),
        (b"L1", _bytes({**GOOD, "activity": {"type": "Page View"}}), "schema_violation", "activity.type"),
        (b"L1", _bytes({**GOOD, "surprise": 1}), "schema_violation", "surprise"),
        (b"L2", _bytes(GOOD), "key_mismatch", "'L2' does not match lead_id 'L1'"),
        (None, _bytes(GOOD), "key_mismatch", "None"),
    ],
)
def test_bad_input_is_named_precisely(key: bytes | None, value: bytes | None, reason: str, words: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(key, value)
    assert info.value.reason == reason
    assert words in str(info.value)


def test_values_over_the_limit_are_refused_before_parsing() -> None:
    value = _bytes({**GOOD, "activity": {"type": "page_view", "detail": "x" * 1500}})
    with pytest.raises(EventError) as info:
        parse_event(b"L1", value, max_bytes=1024)
    assert info.value.reason == "too_large"
    assert "LEADFLOW_MAX_EVENT_BYTES" in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_fail_with_a_reason(value: bytes) -> None:
    try:
        parse_event(b"L1", value)
    except EventError as exc:
        assert exc.reason
        assert str(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*GOOD.keys(), "lead", "x"]), json_values, max_size=8))
def test_arbitrary_json_objects_parse_or_fail_with_a_reason(obj: dict[str, object]) -> None:
    try:
        event = parse_event(b"L1", _bytes(obj))
    except EventError as exc:
        assert exc.reason in {
            "not_json",
            "not_an_object",
            "missing_lead_id",
            "unknown_event_type",
            "unsupported_schema_version",
            "schema_violation",
            "key_mismatch",
        }
    else:
        assert event.lead_id == "L1"
