"""The soak's counting (bench/soak.py): each check finds the problem it is for, and none where there is none."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from soak import (
    converted_twice,
    crash_events,
    diff_fields,
    event_counts,
    leads_with_several,
    levelling,
    opportunity_ids_by_lead,
    reassigned,
    repeats,
    undecided,
)


def _decision(lead: str, event: str, action: str = "none", opportunity: str | None = None) -> dict[str, object]:
    return {"lead_id": lead, "event_id": event, "action": action, "opportunity_id": opportunity}


def test_undecided_names_the_events_no_decision_answers_in_the_order_produced() -> None:
    produced = [("L1", "e1"), ("L1", "e2"), ("L2", "e1"), ("L2", "e2")]
    decisions = [_decision("L1", "e1"), _decision("L2", "e2"), _decision("L1", "e1")]
    assert undecided(produced, decisions) == [("L1", "e2"), ("L2", "e1")]


def test_undecided_is_empty_when_every_event_is_decided_even_twice() -> None:
    produced = [("L1", "e1"), ("L2", "e1")]
    decisions = [_decision("L2", "e1"), _decision("L1", "e1"), _decision("L1", "e1")]
    assert undecided(produced, decisions) == []


def test_an_event_id_decided_for_another_lead_does_not_count() -> None:
    assert undecided([("L1", "e1")], [_decision("L2", "e1")]) == [("L1", "e1")]


def test_a_lead_with_two_opportunity_ids_is_found_across_decisions_and_opportunities() -> None:
    decisions = [_decision("L1", "e1", "converted", "opp-a"), _decision("L2", "e1", "converted", "opp-c")]
    opportunities = [{"lead_id": "L1", "opportunity_id": "opp-b"}, {"lead_id": "L2", "opportunity_id": "opp-c"}]
    assert leads_with_several(opportunity_ids_by_lead(decisions, opportunities)) == {"L1": ["opp-a", "opp-b"]}


def test_one_opportunity_id_repeated_is_not_two() -> None:
    decisions = [_decision("L1", "e1", "converted", "opp-a"), _decision("L1", "e1", "converted", "opp-a")]
    opportunities = [{"lead_id": "L1", "opportunity_id": "opp-a"}] * 3
    ids = opportunity_ids_by_lead([*decisions, _decision("L1", "e2")], opportunities)
    assert ids == {"L1": {"opp-a"}}
    assert leads_with_several(ids) == {}


def test_a_lead_converted_by_two_events_is_converted_twice() -> None:
    decisions = [_decision("L1", "e3", "converted", "o"), _decision("L1", "e7", "converted", "o")]
    assert converted_twice(decisions) == {"L1": ["e3", "e7"]}


def test_one_converting_event_decided_twice_is_one_conversion() -> None:
    decisions = [
        _decision("L1", "e3", "converted", "o"),
        _decision("L1", "e3", "converted", "o"),
        _decision("L1", "e4", "none"),
    ]
    assert converted_twice(decisions) == {}


def _json(**fields: object) -> bytes:
    return orjson.dumps(fields)


def test_repeats_counts_identical_and_different_records_and_names_the_fields() -> None:
    first = _json(decision_id="d1", points=5, decided_at="10:00", routing={"member": "A", "attempt": 1})
    records = [
        ("d1", first),
        ("d2", _json(decision_id="d2", points=1)),
        ("d1", first),  # byte for byte
        ("d1", _json(decision_id="d1", points=5, decided_at="10:05", routing={"member": "B", "attempt": 1})),
        ("d3", _json(decision_id="d3")),
    ]
    r = repeats(records)
    assert (r.records, r.distinct, r.repeated_ids, r.extra_records) == (5, 3, 1, 2)
    assert (r.identical, r.different) == (1, 1)
    assert r.fields == {"decided_at": 1, "routing.member": 1}
    assert r.examples == ["d1"]
    (diff,) = r.diffs
    assert diff["first"] == {"decided_at": "10:00", "routing.member": "A"}
    assert diff["again"] == {"decided_at": "10:05", "routing.member": "B"}


def test_no_repeats_when_every_id_comes_once() -> None:
    r = repeats([("a", b"{}"), ("b", b"{}"), ("c", b'{"x":1}')])
    assert (r.records, r.distinct, r.extra_records, r.identical, r.different) == (3, 3, 0, 0, 0)
    assert r.fields == {}
    assert r.diffs == []


def test_diff_fields_names_added_and_removed_fields() -> None:
    assert diff_fields({"a": 1, "b": 2}, {"a": 1, "c": 3}) == ["b", "c"]
    assert diff_fields({"a": {"x": 1}}, {"a": None}) == ["a"]
    assert diff_fields({"a": [1]}, {"a": [1]}) == []


def test_a_routing_request_answered_with_two_members_is_reassigned() -> None:
    decisions = [
        {"request_id": "opp-1#1", "pool": "eu", "member": "005-HAN"},
        {"request_id": "opp-1#1", "pool": "eu", "member": "005-IDA"},
        {"request_id": "opp-2#1", "pool": "eu", "member": "005-HAN"},
        {"request_id": "opp-2#1", "pool": "eu", "member": "005-HAN"},  # the same answer again: fine
        {"request_id": "opp-3#1", "pool": None, "member": None, "target": {"queue": "Inbound AEs"}},
    ]
    assert reassigned(decisions) == {"opp-1#1@eu": ["005-HAN", "005-IDA"]}


def test_a_second_attempt_or_another_pool_is_not_a_reassignment() -> None:
    decisions = [
        {"request_id": "opp-1#1", "pool": "eu", "member": "005-HAN"},
        {"request_id": "opp-1#2", "pool": "eu", "member": "005-IDA"},  # the SLA's next attempt
        {"request_id": "opp-1#1", "pool": "na", "member": "005-DEV"},  # handed on to another pool
    ]
    assert reassigned(decisions) == {}


MB = 2**20


def test_rss_that_keeps_growing_does_not_level_off() -> None:
    samples = [(n * 10_000, 200 * MB + n * 10_000 * 4096) for n in range(101)]  # 4 KB a lead, for ever
    verdict = levelling(samples, cache_size=50_000)
    assert not verdict.levelled
    assert verdict.last_mb_per_100k == pytest.approx(390.6, rel=0.01)


def test_rss_that_grows_until_the_cache_is_full_then_stays_levels_off() -> None:
    samples = [(n * 10_000, 200 * MB + min(n * 10_000, 50_000) * 6000 + (n % 3) * MB) for n in range(101)]
    verdict = levelling(samples, cache_size=50_000)
    assert verdict.levelled
    assert abs(verdict.last_mb_per_100k) < 1


def test_rss_growing_slowly_but_far_does_not_level_off() -> None:
    # after the cache filled, 40 MB per 100k leads at first and the same at the end: 133 MB in the last third
    samples = [(n * 10_000, 500 * MB + n * 4 * MB) for n in range(101)]
    assert not levelling(samples, cache_size=50_000).levelled


def test_growth_that_slows_down_to_a_quarter_levels_off() -> None:
    # 200 MB per 100k leads in the first third after the cache filled, 30 in the last: it is levelling off
    samples = []
    for n in range(5, 101):
        x = n * 10_000
        mb = 500 + (min(x, 350_000) - 50_000) * 200 / 100_000 + max(0, x - 350_000) * 30 / 100_000
        samples.append((x, int(mb * MB)))
    assert levelling(samples, cache_size=50_000).levelled


def test_too_few_samples_after_the_cache_filled_show_nothing() -> None:
    samples = [(n * 10_000, 200 * MB) for n in range(8)]
    assert not levelling(samples, cache_size=50_000).levelled


def test_the_generated_events_are_valid_ordered_per_lead_and_some_leads_pass_the_dedupe_window() -> None:
    events = crash_events(3_000, 100, seed=3)
    assert len(events) == 3_000
    per_lead: dict[str, list[int]] = {}
    for key, value in events:
        event = orjson.loads(value)
        assert key.decode() == event["lead_id"]
        per_lead.setdefault(event["lead_id"], []).append(int(event["event_id"].rsplit("-e", 1)[1]))
    assert len(per_lead) == 100
    for numbers in per_lead.values():
        assert numbers == list(range(len(numbers)))  # each lead's events in order, its upsert first
    first = {orjson.loads(v)["event_type"] for k, v in events if orjson.loads(v)["event_id"].endswith("-e0")}
    assert first == {"lead.upserted"}
    assert max(len(n) for n in per_lead.values()) > 64
    assert crash_events(3_000, 100, seed=3) == events  # seeded


def test_event_counts_sum_to_the_events_and_give_every_lead_one() -> None:
    import random

    counts = event_counts(random.Random(1), 10_000, 700)
    assert sum(counts) == 10_000
    assert min(counts) >= 1
    assert Counter(c > 64 for c in counts)[True] > 0
