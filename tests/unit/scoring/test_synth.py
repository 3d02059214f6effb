"""The synthetic generator: deterministic, contract-valid, realistic enough to learn from, fast."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import orjson
import pytest

from worker.lead.events import KNOWN_ACTIVITY_TYPES, LeadUpserted
from worker.lead.parse import parse_event
from worker.scoring.training import SynthData, generate

START = dt.datetime(2024, 3, 4, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def data() -> SynthData:
    return generate(2000, seed=11, start=START)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = generate(150, seed=3, start=START)
    b = generate(150, seed=3, start=START)
    c = generate(150, seed=4, start=START)
    assert a.events == b.events
    assert a.outcomes == b.outcomes
    assert a.events != c.events


def test_every_event_passes_the_contract(data: SynthData) -> None:
    for raw in data.events:
        event = parse_event(raw["lead_id"].encode(), orjson.dumps(raw))
        assert event.event_id == raw["event_id"]


def test_events_are_json_as_a_producer_sends_them(data: SynthData) -> None:
    first = data.events[0]
    assert json.loads(json.dumps(first)) == first
    assert first["schema_version"] == 1
    assert first["occurred_at"].endswith("+00:00")
    assert first["lead_id"].startswith("L")
    assert len(first["lead_id"]) == 7
    assert {e["event_type"] for e in data.events} == {"lead.upserted", "lead.activity"}


def test_sorted_by_time_within_the_window(data: SynthData) -> None:
    times = [dt.datetime.fromisoformat(e["occurred_at"]) for e in data.events]
    assert times == sorted(times)
    assert times[0] >= START
    assert times[-1] < START + dt.timedelta(weeks=6)


def test_each_lead_starts_with_its_profile_and_numbers_its_events(data: SynthData) -> None:
    by_lead: dict[str, list[dict[str, object]]] = {}
    for event in data.events:
        by_lead.setdefault(str(event["lead_id"]), []).append(event)
    assert set(by_lead) == set(data.outcomes)
    for lead_id, events in by_lead.items():
        assert events[0]["event_type"] == "lead.upserted"
        assert [e["event_id"] for e in events] == [f"{lead_id}-{n}" for n in range(1, len(events) + 1)]
    profile = parse_event(b"L000001", orjson.dumps(by_lead["L000001"][0]))
    assert isinstance(profile, LeadUpserted)
    assert "@" in (profile.lead.email or "")
    assert profile.lead.company
    assert profile.lead.lead_source
    assert profile.lead.country


def test_realistic_volumes_and_base_rate(data: SynthData) -> None:
    n = len(data.outcomes)
    assert 25 <= len(data.events) / n <= 35
    assert 0.12 <= sum(data.outcomes.values()) / n <= 0.28
    kinds = Counter(e["activity"]["type"] for e in data.events if e["event_type"] == "lead.activity")
    assert set(kinds) == set(KNOWN_ACTIVITY_TYPES)
    assert kinds["page_view"] > kinds["demo_request"] > 0
    sources = Counter(e["lead"].get("lead_source") for e in data.events if e["event_type"] == "lead.upserted")
    assert {"Web", "Referral", "Partner", "Event", "Advertisement", "Cold Call", "Email Campaign"} <= set(sources)
    updates = sum(1 for e in data.events if e["event_type"] == "lead.upserted") - n
    assert 0.2 * n < updates < 0.4 * n  # some leads get a later partial update


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(1, seed=1, start=dt.datetime(2024, 1, 1))  # noqa: DTZ001  # the point of the test
