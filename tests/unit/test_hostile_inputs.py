"""Every class of bad input a producer can send, on every topic the worker reads: a reason, never a crash.

The classes are the issue's list: not UTF-8; not JSON; JSON nested 10,000 levels deep (arrays, objects, at the top
and inside ``custom``); numbers beyond float range and integers of thousands of digits; NaN/Infinity literals;
lone surrogates and control characters; duplicate keys; wrong types in every field; strings of 100 KB in every
field; arrays of 100,000 elements; tombstones; a key that does not match; records over the size limit. Garbage
headers are the transport's (tests/unit/stream/test_fetch.py); the worker's handling of all of it is in the integration
test tests/integration/test_hostile.py.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import orjson
import pytest

from tests.hostile import HOSTILE, PLACES, _fatal, event, hostile_records, inject, wrong_types
from worker.batch import Record, process_batch
from worker.core import Engine
from worker.exceptions import DEAD_LETTER_REASONS, EventError
from worker.lead.events import Decision
from worker.lead.parse import parse_event
from worker.routing import Target
from worker.routing.flow import route_batch
from worker.routing.sla import accepted_notice, sla_batch
from worker.rules import default_ruleset_path, load_ruleset
from worker.scoring import default_model_path, load_model
from worker.stream.accounts import decode_account
from worker.stream.control import decode_record

KINDS = ("lead.upserted", "lead.activity")


def _refused(key: bytes | None, value: bytes | None) -> EventError:
    with pytest.raises(EventError) as info:
        parse_event(key, value)
    assert info.value.reason in DEAD_LETTER_REASONS
    assert info.value.reason != "processing_error"
    assert str(info.value)
    return info.value


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_value_anywhere_in_a_lead_event_is_refused_with_a_reason(name: str) -> None:
    for kind in KINDS:
        for place in PLACES:
            if _fatal(name, place, kind):
                _refused(b"L1", inject(event("L1", "e1", kind), place, HOSTILE[name]))


@pytest.mark.parametrize(("place", "raw"), list(wrong_types()), ids=lambda v: str(v))
def test_a_wrong_type_in_any_field_is_refused_not_coerced(place: tuple[str, ...], raw: bytes) -> None:
    kind = "lead.activity" if place[0] == "activity" else "lead.upserted"
    error = _refused(b"L1", inject(event("L1", "e1", kind), place, raw))
    assert error.reason in {"schema_violation", "unsupported_schema_version", "unknown_event_type", "missing_lead_id"}


@pytest.mark.parametrize(
    ("place", "raw", "reason", "words"),
    [
        ((), HOSTILE["deep_arrays"], "not_json", "recursion limit"),
        ((), HOSTILE["deep_objects"], "not_json", "recursion limit"),
        (("lead", "custom", "budget"), HOSTILE["deep_arrays"], "not_json", "recursion limit"),
        (("lead", "custom", "budget"), HOSTILE["deep_objects"], "not_json", "recursion limit"),
        (("lead", "annual_revenue"), b"1e400", "schema_violation", "finite number"),
        (("lead", "custom", "budget"), b"-1e400", "schema_violation", "not finite"),
        (("lead", "number_of_employees"), b"9" * 5000, "not_json", "number out of range"),
        (("lead", "custom", "budget"), b"36893488147419103232", "schema_violation", "64-bit range"),
        (("lead", "annual_revenue"), b"NaN", "schema_violation", "finite number"),
        (("lead", "annual_revenue"), b"Infinity", "schema_violation", "finite number"),
        (("lead", "custom", "budget"), b"NaN", "schema_violation", "not finite"),
        (("lead", "company"), b'"\\ud800"', "not_json", "hex escape"),
        (("lead", "company"), b'"a\x01b"', "not_json", "control character"),
        (("lead_id",), b'"L1\\u0000"', "schema_violation", "lead_id: String should match pattern"),
        (("event_id",), b'"e\\u202e1"', "schema_violation", "event_id: String should match pattern"),
        (("lead", "custom"), HOSTILE["array_of_100000"], "schema_violation", "lead.custom"),
        (("activity", "count"), b'"3"', "schema_violation", "activity.count: Input should be a valid integer"),
        (("activity", "count"), b"true", "schema_violation", "activity.count: Input should be a valid integer"),
        (("occurred_at",), b"1700000000", "schema_violation", "occurred_at: Input should be a valid datetime"),
        (("occurred_at",), b'"9999-12-31T23:00:00-01:00"', "schema_violation", "less than or equal"),
        (("occurred_at",), b'"0001-01-01T00:30:00+01:00"', "schema_violation", "greater than or equal"),
        (("schema_version",), b"true", "unsupported_schema_version", "True"),
    ],
)
def test_each_class_of_bad_input_is_named(place: tuple[str, ...], raw: bytes, reason: str, words: str) -> None:
    kind = "lead.activity" if place[:1] == ("activity",) else "lead.upserted"
    error = _refused(b"L1", inject(event("L1", "e1", kind), place, raw))
    assert error.reason == reason
    assert words in str(error)


STRING_FIELDS = [
    ("event_id",),
    ("lead_id",),
    ("event_type",),
    ("occurred_at",),
    *[("lead", f) for f in ("first_name", "last_name", "company", "email", "phone", "title", "status")],
    *[("lead", f) for f in ("lead_source", "rating", "industry", "country", "state", "city", "website", "owner_id")],
    ("lead", "custom", "budget"),
    ("activity", "type"),
    ("activity", "detail"),
]


@pytest.mark.parametrize("place", STRING_FIELDS, ids=".".join)
def test_a_string_of_100_kb_is_refused_in_every_field(place: tuple[str, ...]) -> None:
    kind = "lead.activity" if place[0] == "activity" else "lead.upserted"
    error = _refused(b"L1", inject(event("L1", "e1", kind), place, HOSTILE["string_of_100kb"]))
    assert len(str(error)) < 3000  # the message names the field; it does not repeat 100 KB


def test_a_string_of_100_kb_as_a_custom_key_is_refused() -> None:
    value = orjson.dumps(event("L1", "e1", lead={"custom": {"k" * 100_000: 1}}))
    _refused(b"L1", value)


def test_whole_records_that_are_wrong_are_refused_with_their_reason() -> None:
    good = orjson.dumps(event("L1", "e1"))
    assert _refused(b"L1", None).reason == "tombstone"
    assert _refused(b"L1", b"\xff\xfe\x00").reason == "not_utf8"
    assert _refused(b"L1", b"[" + good + b"]").reason == "not_an_object"
    assert _refused(b"L2", good).reason == "key_mismatch"
    assert _refused(None, good).reason == "key_mismatch"
    with pytest.raises(EventError) as info:
        parse_event(b"L1", good, max_bytes=len(good) - 1)
    assert info.value.reason == "too_large"


def test_duplicate_keys_take_the_last_value_as_every_json_library_does() -> None:
    base = orjson.dumps(event("L1", "e1", lead={"company": "First"}))
    twice = base.replace(b'"company":"First"', b'"company":"First","company":"Last"')
    parsed = parse_event(b"L1", twice)
    assert parsed.lead.company == "Last"  # type: ignore[union-attr]
    # and a repeated lead_id is checked against the key like any other: the last one counts
    assert _refused(b"L1", base[:-1] + b',"lead_id":"L2"}').reason == "key_mismatch"


def test_control_characters_escaped_in_texts_are_data_and_come_out_escaped() -> None:
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    value = orjson.dumps(event("L1", "e1", lead={"company": "a\x00b\u202ec", "custom": {"note": "\x1b[31m"}}))
    result = process_batch(engine, [Record(b"L1", value, "leads", 0, 0)], {}.get, 1.0)
    assert result.dead_letters == []
    ((_, decision),) = result.decisions
    (state,) = result.states.values()
    Decision.model_validate_json(decision)
    assert orjson.loads(state)["company"] == "a\x00b\u202ec"


@pytest.mark.parametrize(
    "when",
    ["9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00-14:00"],
)
def test_every_time_the_contract_accepts_is_decided_even_a_conversion_at_the_end_of_the_calendar(when: str) -> None:
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    lead = {"company": "Acme", "title": "VP Sales", "number_of_employees": 500, "annual_revenue": 5e7}
    events = [
        event("L1", "e1", "lead.upserted", when, lead=lead),
        event("L1", "e2", "lead.activity", when, activity={"type": "demo_request"}),
        event("L1", "e3", "lead.activity", when, activity={"type": "webinar_attended"}),
    ]
    records = [Record(b"L1", orjson.dumps(e), "leads", 0, i) for i, e in enumerate(events)]
    result = process_batch(engine, records, {}.get, 1.0)
    assert result.dead_letters == []
    assert len(result.decisions) == 3
    if when.startswith("9999") and result.opportunities:
        (_, opportunity), *_ = result.opportunities
        assert orjson.loads(opportunity)["close_date"] <= "9999-12-31"


def test_generated_hostile_records_are_never_valid_events() -> None:
    """The generator the integration test and the fuzz target use makes only records the worker must refuse."""
    for name, key, value in hostile_records(random.Random(7), 3000):
        try:
            parse_event(key, value)
        except EventError as exc:
            assert exc.reason != "processing_error", name
        else:
            pytest.fail(f"{name}: a hostile record parsed as a valid event: {value!r:.200}")


# --- one lead's failure is its own ---------------------------------------------------------------------------------


class _FailingModel:
    """The default model, but scoring lead ``lead_id`` raises (a bug that shows for one lead only)."""

    def __init__(self, lead_id: str) -> None:
        self.model = load_model(default_model_path())
        self.lead_id = lead_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def score(self, facts: dict[str, object]) -> Any:
        if facts.get("lead_id") == self.lead_id and facts.get("activity.demo_request.count"):
            msg = "a bug that only this lead's demo request shows"
            raise RuntimeError(msg)
        return self.model.score(facts)


def _records(events: list[dict[str, Any]]) -> list[Record]:
    return [Record(e["lead_id"].encode(), orjson.dumps(e), "leads", 0, i) for i, e in enumerate(events)]


def test_an_exception_deciding_one_event_dead_letters_that_event_naming_its_lead_and_the_rest_goes_on() -> None:
    engine = Engine(load_ruleset(default_ruleset_path()), _FailingModel("L-bug"))  # type: ignore[arg-type]
    events = [
        event("L-ok", "a1"),
        event("L-bug", "b1"),
        event("L-bug", "b2", "lead.activity", activity={"type": "demo_request"}),
        event("L-ok", "a2", "lead.activity", activity={"type": "page_view"}),
        event("L-bug", "b3", "lead.activity", activity={"type": "page_view"}),
    ]
    stored: dict[str, bytes] = {}
    result = process_batch(engine, _records(events), stored.get, 1.0)
    ((record, error),) = result.dead_letters
    assert record.offset == 2
    assert error.reason == "processing_error"
    assert "lead 'L-bug' event 'b2'" in str(error)
    assert "RuntimeError: a bug that only this lead's demo request shows" in str(error)
    decided = [orjson.loads(v)["event_id"] for _, v in result.decisions]
    assert decided == ["a1", "b1", "a2", "b3"]  # b3 decided on the state after b1: b2 left no trace
    state = orjson.loads(result.states["L-bug"])
    assert state["activity.page_view.count"] == 1
    assert "activity.demo_request.count" not in state


def test_a_state_that_does_not_decode_dead_letters_only_that_leads_events() -> None:
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    stored = {"L-broken": b'{"v": 2, "lead_id": "L-broken", "recent": 7', "L-newer": b'{"v": 99, "lead_id": "L-newer"}'}
    events = [event("L-broken", "x1"), event("L-ok", "o1"), event("L-newer", "n1"), event("L-broken", "x2")]
    result = process_batch(engine, _records(events), stored.get, 1.0)
    failed = {record.offset: error for record, error in result.dead_letters}
    assert sorted(failed) == [0, 2, 3]
    assert all(error.reason == "processing_error" for error in failed.values())
    assert "lead 'L-broken'" in str(failed[0])
    assert "stored state cannot be read" in str(failed[0])
    assert "layout version 99" in str(failed[2])
    assert [orjson.loads(v)["event_id"] for _, v in result.decisions] == ["o1"]


def test_a_state_that_would_grow_over_the_limit_refuses_the_event_that_grows_it() -> None:
    engine = dataclasses.replace(
        Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path())), max_event_bytes=60_000
    )
    events = [event("L1", "s0")]
    for i in range(1, 40):  # 40 events of 190 custom fields of 40-character texts each: about 9 KB of state each
        fields = {f"f{i}_{k}": "x" * 40 for k in range(190)}
        events.append(event("L1", f"s{i}", lead={"custom": fields}))
    events.append(event("L1", "last", "lead.activity", activity={"type": "page_view"}))
    result = process_batch(engine, _records(events), {}.get, 1.0)
    assert result.dead_letters, "the state never grew over the limit: make the events bigger"
    assert {error.reason for _, error in result.dead_letters} == {"state_too_large"}
    assert "lead 'L1'" in str(result.dead_letters[0][1])
    assert len(result.states["L1"]) <= 30_000  # half of the limit on records
    assert orjson.loads(result.decisions[-1][1])["event_id"] == "last"  # the lead goes on deciding


def test_a_replayed_event_sends_nothing_and_is_counted() -> None:
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    events = [event("L1", "e1"), event("L1", "e2", "lead.activity", activity={"type": "demo_request"})]
    stored: dict[str, bytes] = {}
    first = process_batch(engine, _records(events), stored.get, 1.0)
    stored.update(first.states)
    again = process_batch(engine, _records(events), stored.get, 2.0)
    assert len(first.decisions) == 2
    assert again.decisions == []
    assert again.opportunities == []
    assert again.duplicates == 2
    assert again.states == {}


# --- the other topics ---------------------------------------------------------------------------------------------

_REQUEST = {
    "kind": "route",
    "request_id": "opp-1#1",
    "attempt": 1,
    "pool": "ae",
    "route": {"via": "rule", "ref": "r"},
    "opportunity": {"opportunity_id": "opp-1", "lead_id": "L1"},
    "requested_at": 1_800_000_000.0,
    "event_time": None,
    "exclude": [],
}
_NOTICE = {
    "kind": "assigned",
    "opportunity_id": "opp-1",
    "pool": "ae",
    "member": "ann",
    "attempt": 1,
    "deadline": 1_800_000_100.0,
    "tried": ["ann"],
    "route": {},
    "opportunity": {"opportunity_id": "opp-1", "lead_id": "L1"},
}
_FEEDBACK = {"event_type": "opportunity.accepted", "opportunity_id": "opp-1", "accepted_by": "ann"}
_ACCOUNT = {"name": "Acme", "owner_id": "005", "website": "acme.example", "domains": ["acme.de"]}
_CONTROL = {"kind": "ruleset", "name": "r.yaml", "text": "version: '1'\n"}


class _Rec:
    def __init__(self, key: bytes | None, value: bytes | None) -> None:
        self.key, self.value, self.topic, self.partition, self.offset, self.timestamp = key, value, "t", 0, 0, None


def _hostile_values_of(data: dict[str, Any]) -> list[bytes]:
    """Every hostile value at every field of ``data`` (and as the whole record), and every field wrong-typed."""
    out = list(HOSTILE.values())
    for name in data:
        out += [inject(data, (name,), raw) for raw in HOSTILE.values()]
        out += [inject(data, (name,), raw) for raw in (b"1", b'"x"', b"true", b"[]", b"{}", b"-1", b"1e308")]
    return out


def test_routing_requests_never_raise_and_never_change_a_pool_for_a_bad_one() -> None:
    from tests.unit.test_route_flow import _engine

    routing = _engine().ruleset.routing
    values = [*_hostile_values_of(_REQUEST), None]
    out = route_batch(
        routing, [_Rec(b"ae", v) for v in values], {}.get, lambda *_: None, 1.8e9, "v", Target("queue", "q")
    )
    good = orjson.dumps(_REQUEST)
    assert len(out.dead_letters) + len(out.routing_decisions) == len(values)
    assert all(error.reason in DEAD_LETTER_REASONS for _, error in out.dead_letters)
    assert good not in {r.value for r, _ in out.dead_letters}


def test_sla_notices_and_feedback_never_raise() -> None:
    values = [*_hostile_values_of(_NOTICE), None]
    out, _ = sla_batch([_Rec(b"opp-1", v) for v in values], {}.get)
    assert all(error.reason in DEAD_LETTER_REASONS for _, error in out.dead_letters)
    assert out.dead_letters, "no notice was refused"
    for value in [*_hostile_values_of(_FEEDBACK), None]:
        try:
            accepted_notice(b"k", value)
        except EventError as exc:
            assert exc.reason in DEAD_LETTER_REASONS


def test_account_and_control_records_never_raise_anything_but_a_reasoned_refusal() -> None:
    for value in [*_hostile_values_of(_ACCOUNT), b"\xff"]:
        for key in (b"001", b"\xff\xfe", b"k" * 5000, None):
            try:
                decode_account(key, value)
            except EventError as exc:
                assert exc.reason in DEAD_LETTER_REASONS
    for value in [*_hostile_values_of(_CONTROL), None]:
        try:
            decode_record(value, 1)
        except EventError as exc:
            assert exc.reason in DEAD_LETTER_REASONS


def test_a_hostile_ruleset_or_model_on_the_control_topic_is_refused_naming_the_limit() -> None:
    from worker.artifacts import compile_artifact
    from worker.exceptions import ModelError, RulesetError

    with pytest.raises(RulesetError, match="nested deeper than 64 levels"):
        compile_artifact("ruleset", "version: '1'\nscoring: " + "[" * 10_000 + "]" * 10_000, "deep.yaml")
    with pytest.raises(RulesetError, match="YAML syntax error"):
        compile_artifact("ruleset", "\x00\xff", "binary.yaml")
    with pytest.raises(ModelError, match="not JSON"):
        compile_artifact("model", "[" * 10_000 + "]" * 10_000, "deep.json")


def test_the_hostile_generator_covers_every_class() -> None:
    names = {name.split("@")[0] for name, _, _ in hostile_records(random.Random(1), 3000)}
    assert set(HOSTILE) <= names
    assert {"not_utf8", "truncated", "tombstone", "key_mismatch", "no_key", "duplicate_keys", "wrong_type"} <= names
