"""The opportunities' fold and the pipeline's figures, by hand and by property."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.exceptions import EventError
from worker.opportunities import Pipeline, parse_feedback, pipeline_batch, score_band, summarize
from worker.rules import default_ruleset_path, load_ruleset

STAGES = load_ruleset(default_ruleset_path()).stages


class Rec(NamedTuple):
    key: bytes | None
    value: bytes | None
    offset: int


def created(opportunity_id: str, **fields: Any) -> dict[str, Any]:
    record = {
        "event_type": "opportunity.created",
        "opportunity_id": opportunity_id,
        "lead_id": f"L-{opportunity_id}",
        "stage_name": "Needs Analysis",
        "probability": 20,
        "forecast_category": "Pipeline",
        "amount": 10_000.0,
        "close_date": "2026-12-06",
        "lead_source": "Web",
        "score": 0.5,
        "matched_rules": ["hot"],
        "converted_by_rule": "hot",
        "converted_at": "2026-11-06T00:00:00+00:00",
        "lead_created_at": None,
        "owner_id": None,
    }
    return record | fields


def updated(opportunity_id: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_type": "opportunity.updated",
        "opportunity_id": opportunity_id,
        "event_id": event_id,
        "occurred_at": "2026-11-10T00:00:00+00:00",
        **fields,
    }


def closed(opportunity_id: str, event_id: str, won: bool, **fields: Any) -> dict[str, Any]:
    return {
        "event_type": "opportunity.closed",
        "opportunity_id": opportunity_id,
        "event_id": event_id,
        "occurred_at": "2026-11-16T00:00:00+00:00",
        "won": won,
        **fields,
    }


def records(events: list[dict[str, Any]], start: int = 0) -> list[Rec]:
    return [Rec(e["opportunity_id"].encode(), orjson.dumps(e), start + i) for i, e in enumerate(events)]


class Table:
    """The stored states, as the worker's table holds them."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self.pipeline = Pipeline()

    def run(self, batch: list[Rec]) -> Any:
        out = pipeline_batch(batch, self.stored.get, STAGES)
        self.stored.update(out.states)
        for before, after in out.changes:
            self.pipeline.change(before, after)
        return out

    def states(self) -> dict[str, dict[str, Any]]:
        return {k: orjson.loads(v) for k, v in self.stored.items()}


SCENARIO = [
    created("A", score=0.46, lead_created_at="2026-11-01T00:00:00+00:00"),
    created(
        "B",
        stage_name="Prospecting",
        probability=10,
        amount=20_000.0,
        close_date="2027-01-15",
        lead_source="Partner",
        score=0.81,
        lead_created_at="2026-11-04T00:00:00+00:00",
    ),
    created("C", amount=None, score=0.12),
    updated("A", "a1", stage_name="Negotiation/Review", amount=12_000.0),
    updated("B", "b1", stage_name="Value Proposition", probability=60, forecast_category="Forecast"),
    closed("A", "a2", won=True, amount=15_000.0, close_date="2026-12-01"),
    closed("A", "a2", won=True, amount=15_000.0, close_date="2026-12-01"),  # the CRM sends it again
    closed("C", "c1", won=False, occurred_at="2026-11-08T00:00:00+00:00"),
    updated("D", "d1", stage_name="Closed Won"),  # never converted here
]


def test_the_scenario_gives_the_figures_computed_by_hand() -> None:
    table = Table()
    out = table.run(records(SCENARIO))
    assert out.replayed == 1
    [(record, error)] = out.dead_letters
    assert record.key == b"D"
    assert error.reason == "unknown_opportunity"
    assert "'D'" in str(error)
    assert [(c.outcome, c.amount, c.seconds_to_close) for c in out.closings] == [
        ("won", 15_000.0, 10 * 86_400.0),
        ("lost", 0.0, 2 * 86_400.0),
    ]
    figures = summarize(table.states().values())
    assert figures["by_stage"] == {
        "Closed Lost": {"count": 1, "amount": 0.0, "expected_revenue": 0.0},
        "Closed Won": {"count": 1, "amount": 15_000.0, "expected_revenue": 15_000.0},
        "Value Proposition": {"count": 1, "amount": 20_000.0, "expected_revenue": 12_000.0},  # 60 % as given
    }
    assert figures["by_forecast_category"] == {
        "Closed": {"count": 1, "amount": 15_000.0, "expected_revenue": 15_000.0},
        "Forecast": {"count": 1, "amount": 20_000.0, "expected_revenue": 12_000.0},
        "Omitted": {"count": 1, "amount": 0.0, "expected_revenue": 0.0},
    }
    assert figures["by_close_month"] == {
        "2026-11": {"count": 1, "amount": 0.0, "expected_revenue": 0.0},  # C: closed on 2026-11-08
        "2026-12": {"count": 1, "amount": 15_000.0, "expected_revenue": 15_000.0},
        "2027-01": {"count": 1, "amount": 20_000.0, "expected_revenue": 12_000.0},
    }
    assert figures["won"] == {"count": 1, "amount": 15_000.0}
    assert figures["lost"] == {"count": 1, "amount": 0.0}
    assert figures["by_lead_source"]["Web"] == {
        "opportunities": 2,
        "won": 1,
        "lost": 1,
        "won_rate": 0.5,
        "win_rate_of_closed": 0.5,
    }
    assert figures["by_lead_source"]["Partner"]["win_rate_of_closed"] is None
    assert set(figures["by_score_band"]) == {"0.1-0.2", "0.4-0.5", "0.8-0.9"}
    assert figures["days"]["lead_to_conversion"] == {"count": 2, "mean": 3.5, "median": 3.5}  # A 5, B 2
    assert figures["days"]["conversion_to_close"] == {"count": 2, "mean": 6.0, "median": 6.0}  # A 10, C 2
    assert table.pipeline.cells == {
        ("Closed Won", "Closed", "2026-12"): [1, 15_000.0, 15_000.0],
        ("Value Proposition", "Forecast", "2027-01"): [1, 20_000.0, 12_000.0],
        ("Closed Lost", "Omitted", "2026-11"): [1, 0.0, 0.0],
    }
    assert table.pipeline.outcomes == {
        ("Web", "0.4-0.5", "won"): 1,
        ("Partner", "0.8-0.9", "open"): 1,
        ("Web", "0.1-0.2", "lost"): 1,
    }


def test_a_redelivered_batch_changes_nothing() -> None:
    table = Table()
    table.run(records(SCENARIO))
    states = table.states()
    again = table.run(records(SCENARIO))  # the same records, at the same offsets
    assert again.replayed == len(SCENARIO) - 1  # all but D's, which is dead-lettered again
    assert table.states() == states


def test_a_reassigned_opportunity_changes_owner_only() -> None:
    table = Table()
    table.run(records([created("A"), updated("A", "a1", stage_name="Value Proposition")]))
    table.run(records([created("A", event_type="opportunity.reassigned", owner_id="005-CY")], start=2))
    state = table.states()["A"]
    assert (state["owner_id"], state["stage_name"], state["probability"]) == ("005-CY", "Value Proposition", 50)
    assert sum(cell[0] for cell in table.pipeline.cells.values()) == 1


def test_a_stage_the_ruleset_does_not_define_is_refused_saying_which() -> None:
    out = Table().run(records([created("A"), updated("A", "a1", stage_name="Won-ish")]))
    [(_, error)] = out.dead_letters
    assert error.reason == "schema_violation"
    assert "'Won-ish'" in str(error)
    assert "'Closed Won'" in str(error)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"{", "not_json"),
        (b"[1]", "not_an_object"),
        (b'{"event_type": "opportunity.deleted", "opportunity_id": "A"}', "unknown_event_type"),
        (orjson.dumps(updated("A", "a1", amount="12000")), "schema_violation"),
        (orjson.dumps(updated("A", "a1", occurred_at=1_700_000_000)), "schema_violation"),
        (orjson.dumps(closed("A", "a1", won=True, extra=1)), "schema_violation"),
        (orjson.dumps({k: v for k, v in closed("A", "a1", won=True).items() if k != "won"}), "schema_violation"),
    ],
)
def test_bad_feedback_is_refused_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_feedback(value)
    assert caught.value.reason == reason


def test_the_examples_parse() -> None:
    from pathlib import Path

    examples = Path(__file__).resolve().parents[3] / "schemas" / "examples"
    for name in ("opportunity-updated", "opportunity-closed"):
        event = parse_feedback((examples / f"{name}.json").read_bytes())
        assert event.event_type == json.loads((examples / f"{name}.json").read_text())["event_type"]


def test_score_bands() -> None:
    assert [score_band(s) for s in (0.0, 0.09, 0.1, 0.55, 0.99, 1.0)] == [
        "0.0-0.1",
        "0.0-0.1",
        "0.1-0.2",
        "0.5-0.6",
        "0.9-1.0",
        "0.9-1.0",
    ]


# --- properties --------------------------------------------------------------------------------------------------

_IDS = ("A", "B", "C")
_feedback = st.one_of(
    st.builds(
        lambda o, n, stage, amount: updated(o, f"{o}-{n}", stage_name=stage, amount=amount),
        st.sampled_from(_IDS),
        st.integers(0, 9),
        st.sampled_from(sorted(STAGES)),
        st.none() | st.integers(0, 100_000).map(float),
    ),
    st.builds(
        lambda o, n, won, amount: closed(o, f"{o}-{n}", won=won, amount=amount),
        st.sampled_from(_IDS),
        st.integers(0, 9),
        st.booleans(),
        st.none() | st.integers(0, 100_000).map(float),
    ),
)


def _without_offsets(states: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: {f: v for f, v in s.items() if f != "offset"} for k, s in states.items()}


def _first_occurrences(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for event in events:
        key = (event["opportunity_id"], event["event_id"])
        if key not in seen:
            seen.add(key)
            out.append(event)
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(_feedback, max_size=25), st.data())
def test_a_replayed_feedback_event_counts_once_wherever_it_comes(events: list[dict[str, Any]], data: Any) -> None:
    base = [created(o) for o in _IDS]
    # the CRM re-sends an event it sent before: the event id repeats, anywhere later, any number of times
    with_repeats = list(events)
    for _ in range(data.draw(st.integers(0, 5))):
        if with_repeats:
            i = data.draw(st.integers(0, len(with_repeats) - 1))
            j = data.draw(st.integers(i + 1, len(with_repeats)))
            with_repeats.insert(j, with_repeats[i])
    once, repeated = Table(), Table()
    once.run(records(base + _first_occurrences(events)))
    repeated.run(records(base + with_repeats))
    assert _without_offsets(repeated.states()) == _without_offsets(once.states())
    assert repeated.pipeline.cells.keys() == once.pipeline.cells.keys()
    assert repeated.pipeline.outcomes == once.pipeline.outcomes


@settings(max_examples=150, deadline=None)
@given(st.lists(_feedback, max_size=25), st.lists(st.integers(1, 8), max_size=6), st.integers(0, 30))
def test_batches_and_redeliveries_do_not_change_the_result(
    events: list[dict[str, Any]], cuts: list[int], redeliver: int
) -> None:
    all_records = records([created(o) for o in _IDS] + events)
    whole = Table()
    whole.run(all_records)
    split = Table()
    start = 0
    for size in [*cuts, len(all_records)]:
        split.run(all_records[start : start + size])
        start += size
        if start >= len(all_records):
            break
    split.run(all_records[: min(redeliver, len(all_records))])  # after a crash: records delivered again
    assert split.states() == whole.states()
    # the sums kept a state at a time are the sums of the states
    expected = Pipeline.of(whole.states().values())
    assert split.pipeline.outcomes == expected.outcomes
    assert split.pipeline.cells.keys() == expected.cells.keys()
    for cell, sums in expected.cells.items():
        assert split.pipeline.cells[cell] == pytest.approx(sums)


def test_with_the_leads_the_funnels_give_the_lead_to_opportunity_rates() -> None:
    table = Table()
    table.run(records(SCENARIO))
    leads = [("Web", 0.46), ("Partner", 0.81), ("Web", 0.12), ("Web", 0.15), ("Partner", None), (None, 0.5)]
    figures = summarize(table.states().values(), leads)
    sources = {
        name: (row["leads"], row["opportunities"], row["lead_to_opportunity_rate"])
        for name, row in figures["by_lead_source"].items()
    }
    assert sources == {"Web": (3, 2, 2 / 3), "Partner": (2, 1, 0.5), "none": (1, 0, 0.0)}
    assert figures["by_lead_source"]["none"]["won_rate"] is None
    bands = {
        name: (row["leads"], row["opportunities"], row["lead_to_opportunity_rate"])
        for name, row in figures["by_score_band"].items()
    }
    assert bands == {"0.1-0.2": (2, 1, 0.5), "0.4-0.5": (1, 1, 1.0), "0.5-0.6": (1, 0, 0.0), "0.8-0.9": (1, 1, 1.0)}
    assert "leads" not in summarize(table.states().values())["by_score_band"]["0.1-0.2"]


@pytest.mark.parametrize(
    "broken", [{"converted_at": "yesterday"}, {"probability": "twenty"}, {"opportunity_id": None}, {"amount": "many"}]
)
def test_an_opportunity_record_that_is_not_one_is_a_dead_letter(broken: dict[str, Any]) -> None:
    record = created("A") | broken
    out = Table().run([Rec(b"A", orjson.dumps(record), 0), *records([created("B")], start=1)])
    [(_, error)] = out.dead_letters
    assert error.reason in {"schema_violation", "key_mismatch"}
    assert list(out.states) == ["B"]
