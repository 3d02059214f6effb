"""The forecast's figures on a hand-built history, each computed by hand (see conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.tools.forecast.conftest import DECISIONS, FEEDBACK, LEADS, OPPORTUNITIES, records
from worker.rules import default_ruleset_path, load_ruleset
from worker.tools.forecast import build_forecast, count_leads, fold_opportunities

STAGES = load_ruleset(default_ruleset_path()).stages


@pytest.fixture
def report() -> dict[str, Any]:
    folded = fold_opportunities(records(OPPORTUNITIES), records(FEEDBACK), STAGES)
    leads = count_leads(records(DECISIONS), records(LEADS))
    return build_forecast(folded, leads, {"opportunities": "hand"}, list(STAGES))


def test_the_pipeline_by_stage_counts_amounts_and_expected_revenue(report: dict[str, Any]) -> None:
    assert report["pipeline"]["by_stage"] == {
        "Closed Lost": {"count": 1, "amount": 5_000, "expected_revenue": 0},
        "Closed Won": {"count": 1, "amount": 15_000, "expected_revenue": 15_000},
        "Needs Analysis": {"count": 1, "amount": 4_000, "expected_revenue": 800},
        "Negotiation/Review": {"count": 1, "amount": 20_000, "expected_revenue": 18_000},
        "Proposal/Price Quote": {"count": 1, "amount": 8_000, "expected_revenue": 6_000},
    }
    assert list(report["pipeline"]["by_stage"]) == [  # in the ruleset's order, as a pipeline reads
        "Needs Analysis",
        "Proposal/Price Quote",
        "Negotiation/Review",
        "Closed Won",
        "Closed Lost",
    ]
    assert (report["pipeline"]["won"], report["pipeline"]["lost"]) == (
        {"count": 1, "amount": 15_000},
        {"count": 1, "amount": 5_000},
    )


def test_the_forecast_rolls_up_closed_into_commit_into_best_case_into_pipeline(report: dict[str, Any]) -> None:
    forecast = report["forecast"]
    assert forecast["categories"] == {
        "Closed": {"count": 1, "amount": 15_000},
        "Forecast": {"count": 1, "amount": 20_000},  # shown as Commit
        "MostLikely": {"count": 0, "amount": 0},
        "BestCase": {"count": 1, "amount": 8_000},
        "Pipeline": {"count": 1, "amount": 4_000},
        "Omitted": {"count": 1, "amount": 5_000},
    }
    assert forecast["forecast"] == {
        "Closed": 15_000,
        "Forecast": 35_000,
        "MostLikely": 35_000,
        "BestCase": 43_000,
        "Pipeline": 47_000,
    }
    months = {month: m["forecast"] for month, m in forecast["by_close_month"].items()}
    assert months == {
        "2026-11": {"Closed": 15_000, "Forecast": 15_000, "MostLikely": 15_000, "BestCase": 15_000, "Pipeline": 15_000},
        "2026-12": {"Closed": 0, "Forecast": 20_000, "MostLikely": 20_000, "BestCase": 20_000, "Pipeline": 24_000},
        "2027-01": {"Closed": 0, "Forecast": 0, "MostLikely": 0, "BestCase": 8_000, "Pipeline": 8_000},
    }
    assert forecast["by_close_month"]["2026-11"]["categories"]["Omitted"] == {"count": 1, "amount": 5_000}  # C lost


def test_the_funnel_goes_from_the_decided_leads_to_won_by_source(report: dict[str, Any]) -> None:
    funnel = report["funnel"]
    assert list(funnel) == ["Web", "Partner", "none", "all"]
    assert funnel["Web"] == {
        "leads": 4,
        "opportunities": 3,
        "won": 1,
        "lost": 0,
        "lead_to_opportunity": 0.75,
        "opportunity_to_won": 0.3333,
        "win_rate_of_closed": 1.0,
    }
    assert funnel["Partner"] == {
        "leads": 2,
        "opportunities": 2,
        "won": 0,
        "lost": 1,
        "lead_to_opportunity": 1.0,
        "opportunity_to_won": 0.0,
        "win_rate_of_closed": 0.0,
    }
    assert (funnel["none"]["leads"], funnel["none"]["opportunities"]) == (1, 0)
    assert funnel["all"]["leads"] == 7
    assert funnel["all"]["lead_to_opportunity"] == round(5 / 7, 4)


def test_leads_fall_in_the_band_of_their_score_at_conversion(report: dict[str, Any]) -> None:
    bands = {band: (b["leads"], b["opportunities"]) for band, b in report["pipeline"]["by_score_band"].items()}
    assert bands == {
        "0.0-0.1": (1, 0),  # G
        "0.2-0.3": (1, 1),  # D
        "0.3-0.4": (2, 1),  # C, and F not converted
        "0.5-0.6": (1, 1),  # E
        "0.7-0.8": (1, 1),  # B
        "0.8-0.9": (1, 1),  # A
    }
    assert report["pipeline"]["by_score_band"]["0.3-0.4"]["lead_to_opportunity_rate"] == 0.5


def test_the_calibration_compares_the_score_with_the_outcome_of_closed_opportunities(report: dict[str, Any]) -> None:
    calibration = report["calibration"]
    assert (calibration["closed"], calibration["won"]) == (2, 1)  # B won at 0.75, C lost at 0.30
    assert calibration["bins"] == [
        {"lo": 0.3, "hi": 0.4, "n": 1, "predicted": 0.3, "observed": 0.0},
        {"lo": 0.7, "hi": 0.8, "n": 1, "predicted": 0.75, "observed": 1.0},
    ]
    assert calibration["ece"] == 0.275  # half the closed at |0.30 - 0| and half at |0.75 - 1|


def test_converting_rules_that_win_come_before_those_that_lose(report: dict[str, Any]) -> None:
    assert [(r["rule"], r["open"], r["won"], r["lost"], r["win_rate_of_closed"]) for r in report["rules"]] == [
        ("hot", 2, 1, 0, 1.0),
        ("warm", 1, 0, 1, 0.0),
    ]
    assert (report["rules"][0]["won_amount"], report["rules"][1]["lost_amount"]) == (15_000, 5_000)


def test_a_repeat_counts_once_an_acceptance_is_skipped_and_unknown_feedback_is_set_aside(
    report: dict[str, Any],
) -> None:
    assert report["feedback"] == {"replayed": 1, "accepted": 1, "dead_letters": {"unknown_opportunity": 1}}
    assert report["pipeline"]["opportunities"] == 5


def test_without_decisions_the_funnel_has_no_lead_counts() -> None:
    folded = fold_opportunities(records(OPPORTUNITIES), [], STAGES)
    report = build_forecast(folded, None, {})
    assert report["funnel"]["Web"]["leads"] is None
    assert report["funnel"]["Web"]["lead_to_opportunity"] is None
    assert report["forecast"]["forecast"]["Pipeline"] == 37_000  # nothing closed or moved: every amount is Pipeline
    assert report["calibration"] == {"closed": 0, "won": 0, "mean_score": None, "ece": None, "bins": []}


def test_an_erased_lead_is_not_counted_nor_its_source_kept() -> None:
    erasure = {"event_type": "lead.erased", "lead_id": "L-F", "event_id": "x", "erased_at": "2026-11-20T10:00:00Z"}
    erase_event = {"event_type": "lead.erased", "lead_id": "L-F"}
    kept = count_leads(records(DECISIONS), records(LEADS))
    forgotten = count_leads(records([*DECISIONS, erasure]), records([*LEADS, erase_event]))
    assert set(kept.decided) - set(forgotten.decided) == {"L-F"}
    assert set(kept.sources) - set(forgotten.sources) == {"L-F"}
