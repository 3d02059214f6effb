"""A lead's memo (what its last decision computed) saves work and changes nothing: decisions and states made with
memos are the same, byte for byte, as those made afresh, on random event streams, with rules that read facts no
event reports (times, windows, decay, what changed) and a model with knots and an interaction."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import T0, activity, upsert
from tests.unit.scoring.tabular_data import MAPPING, train_export
from worker.core import Engine, Memo, Record, decide, process_batch
from worker.events import LeadActivity, LeadUpserted
from worker.rules import default_ruleset_path, load_ruleset, parse_ruleset
from worker.scoring import Model, default_model_path, load_model

RICH_RULES = """
version: "memo-1"
fields: {custom.visits: number, custom.origin: text, custom.newsletter: yes/no, custom.signup_at: time}
scoring:
  - {id: title, when: {field: title, op: contains_ci, value: director}, points: 7}
  - {id: big, when: {field: number_of_employees, op: gte, value: 200}, points: 5}
  - {id: visits, per: custom.visits, points: 1.5, max: 6}
  - {id: origin, when: {field: custom.origin, op: eq_ci, value: api}, points: 2.25}
  - id: origin-and-newsletter
    when: {all: [{field: custom.origin, op: is_not_null}, {not: {field: custom.newsletter, op: eq, value: true}}]}
    points: -1.1
  - {id: page-views, per: activity.page_view.count, points: 0.7, max: 9}
  - {id: demo, when: {field: activity.demo_request.count, op: gte, value: 1}, points: 20, decay: false}
  - {id: recent-demo, when: {field: activity.demo_request.last_at, op: within_days, value: 3}, points: 10}
  - {id: quiet, when: {field: last_activity_at, op: not_within_days, value: 5}, points: -4}
  - {id: quiet-days, when: {field: days_since_last_activity, op: gt, value: 2}, points: -3}
  - {id: clicks-this-week, per: activity.email_click.count_in_days(7), points: 2, max: 8}
  - {id: calls-since, when: {field: activity.call.days_since, op: lt, value: 1}, points: 3}
  - {id: fading-webinar, when: {field: activity.webinar_attended.count, op: gte, value: 1}, points: 12,
     decay: {percent: 50, days: 4}}
  - {id: new-email, when: {field: email, op: changed}, points: 1}
  - {id: signed-up, when: {field: custom.signup_at, op: within_days, value: 2}, points: 4}
  - {id: total, per: activity.total, points: 0.25, max: 5}
qualification:
  - {id: bounced, when: {field: activity.email_bounced.count, op: gte, value: 2}, status: Unqualified}
  - id: hot
    when: {all: [{field: points, op: gte, value: 25}, {field: score, op: gte, value: 0.2}]}
    status: Qualified
    convert: true
"""

KNOTTED_CROSSED = (
    MAPPING.replace("kind: numeric, bins: 4}", "kind: numeric, bins: 0, knots: 5, label: visits}")
    + "interactions:\n  - [Origin, Newsletter]\n"
)

TYPES = ("page_view", "email_open", "email_click", "demo_request", "webinar_attended", "call", "email_bounced", "chat")
PROFILE = {
    "title": st.sampled_from(["Director of Sales", "Engineer", "VP Marketing", "", None]),
    "number_of_employees": st.sampled_from([5, 250, 1200, None]),
    "annual_revenue": st.sampled_from([1e6, 2.5e7, 3e8, None]),
    "industry": st.sampled_from(["Software", "Retail", None]),
    "lead_source": st.sampled_from(["Web", "Partner Referral", "Purchased List", None]),
    "email": st.sampled_from(["a@gmail.com", "b@acme.com", "c@acme.com", None]),
    "company": st.sampled_from(["Acme", "Globex", None]),
    "status": st.sampled_from(["Open", "Contacted"]),
}
CUSTOM = {
    "origin": st.sampled_from(["API", "Form", "Partner Portal", None]),
    "newsletter": st.sampled_from(["Yes", "No", True, None]),
    "visits": st.sampled_from([0, 1, 3, 7.5, 40, None]),
    "signup_at": st.sampled_from([T0.timestamp(), T0.timestamp() - 5 * 86400.0, None]),
}


@st.composite
def streams(draw: st.DrawFn) -> list[LeadUpserted | LeadActivity]:
    """Events of three leads: profile changes and clears, activities, late events and replays."""
    events: list[LeadUpserted | LeadActivity] = []
    hours = 0.0
    for n in range(draw(st.integers(1, 40))):
        lead = draw(st.sampled_from(["L1", "L2", "L3"]))
        hours += draw(st.sampled_from([0.0, 0.5, 20.0, 70.0, 200.0]))
        when = T0 + dt.timedelta(hours=hours - draw(st.sampled_from([0.0, 0.0, 0.0, 30.0])))  # some arrive late
        same = [e for e in events if e.lead_id == lead]
        if same and draw(st.integers(0, 9)) == 0:
            events.append(draw(st.sampled_from(same)))  # a replay of one of the lead's events
        elif draw(st.integers(0, 3)) == 0:
            fields = {k: draw(v) for k, v in PROFILE.items() if draw(st.booleans())}
            custom = {k: draw(v) for k, v in CUSTOM.items() if draw(st.booleans())}
            if custom:
                fields["custom"] = custom
            events.append(upsert(f"e{n}", when, lead, **fields))
        else:
            kind = draw(st.sampled_from(TYPES))
            events.append(activity(f"e{n}", kind, when, count=draw(st.integers(1, 3)), lead_id=lead))
    return events


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Engine]:
    report, _ = train_export(tmp_path_factory, KNOTTED_CROSSED)
    assert report.model is not None
    rich = parse_ruleset(RICH_RULES)
    return {
        "default": Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path())),
        "rich rules, knots and an interaction": Engine(rich, report.model),
        "rich rules, default model": Engine(rich, load_model(default_model_path())),
    }


def _run(engine: Engine, events: list[Any], memos: dict[str, Memo] | None) -> tuple[list[bytes], dict[str, bytes]]:
    states: dict[str, Any] = {}
    decisions = []
    for event in events:
        memo = None
        if memos is not None:
            memo = memos.setdefault(event.lead_id, Memo())
        state, decided = decide(engine, states.get(event.lead_id), event, 1_900_000_000.0, memo)
        states[event.lead_id] = state
        decisions.append(orjson.dumps([decided.decision, decided.opportunity]))
    return decisions, {k: orjson.dumps(v) for k, v in states.items()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=streams())
def test_decisions_with_memos_are_those_made_afresh(engines: dict[str, Engine], events: list[Any]) -> None:
    for name, engine in engines.items():
        assert _run(engine, events, {}) == _run(engine, events, None), name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=streams(), size=st.integers(1, 7))
def test_batches_with_cached_states_and_memos_are_those_made_afresh(
    engines: dict[str, Engine], events: list[Any], size: int
) -> None:
    """As the worker runs: states and memos kept between batches, against each batch loading stored states."""
    raw = [Record(e.lead_id.encode(), e.model_dump_json().encode(), "leads", 0, i) for i, e in enumerate(events)]
    for name, engine in engines.items():
        outputs = []
        for keep in (True, False):
            store: dict[str, bytes] = {}
            cache: dict[str, Any] | None = {} if keep else None
            memos: dict[str, Memo] | None = {} if keep else None
            out = []
            for start in range(0, len(raw), size):
                result = process_batch(engine, raw[start : start + size], store.get, 1.0, cache, memos=memos)
                store.update(result.states)
                out.append((result.decisions, result.opportunities, result.states))
            outputs.append(out)
        assert outputs[0] == outputs[1], name


def test_a_memo_made_with_another_ruleset_and_model_is_started_afresh(engines: dict[str, Engine]) -> None:
    """A reload swaps the engine: the memos the leads carry are recomputed, not reused."""
    events = [upsert("e1", title="Director", number_of_employees=250), activity("e2", "demo_request")]
    old, new = engines["default"], engines["rich rules, knots and an interaction"]
    memo = Memo()
    state, _ = decide(old, None, events[0], 1.0, memo)
    _, with_memo = decide(new, state, events[1], 1.0, memo)
    fresh_state, _ = decide(old, None, events[0], 1.0)
    _, afresh = decide(new, fresh_state, events[1], 1.0)
    assert with_memo.decision == afresh.decision
    assert with_memo.decision["ruleset_version"] == new.ruleset.version


def test_a_state_changed_without_its_memo_is_decided_afresh(engines: dict[str, Engine]) -> None:
    """The memo belongs to the state as its last decision left it; a decision made without it invalidates it."""
    engine = engines["default"]
    memo = Memo()
    state, _ = decide(engine, None, upsert("e1", title="Engineer"), 1.0, memo)
    state, _ = decide(engine, state, upsert("e2", title="VP Sales", number_of_employees=5000), 1.0)  # no memo
    _, decided = decide(engine, state, activity("e3", "page_view"), 1.0, memo)
    assert "fit-title-executive" in decided.decision["matched_rules"]
    assert "fit-employees-1000-plus" in decided.decision["matched_rules"]


def test_the_memo_does_not_outlive_a_failed_decision(engines: dict[str, Engine], tmp_path: Path) -> None:
    """An event whose decision fails leaves the lead as before it; the next event is decided as if it never came."""
    engine = engines["default"]

    class Boom(Exception):
        pass

    model = engine.model

    @dataclasses.dataclass(frozen=True)
    class FailsOnce:
        version: str = model.version
        failed: list[bool] = dataclasses.field(default_factory=list)

        def score(self, facts: Any, memo: Any = None, changed: Any = None) -> Any:
            if facts.get("company") == "Boom" and not self.failed:
                self.failed.append(True)
                raise Boom
            return model.score(facts, memo, changed)

        def factors(self, score: Any, facts: Any, top: int, memo: Any = None) -> Any:
            return model.factors(score, facts, top, memo)

    broken = dataclasses.replace(engine, model=FailsOnce())  # type: ignore[arg-type]
    events = [upsert("e1", title="Engineer"), upsert("e2", company="Boom", title="VP"), activity("e3", "page_view")]
    raw = [Record(b"L1", e.model_dump_json().encode(), "leads", 0, i) for i, e in enumerate(events)]
    result = process_batch(broken, raw, {}.get, 1.0, {}, memos={})
    assert [r.offset for r, _ in result.dead_letters] == [1]
    expected = process_batch(engine, [raw[0], raw[2]], {}.get, 1.0)
    assert result.decisions == expected.decisions
    assert result.states == expected.states


def test_every_reported_change_is_what_the_memo_relies_on(engines: dict[str, Model | Engine]) -> None:
    """The rules and feature groups remembered are exactly those reading facts whose changes events report."""
    engine = engines["rich rules, knots and an interaction"]
    assert isinstance(engine, Engine)
    ruleset = engine.ruleset
    plain = [r for r in ruleset.scoring_rules if r.points and r.decay is None]
    volatile = {plain[i].id for i in ruleset._volatile}
    times = {"recent-demo", "quiet", "quiet-days", "clicks-this-week", "calls-since", "signed-up"}
    assert volatile == {*times, "new-email"}
    assert "fading-webinar" not in {r.id for r in plain}  # decaying rules are always computed
