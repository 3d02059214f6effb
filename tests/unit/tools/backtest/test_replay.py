"""Replaying a history through two rulesets: each lead's outcome, the leads that changed and the rules behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.unit.tools.backtest.conftest import HAND_HISTORY, RULES, RULES_NEW, engine, records, variant, write_lines
from worker.batch import process_batch
from worker.columnar import process_columnar
from worker.core import Engine, decide
from worker.lead.parse import parse_event
from worker.lead.state import LeadState
from worker.tools.backtest import build_report, diff_rules, replay


def _report(runs: dict[str, Any], changes: Any = None) -> dict[str, Any]:
    return build_report(
        source={"kind": "test", "name": "history", "records": 0},
        model={"path": "-", "version": "-"},
        runs=runs,
        paths={role: f"{role}.yaml" for role in runs},
        rule_changes=changes,
    )


def _final(eng: Engine, events: list[dict[str, Any]]) -> dict[str, tuple[str, bool]]:
    """Each lead's final (status, converted), folding ``decide`` over the events one by one: the reference."""
    states: dict[str, LeadState] = {}
    final: dict[str, tuple[str, bool]] = {}
    for raw in events:
        event = parse_event(raw["lead_id"].encode(), orjson.dumps(raw))
        state, decided = decide(eng, states.get(event.lead_id), event, 0.0)
        states[event.lead_id] = state
        final[event.lead_id] = (decided.decision["status"], state["converted"])
    return final


def test_a_lower_conversion_threshold_changes_the_leads_the_reference_says_and_names_the_rule(
    synthetic: list[dict[str, Any]], default_text: str, tmp_path: Path
) -> None:
    lower = variant(default_text, "- {field: points, op: gte, value: 70}", "- {field: points, op: gte, value: 55}")
    new, old = engine(lower), engine(default_text)
    (tmp_path / "new.yaml").write_text(lower, encoding="utf-8")
    (tmp_path / "old.yaml").write_text(default_text, encoding="utf-8")
    changes = diff_rules(tmp_path / "new.yaml", tmp_path / "old.yaml")
    assert (changes.added, changes.removed, changes.changed) == ((), (), ("hot",))

    batches = [records(synthetic)[i : i + 97] for i in range(0, len(synthetic), 97)]
    report = _report(replay({"new": new, "old": old}, batches), changes)

    after, before = _final(new, synthetic), _final(old, synthetic)
    expected = {lead for lead in after if after[lead] != before[lead]}
    changed = report["changed"]
    assert expected, "the variant must change some leads for this test to mean anything"
    assert {row["lead_id"] for row in changed["leads"]} == expected
    assert changed["total"] == len(expected) == sum(t["leads"] for t in changed["by_transition"])
    for row in changed["leads"]:  # a lower bar only converts more: every change is a conversion by 'hot'
        assert row["new"]["converted"]
        assert not row["old"]["converted"]
        assert row["new"]["decided_by"] == "hot"
        assert row["transition"] == f"{row['old']['status']} → Qualified"
        assert row["scoring_rules"] == []  # no scoring rule differs: the qualification rule did it

    new_summary, old_summary = report["rulesets"]
    assert new_summary["converted"] - old_summary["converted"] == len(expected)
    assert new_summary["leads"] == old_summary["leads"] == len(after)
    assert sum(new_summary["statuses"].values()) == len(after)
    assert sum(new_summary["points"]["histogram"]) == len(after)
    assert new_summary["events"]["valid"] == len(synthetic)
    # deterministic: the same history gives the same report, whatever the batch size
    again = _report(replay({"new": new, "old": old}, [records(synthetic)]), changes)
    assert again == report


def test_changed_leads_name_the_scoring_rules_that_differ_sorted_by_transition(hand_files: dict[str, Path]) -> None:
    runs = replay({"new": engine(RULES_NEW), "old": engine(RULES)}, [records(HAND_HISTORY)])
    changes = diff_rules(hand_files["new"], hand_files["old"])
    assert (changes.added, changes.removed, changes.changed) == (("form",), ("chat",), ("page-views",))
    changed = _report(runs, changes)["changed"]

    assert changed["by_transition"] == [
        {"transition": "Open → Contacted", "leads": 2},
        {"transition": "Contacted → Open", "leads": 1},
        {"transition": "Contacted → Qualified", "leads": 1},
    ]
    rows = {row["lead_id"]: row for row in changed["leads"]}
    assert [row["lead_id"] for row in changed["leads"]] == ["L4", "L3", "L5", "L1"]  # inside a group: Δ points
    assert rows["L1"]["scoring_rules"] == ["~page-views"]
    assert (rows["L1"]["old"]["decided_by"], rows["L1"]["new"]["decided_by"]) == ("warm", "hot")
    assert (rows["L1"]["old"]["points"], rows["L1"]["new"]["points"]) == (10.0, 50.0)
    assert rows["L4"]["scoring_rules"] == ["+form"]
    assert (rows["L4"]["old"]["decided_by"], rows["L4"]["new"]["decided_by"]) == (None, "warm")
    assert rows["L5"]["scoring_rules"] == ["-chat"]
    assert "L2" not in rows
    assert "L6" not in rows


def test_opportunities_are_counted_by_stage_queue_and_rule(hand_files: dict[str, Path]) -> None:
    runs = replay({"new": engine(RULES_NEW), "old": engine(RULES)}, [records(HAND_HISTORY)])
    new, old = _report(runs)["rulesets"]
    assert new["opportunities"]["by_stage"] == [{"stage": "Needs Analysis", "count": 2, "amount": 24000.0}]
    assert new["opportunities"]["by_queue"] == {"Enterprise AEs": 2}
    assert new["opportunities"]["by_rule"] == {"hot": 2}
    assert old["converted"] == 1
    assert new["statuses"] == {"Open": 1, "Contacted": 2, "Qualified": 2, "Unqualified": 1}
    assert old["statuses"] == {"Open": 2, "Contacted": 2, "Qualified": 1, "Unqualified": 1}


def test_bad_events_are_counted_by_reason_with_their_line_and_the_rest_is_replayed(tmp_path: Path) -> None:
    from worker.tools.backtest import open_events_file

    rows = [orjson.dumps(e) for e in HAND_HISTORY]
    rows.insert(2, b"{not json")
    rows.insert(5, b'{"schema_version": 1, "event_type": "lead.activity", "lead_id": "L9"}')
    rows.insert(7, b"")  # blank lines are skipped, not bad
    path = write_lines(tmp_path / "events.jsonl", rows)

    with open_events_file(path, batch_size=4) as source:
        assert source.total == len(HAND_HISTORY) + 2
        runs = replay({"new": engine(RULES)}, source.batches, source.where)
    summary = _report(runs)["rulesets"][0]
    assert summary["events"]["valid"] == len(HAND_HISTORY)
    assert summary["bad_events"]["by_reason"] == {"not_json": 1, "schema_violation": 1}
    assert [(b["where"], b["reason"]) for b in summary["bad_events"]["examples"]] == [
        ("line 3", "not_json"),
        ("line 6", "schema_violation"),
    ]
    assert summary["leads"] == 6


def test_one_ruleset_alone_is_reported_without_a_comparison() -> None:
    report = _report(replay({"new": engine(RULES)}, [records(HAND_HISTORY)]))
    assert [s["role"] for s in report["rulesets"]] == ["new"]
    assert report["changed"] is None
    assert report["rule_changes"] is None


def test_a_replayed_event_id_is_recognised_as_the_worker_would(hand_files: dict[str, Path]) -> None:
    history = [*HAND_HISTORY, HAND_HISTORY[1]]  # L1's page views delivered twice
    runs = replay({"new": engine(RULES)}, [records(history)])
    summary = _report(runs)["rulesets"][0]
    assert summary["events"]["duplicates"] == 1
    assert runs["new"].leads["L1"].points == 10.0  # counted once


def test_an_erased_lead_is_forgotten_by_the_replay_and_its_later_events_start_again() -> None:
    erased = {"schema_version": 1, "event_type": "lead.erased", "event_id": "x", "lead_id": "L2"}
    erased["occurred_at"] = "2026-11-20T10:00:00Z"
    history = [*HAND_HISTORY, erased]
    runs = replay({"old": engine(RULES)}, [records(history)])
    assert "L2" not in runs["old"].leads  # L2 had converted: nothing of it is reported
    assert "L1" in runs["old"].leads
    again = [*history, {**HAND_HISTORY[2], "event_id": "again"}]  # L2 sent again after its erasure
    runs = replay({"old": engine(RULES)}, [records(again)])
    assert runs["old"].leads["L2"].converted_by is None  # a new lead: nothing of the old conversion


def test_the_columnar_engine_replays_to_the_same_report(synthetic: list[dict[str, Any]]) -> None:
    """``LEADFLOW_ENGINE=columnar``: the backtest's batches decided in columns give the reference's report."""
    history = [records(synthetic)]
    reference = replay({"new": engine(RULES_NEW), "old": engine(RULES)}, history)
    columnar = replay({"new": engine(RULES_NEW), "old": engine(RULES)}, history, decide=process_columnar)
    assert columnar["new"].decide is process_columnar
    assert _report(columnar) == _report(reference)
    assert any(lead.converted for lead in columnar["new"].leads.values())


def test_a_bounded_state_cache_keeps_fewer_decoded_states_and_changes_no_outcome(
    synthetic: list[dict[str, Any]],
) -> None:
    """``LEADFLOW_STATE_CACHE_SIZE``: the oldest half of the decoded states goes when the cache is over its bound;
    those leads are decoded again from their stored states, so the report stays the same (both engines)."""
    batches = [records(synthetic)[i : i + 97] for i in range(0, len(synthetic), 97)]
    unbounded = replay({"new": engine(RULES)}, batches)
    leads = len(unbounded["new"].leads)
    assert len(unbounded["new"]._cache) == leads > 100  # without a bound, every lead's decoded state stays
    for batch_engine in (process_batch, process_columnar):
        for size in (0, 10):
            bounded = replay({"new": engine(RULES)}, batches, decide=batch_engine, cache_size=size)
            assert _report(bounded) == _report(unbounded), (batch_engine, size)
            assert len(bounded["new"]._cache) <= size + 97  # trimmed before each batch, then the batch's leads
