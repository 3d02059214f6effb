"""The pure core: events and state in, decisions and opportunities out, without a broker."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, cast

import hypothesis
import hypothesis.strategies as hst
import orjson
import pytest

from tests.builders import T0, activity, upsert
from worker.batch import Record, process_batch
from worker.core import Engine, decide
from worker.lead.events import Decision, LeadActivity, LeadUpserted, OpportunityCreated
from worker.lead.parse import parse_event
from worker.lead.state import LeadState
from worker.rules import parse_ruleset
from worker.scoring import Model, default_model_path, load_model

RULES = """
version: "unit-1"
conversion:
  queue: Unassigned Leads
scoring:
  - id: demo
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 50
  - id: views
    per: activity.page_view.count
    points: 1
    max: 10
  - id: bounced
    when: {field: activity.email_bounced.count, op: gte, value: 1}
    points: -20
qualification:
  - id: unsubscribed
    when: {field: activity.unsubscribe.count, op: gte, value: 1}
    status: Unqualified
  - id: enterprise
    when:
      all:
        - {field: points, op: gte, value: 50}
        - {field: number_of_employees, op: gte, value: 1000}
    status: Qualified
    convert: true
    opportunity:
      stage: Proposal/Price Quote
      amount: {field: annual_revenue, multiply: 0.001}
      close_in_days: 60
      owner_id: "005-enterprise"
  - id: hot
    when: {field: points, op: gte, value: 50}
    status: Qualified
    convert: true
  - id: warm
    when: {field: points, op: gte, value: 5}
    status: Contacted
"""


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(parse_ruleset(RULES, "unit.yaml"), load_model(default_model_path()))


def run(
    engine: Engine, events: list[LeadUpserted | LeadActivity], decided_at: float = 1_800_000_000.0
) -> tuple[LeadState | None, list[Any]]:
    state: LeadState | None = None
    out = []
    for event in events:
        state, decided = decide(engine, state, event, decided_at)
        out.append(decided)
    return state, out


def test_a_hot_lead_converts_once_with_the_default_stage_and_the_conversion_queue(engine: Engine) -> None:
    state, out = run(
        engine,
        [
            upsert("e1", company="Acme", first_name="Ann", last_name="Lee", lead_source="Web"),
            activity("e2", "page_view", count=6),
            activity("e3", "demo_request", when="2026-11-04T23:30:00-05:00"),
            activity("e4", "meeting"),
            activity("e5", "demo_request"),
        ],
    )
    assert [d.decision["action"] for d in out] == ["none", "status_changed", "converted", "none", "none"]
    assert [d.decision["status"] for d in out] == ["Open", "Contacted", "Qualified", "Qualified", "Qualified"]
    assert [d.opportunity is not None for d in out] == [False, False, True, False, False]
    opp = out[2].opportunity
    assert opp is not None
    OpportunityCreated.model_validate(opp)
    assert opp["stage_name"] == "Prospecting"  # the conversion default: Salesforce's first stage
    assert opp["probability"] == 10
    assert opp["forecast_category"] == "Pipeline"
    assert opp["queue"] == "Unassigned Leads"
    assert opp["owner_id"] is None
    assert opp["amount"] is None
    assert opp["close_date"] == "2026-12-05"  # 04:30 UTC on Nov 5th + 30 days
    assert opp["name"] == "Acme - Web"
    assert state is not None
    assert state["converted"] is True
    assert out[4].decision["opportunity_id"] == opp["opportunity_id"]


def test_the_first_matching_qualification_rule_decides_stage_amount_and_owner(engine: Engine) -> None:
    _, out = run(
        engine,
        [
            upsert("e1", company="Globex", number_of_employees=5000, annual_revenue=40_000_000, owner_id="005-x"),
            activity("e2", "demo_request"),
        ],
    )
    opp = out[1].opportunity
    assert opp is not None
    assert opp["converted_by_rule"] == "enterprise"
    assert opp["stage_name"] == "Proposal/Price Quote"
    assert opp["probability"] == 75
    assert opp["amount"] == 40_000
    assert opp["expected_revenue"] == 30_000
    assert opp["owner_id"] == "005-enterprise"  # the rule's owner wins over the lead's owner
    assert opp["queue"] is None


def test_without_a_rule_owner_the_lead_owner_keeps_the_opportunity(engine: Engine) -> None:
    _, out = run(engine, [upsert("e1", company="Initech", owner_id="005-rep"), activity("e2", "demo_request")])
    opp = out[1].opportunity
    assert opp is not None
    assert opp["owner_id"] == "005-rep"
    assert opp["queue"] is None


def test_an_unsubscribe_disqualifies_and_never_converts(engine: Engine) -> None:
    _, out = run(
        engine, [upsert("e1", company="Umbrella"), activity("e2", "unsubscribe"), activity("e3", "demo_request")]
    )
    assert [d.decision["action"] for d in out] == ["none", "disqualified", "none"]
    assert out[2].decision["status"] == "Unqualified"
    assert all(d.opportunity is None for d in out)


def test_a_replayed_event_changes_nothing_and_keeps_its_decision_id(engine: Engine) -> None:
    state, out = run(engine, [upsert("e1", company="Acme"), activity("e2", "page_view", count=3)])
    assert state is not None
    before = orjson.dumps(state)
    state, again = decide(engine, state, activity("e2", "page_view", count=3), decided_at=1_800_000_100.0)
    assert orjson.dumps(state) == before
    assert again.duplicate is True
    assert again.decision["decision_id"] == out[1].decision["decision_id"]
    assert again.decision["points"] == out[1].decision["points"] == 3
    assert again.opportunity is None


def test_a_replay_of_the_converting_event_does_not_convert_twice(engine: Engine) -> None:
    events: list[LeadUpserted | LeadActivity] = [upsert("e1", company="Acme"), activity("e2", "demo_request")]
    state, out = run(engine, events)
    assert out[1].opportunity is not None
    for event in events:
        state, decided = decide(engine, state, event, decided_at=1_800_000_200.0)
        assert decided.opportunity is None
        assert decided.duplicate is True
        assert decided.decision["opportunity_id"] == out[1].opportunity["opportunity_id"]
        assert decided.decision["status"] == "Qualified"


def test_a_redelivery_beyond_the_event_id_window_sends_nothing(engine: Engine) -> None:
    """After a crash Kafka delivers the partition again from the last commit, which may lie further back than the
    event ids a lead's state remembers: the record's position still marks it as a replay."""
    narrow = dataclasses.replace(engine, dedupe_window=2)
    events = [upsert("e0", company="Acme"), *(activity(f"e{i}", "page_view") for i in range(1, 6))]
    events.append(activity("e6", "demo_request"))
    records = [_record(offset, b"L1", _bytes(event)) for offset, event in enumerate(events)]
    store: dict[str, bytes | None] = {}
    first = process_batch(narrow, records, store.get, 1.0)
    store.update(first.states)
    assert (len(first.decisions), len(first.opportunities)) == (7, 1)
    again = process_batch(narrow, records, store.get, 2.0)
    assert (again.decisions, again.opportunities, again.states) == ([], [], {})
    assert again.duplicates == 7


def test_a_record_elsewhere_or_from_a_topic_made_again_is_decided(engine: Engine) -> None:
    """Only a record at or before the last applied one in the same partition is a redelivery: the same offset in
    another partition, or a lower offset with a later timestamp (the topic was deleted and created again), is
    news."""
    store: dict[str, bytes | None] = {}
    first = process_batch(engine, [_record(5, b"L1", _bytes(upsert("e1", company="Acme")))], store.get, 1.0)
    store.update(first.states)
    moved = Record(b"L1", _bytes(activity("e2", "page_view")), "leads", 1, 5, timestamp=1_800_000_000.0)
    made_again = Record(b"L1", _bytes(activity("e3", "page_view")), "leads", 0, 0, timestamp=1_800_000_500.0)
    older = Record(b"L1", _bytes(activity("e4", "page_view")), "leads", 0, 4, timestamp=1_700_000_000.0)
    replayed = process_batch(engine, [older], store.get, 2.0)
    assert (replayed.decisions, replayed.duplicates) == ([], 1)
    out = process_batch(engine, [moved, made_again], store.get, 2.0)
    assert [orjson.loads(v)["event_id"] for _, v in out.decisions] == ["e2", "e3"]


def test_decisions_are_reproducible_and_match_the_contract(engine: Engine) -> None:
    events: list[LeadUpserted | LeadActivity] = [
        upsert("e1", company="Acme", title="VP Sales", lead_source="Referral", email="a@acme.example"),
        activity("e2", "email_click", count=2),
        activity("e3", "webinar_attended"),
    ]
    _, first = run(engine, events)
    _, second = run(engine, events)
    assert [d.decision for d in first] == [d.decision for d in second]
    for d in first:
        decision = Decision.model_validate(d.decision)
        assert 0 <= decision.score <= 1
        assert decision.ruleset_version.startswith("unit-1+")
        assert decision.model_version == engine.model.version
        assert len(decision.factors) <= engine.top_factors


def test_points_fall_with_negative_rules_and_caps_hold(engine: Engine) -> None:
    _, out = run(engine, [activity("e1", "page_view", count=40), activity("e2", "email_bounced")])
    assert out[0].decision["points"] == 10  # capped
    assert out[1].decision["points"] == -10


def _record(offset: int, key: bytes | None, value: bytes | None) -> Record:
    return Record(key, value, "leads", 0, offset, timestamp=1_800_000_000.0)


def _bytes(event: LeadUpserted | LeadActivity) -> bytes:
    return event.model_dump_json().encode()


def test_a_batch_sends_bad_records_to_dead_letters_and_carries_state_between_events(engine: Engine) -> None:
    records = [
        _record(0, b"L1", _bytes(upsert("e1", company="Acme"))),
        _record(1, b"L1", b"{oops"),
        _record(2, b"L1", _bytes(activity("e2", "demo_request"))),
        _record(3, b"L2", _bytes(activity("e3", "demo_request"))),  # key does not match lead_id L1
    ]
    result = process_batch(engine, records, lambda _lead: None, 1_800_000_000.0)
    assert [(r.offset, e.reason) for r, e in result.dead_letters] == [(1, "not_json"), (3, "key_mismatch")]
    decisions = [orjson.loads(v) for _, v in result.decisions]
    assert [d["event_id"] for d in decisions] == ["e1", "e2"]
    assert decisions[1]["action"] == "converted"
    assert len(result.opportunities) == 1
    assert set(result.states) == {"L1"}
    assert orjson.loads(result.states["L1"])["events"] == 2
    assert result.events_by_type == {"lead.upserted": 1, "lead.activity": 1}


@dataclasses.dataclass(frozen=True)
class _ExplodingModel:
    """A model that fails on one lead, to show a bug in one decision does not stop the batch."""

    inner: Model
    version: str = "exploding"

    def score(self, facts: dict[str, object]) -> Any:
        if facts.get("company") == "Boom":
            msg = "simulated scoring bug"
            raise RuntimeError(msg)
        return self.inner.score(facts)

    def factors(self, score: Any, facts: dict[str, object], top: int) -> Any:
        return self.inner.factors(score, facts, top)

    def __getattr__(self, name: str) -> Any:  # features, training...: the inner model's
        return getattr(self.inner, name)


def test_an_unexpected_error_dead_letters_the_event_and_leaves_the_state_as_it_was(engine: Engine) -> None:
    broken = dataclasses.replace(engine, model=cast(Model, _ExplodingModel(engine.model)))
    stored = {"L1": None}
    first = process_batch(broken, [_record(0, b"L1", _bytes(upsert("e1", company="Fine")))], stored.get, 1.0)
    before = first.states["L1"]
    second = process_batch(
        broken,
        [
            _record(1, b"L1", _bytes(upsert("e2", company="Boom"))),
            _record(2, b"L1", _bytes(activity("e3", "page_view"))),
        ],
        {"L1": before}.get,
        2.0,
    )
    ((record, error),) = second.dead_letters
    assert record.offset == 1
    assert error.reason == "processing_error"
    assert "simulated scoring bug" in str(error)
    state = orjson.loads(second.states["L1"])
    assert state["company"] == "Fine"  # the failed event left no trace
    assert state["activity.page_view.count"] == 1


def test_a_batch_of_interleaved_leads_gives_what_deciding_its_records_one_at_a_time_gives(engine: Engine) -> None:
    # the core decides a batch lead by lead (for speed) and lists its outputs in record order: the result must be
    # the same as deciding every record on its own, in order, whatever is mixed in
    from worker.scoring.training import generate

    broken = dataclasses.replace(engine, model=cast(Model, _ExplodingModel(engine.model)))
    data = generate(12, seed=5, start=T0, weeks=3)
    values = [orjson.dumps(e) for e in data.events[:150]]
    keys = [e["lead_id"].encode() for e in data.events[:150]]
    values[7], values[40] = b"{oops", b"\xff\xfe"  # not JSON, not UTF-8
    keys[60] = b"someone-else"  # a key that is not the lead id
    keys[90], values[90] = keys[30], values[30]  # a replay of an earlier event of the batch
    boom = dict(data.events[100], event_type="lead.upserted", lead={"company": "Boom"})
    boom.pop("activity", None)
    values[100] = orjson.dumps(boom)  # a scoring bug on this one event
    pairs = enumerate(zip(keys, values, strict=True))
    records = [Record(k, v, "leads", 0, i, timestamp=1_800_000_000.0 + i) for i, (k, v) in pairs]
    assert len({r.key for r in records[:50]}) > 5  # the leads' records are interleaved

    whole = process_batch(broken, records, {}.get, 5.0, drift_sample=3)
    store: dict[str, bytes] = {}
    parts = []
    for record in records:
        part = process_batch(broken, [record], store.get, 5.0, drift_sample=3)
        store.update(part.states)
        parts.append(part)

    def flat(name: str) -> list[Any]:
        return [item for part in parts for item in getattr(part, name)]

    assert whole.decisions == flat("decisions")
    assert whole.opportunities == flat("opportunities")
    assert [(r.offset, e.reason) for r, e in whole.dead_letters] == [
        (r.offset, e.reason) for r, e in flat("dead_letters")
    ]
    assert [r.offset for r, _ in whole.dead_letters] == [7, 40, 60, 100]
    assert whole.scores == flat("scores")
    assert whole.record_times == flat("record_times")
    assert whole.sampled_facts == flat("sampled_facts")
    assert whole.duplicates == sum(part.duplicates for part in parts) == 1
    assert whole.states == {lead: store[lead] for lead in whole.states}
    assert set(whole.states) == {k.decode() for k in keys if k != b"someone-else"}


def test_parse_and_core_agree_on_the_contract_examples(engine: Engine) -> None:
    from tests.unit.test_contract import SCHEMAS

    events = [
        parse_event(b"L-10492", (SCHEMAS / "examples" / f"{name}.json").read_bytes())
        for name in ("lead-upserted", "lead-activity")
    ]
    _, out = run(engine, events)
    for d in out:
        Decision.model_validate(d.decision)


def test_a_cached_state_is_used_kept_current_and_restored_after_an_error(engine: Engine) -> None:
    broken = dataclasses.replace(engine, model=cast(Model, _ExplodingModel(engine.model)))
    store: dict[str, bytes | None] = {}
    cache: dict[str, Any] = {}
    first = process_batch(broken, [_record(0, b"L1", _bytes(upsert("e1", company="Fine")))], store.get, 1.0, cache)
    store.update(first.states)
    assert cache["L1"] == orjson.loads(store["L1"] or b"null")

    def no_reads(_lead_id: str) -> bytes | None:
        raise AssertionError("a cached lead must not be loaded")

    second = process_batch(broken, [_record(1, b"L1", _bytes(activity("e2", "page_view")))], no_reads, 2.0, cache)
    store.update(second.states)
    assert cache["L1"]["activity.page_view.count"] == 1

    third = process_batch(broken, [_record(2, b"L1", _bytes(upsert("e3", company="Boom")))], store.get, 3.0, cache)
    assert [e.reason for _, e in third.dead_letters] == ["processing_error"]
    assert third.states == {}
    assert cache["L1"] == orjson.loads(store["L1"] or b"null")  # the failed event left no trace in the cache
    assert cache["L1"]["company"] == "Fine"


# --- the rule language's event-time features through decide ---------------------------------------------------

LANGUAGE_RULES = """
version: "lang-1"
fields: {custom.seats: number}
decay: {percent: 50, days: 30}
scoring:
  - id: demo-this-fortnight
    when: {field: activity.demo_request.count_in_days(14), op: gte, value: 1}
    points: 40
    decay: false
  - id: meetings
    per: activity.meeting.count
    points: 10
  - id: seats
    when: {field: custom.seats, op: gte, value: 10}
    points: 5
qualification:
  - id: email-cleared
    when:
      all:
        - {field: email, op: changed}
        - {field: email, op: is_null}
    status: Unqualified
  - id: partner
    when: {field: lead_source, op: eq, value: Partner}
    status: Qualified
    convert: true
    opportunity: {stage: Needs Analysis, amount: 10000, probability: 40, forecast_category: BestCase}
  - id: warm
    when: {field: points, op: gte, value: 5}
    status: Contacted
"""


@pytest.fixture(scope="module")
def language() -> Engine:
    return Engine(parse_ruleset(LANGUAGE_RULES, "lang.yaml"), load_model(default_model_path()))


def days_after(days: float) -> dt.datetime:
    return T0 + dt.timedelta(days=days)


def test_windows_and_decay_are_counted_at_the_event_time(language: Engine) -> None:
    events: list[LeadUpserted | LeadActivity] = [
        activity("a1", "demo_request", days_after(0)),
        activity("a2", "meeting", days_after(1), count=2),
        upsert("e1", days_after(13), title="CTO"),  # demo 13 days ago: in the window; meetings 12 days old
        upsert("e2", days_after(14), title="CEO"),  # 14 days: the demo's day has left the 14-day window
        upsert("e3", days_after(61), title="CFO"),  # meetings 60 days old: decayed to nothing
    ]
    _, out = run(language, events)
    points = [d.decision["points"] for d in out]
    # points are rounded to 4 decimals
    assert points == [40, 60, round(40 + 20 * (1 - 0.5 * 12 / 30), 4), round(20 * (1 - 0.5 * 13 / 30), 4), 0]
    assert out[2].decision["matched_rules"] == ["demo-this-fortnight", "meetings", "warm"]
    assert out[4].decision["matched_rules"] == []


def test_a_replay_gives_the_same_decisions_whenever_it_runs(language: Engine) -> None:
    events: list[LeadUpserted | LeadActivity] = [
        activity("a1", "demo_request", days_after(0)),
        activity("a2", "meeting", days_after(5)),
        upsert("e1", days_after(9), email="jo@acme.com"),
        upsert("e2", days_after(40), email=None),
    ]
    runs = [run(language, events, decided_at)[1] for decided_at in (1_800_000_000.0, 1_900_000_000.0)]
    strip = [[{k: v for k, v in d.decision.items() if k != "decided_at"} for d in out] for out in runs]
    assert strip[0] == strip[1]
    assert [d["status"] for d in strip[0]] == ["Contacted", "Contacted", "Contacted", "Unqualified"]


def test_changed_sees_only_what_this_event_changed(language: Engine) -> None:
    _, out = run(
        language,
        [
            upsert("e1", email="jo@acme.com"),
            upsert("e2", email=None),  # cleared now: the rule matches
            upsert("e3", email=None, title="CTO"),  # already cleared: nothing changed
        ],
    )
    assert ["email-cleared" in d.decision["matched_rules"] for d in out] == [False, True, False]


def test_a_custom_value_of_the_wrong_kind_is_simply_false(language: Engine) -> None:
    _, out = run(language, [upsert("e1", custom={"seats": "12"}), upsert("e2", custom={"seats": 12})])
    assert [d.decision["points"] for d in out] == [0, 5]


def test_a_rule_can_override_the_stage_probability_and_forecast_category(language: Engine) -> None:
    _, out = run(language, [upsert("e1", company="Acme", lead_source="Partner")])
    opp = out[0].opportunity
    assert opp is not None
    OpportunityCreated.model_validate(opp)
    assert (opp["stage_name"], opp["probability"], opp["forecast_category"]) == ("Needs Analysis", 40, "BestCase")
    assert opp["expected_revenue"] == 4000


def _with_employee_range(lo: float, hi: float) -> Model:
    """The default model with a training range for number_of_employees, as a retrained model stores it."""
    data = load_model(default_model_path()).to_dict()
    data["training"]["distributions"] = {"rows": 1, "features": {"number_of_employees": {"range": [lo, hi]}}}
    return Model.from_dict(data)


def test_drift_sampling_counts_missing_and_unseen_features_on_one_record_offset_in_n(engine: Engine) -> None:
    model = _with_employee_range(10, 5000)
    sampling = Engine(engine.ruleset, model)
    records = [
        _record(0, b"L1", _bytes(upsert("e1", lead_id="L1", lead_source="Carrier pigeon", number_of_employees=50))),
        _record(1, b"L2", _bytes(upsert("e2", lead_id="L2", lead_source="Web", number_of_employees=99_999))),
        _record(2, b"L3", _bytes(upsert("e3", lead_id="L3", lead_source="Web", number_of_employees=900_000))),
        _record(3, b"L1", _bytes(upsert("e1", lead_id="L1"))),  # a replay: not decided again, not sampled
        _record(4, b"L4", _bytes(upsert("e4", lead_id="L4", lead_source=" web "))),
    ]
    result = process_batch(sampling, records, lambda _: None, 0.0, drift_sample=2)
    assert len(result.sampled_facts) == 3  # offsets 0, 2 and 4
    assert set(result.features_observed) == {f.name for f in model.features}
    assert set(result.features_observed.values()) == {3}
    assert result.features_unseen["lead_source"] == 1  # "carrier pigeon" is no level of the model
    assert result.features_unseen["number_of_employees"] == 1  # 900,000 > 5,000; offset 1 was not sampled
    assert result.features_missing["number_of_employees"] == 1  # L4 gave none
    assert result.features_missing["industry"] == 3
    assert result.features_missing["lead_source"] == 0


def test_drift_sampling_is_off_by_default_and_the_decisions_do_not_depend_on_it(engine: Engine) -> None:
    records = [_record(n, b"L1", _bytes(upsert(f"e{n}", company=f"Acme {n}"))) for n in range(4)]
    plain = process_batch(engine, records, lambda _: None, 0.0)
    sampled = process_batch(engine, records, lambda _: None, 0.0, drift_sample=1)
    assert not plain.sampled_facts
    assert not plain.features_observed
    assert sampled.features_observed["lead_source"] == 4
    assert sampled.decisions == plain.decisions


def test_a_status_set_by_the_producer_is_a_status_change(engine: Engine) -> None:
    state, out = run(engine, [upsert("e1", company="Acme"), upsert("e2", status="Working")])
    first, second = (d.decision for d in out)
    assert (first["status"], first["action"]) == ("Open", "none")
    assert (second["previous_status"], second["status"], second["action"]) == ("Open", "Working", "status_changed")
    assert state is not None
    assert state["status"] == "Working"


def test_a_stored_state_this_version_cannot_read_sends_its_events_to_the_dead_letters(engine: Engine) -> None:
    newer = orjson.dumps({"v": 9, "lead_id": "L1", "whatever": 1})

    def load(lead_id: str) -> bytes | None:
        return newer if lead_id == "L1" else None

    records = [
        _record(0, b"L1", _bytes(activity("e1", "page_view"))),
        _record(1, b"L2", _bytes(activity("e2", "page_view", lead_id="L2"))),
    ]
    result = process_batch(engine, records, load, 1.0)
    [(record, error)] = result.dead_letters
    assert record.offset == 0
    assert error.reason == "processing_error"
    assert "lead 'L1' has layout version 9" in str(error)
    assert [key for key, _ in result.decisions] == [b"L2"]  # other leads go on
    assert "L1" not in result.states  # the unreadable state is left as it is


@hypothesis.given(
    # naive bounds (hypothesis asks for them); the offset is added in the test, a day from either end
    moment=hst.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),  # noqa: DTZ001
    minutes=hst.integers(min_value=-1439, max_value=1439),
)
def test_times_in_decisions_read_as_isoformat_writes_them(moment: dt.datetime, minutes: int) -> None:
    # decisions format occurred_at with orjson (faster); it must be isoformat's text for every time an event can
    # carry: RFC 3339 offsets are whole minutes, and pydantic parses them into its own tzinfo
    from pydantic import AwareDatetime, TypeAdapter

    from worker.core import _isoformat

    aware = moment.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes)))
    parsed = TypeAdapter(AwareDatetime).validate_python(aware.isoformat())
    assert _isoformat(aware) == aware.isoformat()
    assert _isoformat(parsed) == parsed.isoformat() == aware.isoformat()
