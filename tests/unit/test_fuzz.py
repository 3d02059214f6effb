"""Fuzz properties: whatever producers send, the parser and the core answer with a decision or a dead letter.

500 examples each in ``make test``; ``make fuzz`` runs this file with the ``fuzz`` profile (12,000 each, 108,000
in all, see tests/conftest.py). The properties:

- the parser is total: any bytes, any JSON, any valid event with hostile bytes spliced in, give an event or an
  EventError with a bounded reason; and every event the contract accepts parses, and survives a round trip;
- the core is total and exact over streams of valid and hostile records of a few leads: every record is one
  decision, one dead letter or one counted replay; the outputs match the contract; a lead converts at most once;
  the same records give the same bytes however they are cut into batches, with or without the state cache;
  and delivering them all again sends nothing (every event is recognised as a replay);
- the readers of the other topics (routing requests, SLA notices, feedback, accounts, control) are total.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.hostile import HOSTILE, PLACES, hostile_records, inject, valid_events
from worker.batch import Record, process_batch
from worker.core import Engine
from worker.exceptions import DEAD_LETTER_REASONS, EventError
from worker.lead.events import Decision, LeadActivity, LeadUpserted, OpportunityCreated, RoutingDecision
from worker.lead.parse import parse_event
from worker.routing import Target
from worker.routing.flow import route_batch
from worker.routing.sla import accepted_notice, sla_batch
from worker.rules import default_ruleset_path, load_ruleset, parse_ruleset
from worker.scoring import default_model_path, load_model
from worker.stream.accounts import decode_account
from worker.stream.control import decode_record
from worker.tools.schema import _EXAMPLE_ROUTING

MODEL = load_model(default_model_path())
ENGINES = {
    "default": Engine(load_ruleset(default_ruleset_path()), MODEL),
    "routed": Engine(
        parse_ruleset(
            default_ruleset_path().read_text(encoding="utf-8").replace("      queue: Inbound AEs\n", "")
            + _EXAMPLE_ROUTING,
            "default + routing",
        ),
        MODEL,
    ),
}
DECIDED_AT = 1_800_000_000.0


def _reason_ok(exc: EventError) -> None:
    assert exc.reason in DEAD_LETTER_REASONS
    assert str(exc)


# --- the parser --------------------------------------------------------------------------------------------------


@given(key=st.none() | st.binary(max_size=20), value=st.none() | st.binary(max_size=2000))
def test_the_parser_is_total_on_any_bytes(key: bytes | None, value: bytes | None) -> None:
    try:
        parse_event(key, value)
    except EventError as exc:
        _reason_ok(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


@given(
    event=valid_events(st.just("L1")),
    place=st.sampled_from(PLACES),
    replacement=st.sampled_from(sorted(HOSTILE)).map(HOSTILE.__getitem__)
    | json_values.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS) if _dumpable(v) else b"null"),
    cut=st.none() | st.integers(min_value=0, max_value=400),
)
def test_the_parser_is_total_on_valid_events_with_anything_spliced_in(
    event: dict[str, Any], place: tuple[str, ...], replacement: bytes, cut: int | None
) -> None:
    value = inject(event, place, replacement)
    if cut is not None:
        value = value[:cut]
    try:
        parsed = parse_event(b"L1", value)
    except EventError as exc:
        _reason_ok(exc)
    else:
        _round_trips(parsed)


def _dumpable(value: object) -> bool:
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # NaN is JSON's null to orjson, but a lone surrogate is not encodable
        return False
    return True


def _round_trips(event: LeadUpserted | LeadActivity) -> None:
    """What the worker accepted, written back as JSON, parses to the same event (the contract is closed)."""
    again = parse_event(event.lead_id.encode(), event.model_dump_json(exclude_unset=True).encode())
    assert again == event


@given(event=valid_events())
def test_every_event_the_contract_accepts_parses_and_round_trips(event: dict[str, Any]) -> None:
    parsed = parse_event(event["lead_id"].encode(), orjson.dumps(event))
    _round_trips(parsed)


# --- the core ----------------------------------------------------------------------------------------------------

_LEADS = st.sampled_from(["L1", "L2", "L3"])


@st.composite
def _records(draw: st.DrawFn) -> list[tuple[bytes | None, bytes | None, bool]]:
    """A stream of (key, value, valid) over three leads: valid events (some replayed) and hostile records."""
    out: list[tuple[bytes | None, bytes | None, bool]] = []
    seed = draw(st.integers(min_value=0, max_value=2**32))
    hostile = iter(hostile_records(random.Random(seed), 40))
    for _ in range(draw(st.integers(min_value=1, max_value=30))):
        roll = draw(st.integers(min_value=0, max_value=9))
        if roll < 3:
            _, key, value = next(hostile)  # lead L1's, or keyed wrongly on purpose
            out.append((key, value, False))
        elif roll < 4 and any(valid for _, _, valid in out):  # a replay: the same record again
            out.append(draw(st.sampled_from([r for r in out if r[2]])))
        else:
            event = draw(valid_events(_LEADS))
            event["event_id"] = (
                draw(st.sampled_from(["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8"])) + event["lead_id"]
            )
            out.append((event["lead_id"].encode(), orjson.dumps(event), True))
    return out


def _batches(records: list[Record], cuts: list[int]) -> list[list[Record]]:
    points = sorted({c % len(records) for c in cuts} - {0})
    edges = [0, *points, len(records)]
    return [records[a:b] for a, b in itertools.pairwise(edges)]


def _run(engine: Engine, batches: list[list[Record]], store: dict[str, bytes], cache: dict[str, Any] | None) -> Any:
    decisions, opportunities, routing, requests, dead, duplicates = [], [], [], [], [], 0
    for batch in batches:
        result = process_batch(engine, batch, store.get, DECIDED_AT, cache, drift_sample=3)
        store.update(result.states)
        decisions += result.decisions
        opportunities += result.opportunities
        routing += result.routing_decisions
        requests += result.route_requests
        dead += [(record.offset, error.reason) for record, error in result.dead_letters]
        duplicates += result.duplicates
        for state in result.states.values():
            assert orjson.loads(state)["v"] == 2
    return decisions, opportunities, routing, requests, dead, duplicates


@given(
    stream=_records(),
    cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=5),
    use_cache=st.booleans(),
    engine_name=st.sampled_from(sorted(ENGINES)),
)
def test_the_core_is_total_exact_and_the_same_however_the_stream_is_cut(
    stream: list[tuple[bytes | None, bytes | None, bool]], cuts: list[int], use_cache: bool, engine_name: str
) -> None:
    engine = ENGINES[engine_name]
    records = [Record(key, value, "leads", 0, i, 1_700_000_000.0 + i) for i, (key, value, _) in enumerate(stream)]
    whole = _run(engine, [records], {}, None)
    store: dict[str, bytes] = {}
    cut = _run(engine, _batches(records, cuts), store, {} if use_cache else None)
    assert cut == whole  # byte for byte, however the batches fall

    decisions, opportunities, routing, requests, dead, duplicates = whole
    assert len(decisions) + len(dead) + duplicates == len(records)
    dead_offsets = {offset for offset, _ in dead}
    for offset, (_, _, valid) in enumerate(stream):
        assert (offset in dead_offsets) != valid, f"record {offset}: valid={valid}, dead={offset in dead_offsets}"
    assert all(reason != "processing_error" for _, reason in dead)
    for key, value in decisions:
        decision = Decision.model_validate_json(value)
        assert key == decision.lead_id.encode()
    for key, value in opportunities:
        assert key == OpportunityCreated.model_validate_json(value).opportunity_id.encode()
    for _, value in routing:
        RoutingDecision.model_validate_json(value)
    converted = Counter(orjson.loads(v)["lead_id"] for _, v in opportunities)
    converted.update(orjson.loads(v)["opportunity"]["lead_id"] for _, v in requests)
    assert all(n == 1 for n in converted.values())

    again = _run(engine, [records], store, None)  # everything delivered again after the states were stored
    assert again[0] == again[1] == again[2] == again[3] == []
    assert again[4] == dead
    assert again[5] == len(records) - len(dead)


# --- the other topics --------------------------------------------------------------------------------------------

_anything = st.none() | st.binary(max_size=300) | json_values.filter(_dumpable).map(orjson.dumps)
_REQUEST_KEYS = ["kind", "request_id", "attempt", "pool", "opportunity", "requested_at", "exclude", "route", "hops"]


@st.composite
def _objects(draw: st.DrawFn, keys: list[str]) -> bytes:
    """A JSON object over ``keys`` with arbitrary values (some of them right by chance)."""
    data = {k: draw(json_values) for k in draw(st.lists(st.sampled_from(keys), unique=True))}
    return orjson.dumps(data) if _dumpable(data) else b"{}"


class _Rec:
    def __init__(self, key: bytes | None, value: bytes | None) -> None:
        self.key, self.value, self.topic, self.partition, self.offset, self.timestamp = key, value, "t", 0, 0, None


@given(values=st.lists(_anything | _objects(_REQUEST_KEYS), max_size=8))
def test_routing_requests_are_total(values: list[bytes | None]) -> None:
    routing = ENGINES["routed"].ruleset.routing
    out = route_batch(
        routing,
        [_Rec(b"account-executives", v) for v in values],
        {}.get,
        lambda *_: None,
        1.8e9,
        "v",
        Target("queue", "q"),
    )
    for _, error in out.dead_letters:
        _reason_ok(error)


@given(
    values=st.lists(
        _anything
        | _objects(["kind", "opportunity_id", "attempt", "pool", "member", "deadline", "tried", "opportunity"]),
        max_size=8,
    )
)
def test_sla_notices_are_total(values: list[bytes | None]) -> None:
    out, _ = sla_batch([_Rec(b"o", v) for v in values], {}.get)
    for _, error in out.dead_letters:
        _reason_ok(error)


@given(
    key=st.none() | st.binary(max_size=20),
    value=_anything | _objects(["event_type", "opportunity_id", "accepted_by", "occurred_at", "kind", "name", "text"]),
)
@pytest.mark.parametrize("reader", ["feedback", "account", "control"])
def test_feedback_account_and_control_readers_are_total(reader: str, key: bytes | None, value: bytes | None) -> None:
    try:
        if reader == "feedback":
            accepted_notice(key, value)
        elif reader == "account":
            decode_account(key, value)
        else:
            decode_record(value, 0)
    except EventError as exc:
        _reason_ok(exc)
