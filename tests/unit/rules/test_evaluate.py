"""Scoring (additive, per/max, negative points), qualification order, and what evaluate returns."""

from __future__ import annotations

import pytest

from tests.unit.rules.helpers import facts, make_ruleset

DEMO = {"field": "activity.demo_request.count", "op": "gte", "value": 1}
BOUNCED = {"field": "activity.email_bounced.count", "op": "gte", "value": 1}


def test_matching_scoring_rules_add_up_and_negative_points_subtract() -> None:
    ruleset = make_ruleset(
        scoring=[
            {"id": "demo", "when": DEMO, "points": 40},
            {"id": "vp", "when": {"field": "title", "op": "contains_ci", "value": "vp"}, "points": 15},
            {"id": "bounced", "when": BOUNCED, "points": -30},
        ]
    )
    outcome = ruleset.evaluate(
        facts(**{"activity.demo_request.count": 1, "activity.email_bounced.count": 2, "title": "CTO"})
    )
    assert outcome.points == 10
    assert outcome.matched_rules == ("demo", "bounced")
    assert outcome.qualification is None


@pytest.mark.parametrize(
    ("views", "points", "rule_matched"),
    [(None, 0, False), (0, 0, False), (3, 6, True), (10, 20, True), (500, 20, True)],
)
def test_per_multiplies_by_the_fact_and_max_caps_it(views: int | None, points: float, rule_matched: bool) -> None:
    ruleset = make_ruleset(scoring=[{"id": "views", "per": "activity.page_view.count", "points": 2, "max": 20}])
    outcome = ruleset.evaluate(facts(**{"activity.page_view.count": views}))
    assert outcome.points == points
    assert ("views" in outcome.matched_rules) is rule_matched


def test_max_caps_negative_points_by_size() -> None:
    ruleset = make_ruleset(scoring=[{"id": "bounces", "per": "activity.email_bounced.count", "points": -10, "max": 25}])
    assert ruleset.evaluate(facts(**{"activity.email_bounced.count": 5})).points == -25
    assert ruleset.evaluate(facts(**{"activity.email_bounced.count": 2})).points == -20


def test_per_with_when_needs_both() -> None:
    ruleset = make_ruleset(
        scoring=[
            {
                "id": "clicks-from-vps",
                "when": {"field": "title", "op": "contains_ci", "value": "vp"},
                "per": "activity.email_click.count",
                "points": 3,
            }
        ]
    )
    assert ruleset.evaluate(facts(**{"title": "VP", "activity.email_click.count": 2})).points == 6
    assert ruleset.evaluate(facts(**{"title": "Intern", "activity.email_click.count": 2})).points == 0


def test_per_over_a_custom_number_and_fractional_points() -> None:
    ruleset = make_ruleset(scoring=[{"id": "seats", "per": "custom.seats", "points": 0.1}])
    assert ruleset.evaluate(facts(**{"custom.seats": 3})).points == 0.3
    assert ruleset.evaluate(facts(**{"custom.seats": "many"})).points == 0


def test_a_zero_point_rule_never_shows_as_matched() -> None:
    ruleset = make_ruleset(scoring=[{"id": "marker", "when": DEMO, "points": 0}])
    outcome = ruleset.evaluate(facts(**{"activity.demo_request.count": 1}))
    assert outcome.matched_rules == ()


def test_points_are_stored_in_the_facts_before_qualification() -> None:
    ruleset = make_ruleset(
        scoring=[{"id": "demo", "when": DEMO, "points": 40}],
        qualification=[{"id": "hot", "when": {"field": "points", "op": "gte", "value": 40}, "status": "Contacted"}],
    )
    lead = facts(**{"activity.demo_request.count": 1, "points": 0.0})
    outcome = ruleset.evaluate(lead)
    assert lead["points"] == 40
    assert outcome.qualification is not None
    assert outcome.qualification.id == "hot"
    assert outcome.matched_rules == ("demo", "hot")


def test_qualification_is_first_match_wins_in_file_order() -> None:
    ruleset = make_ruleset(
        qualification=[
            {
                "id": "unsubscribed",
                "when": {"field": "activity.unsubscribe.count", "op": "gte", "value": 1},
                "status": "Unqualified",
            },
            {"id": "demo", "when": DEMO, "status": "Qualified", "convert": True},
            {"id": "any-demo", "when": DEMO, "status": "Contacted"},
        ]
    )
    both = ruleset.evaluate(facts(**{"activity.unsubscribe.count": 1, "activity.demo_request.count": 1}))
    assert both.qualification is not None
    assert both.qualification.id == "unsubscribed"
    assert both.matched_rules == ("unsubscribed",)
    demo = ruleset.evaluate(facts(**{"activity.demo_request.count": 1}))
    assert demo.qualification is not None
    assert demo.qualification.id == "demo"
    assert demo.qualification.convert is True
    assert ruleset.evaluate(facts()).qualification is None


def test_status_definitions_and_defaults() -> None:
    ruleset = make_ruleset()
    assert ruleset.default_status == "Open"
    assert list(ruleset.statuses) == ["Open", "Contacted", "Qualified", "Unqualified"]
    assert ruleset.statuses["Qualified"].converted is True
    assert ruleset.statuses["Unqualified"].disqualified is True
    assert ruleset.statuses.get("Nurture") is None
    assert ruleset.stages["Closed Won"].won is True
    assert ruleset.stages["Negotiation/Review"].probability == 90
    assert ruleset.name == "ruleset"


def test_custom_statuses_and_default_status() -> None:
    ruleset = make_ruleset(
        statuses=[{"name": "New"}, {"name": "Nurture", "default": True}, {"name": "Won", "converted": True}],
        qualification=[{"id": "q", "when": DEMO, "status": "Won", "convert": True}],
    )
    assert ruleset.default_status == "Nurture"
    assert set(ruleset.statuses) == {"New", "Nurture", "Won"}
    first = make_ruleset(statuses=[{"name": "New"}, {"name": "Working"}])
    assert first.default_status == "New"


def test_stages_override_and_add_by_name() -> None:
    ruleset = make_ruleset(
        stages=[
            {"name": "Prospecting", "probability": 5},
            {"name": "Discovery", "probability": 15, "forecast_category": "BestCase"},
        ]
    )
    assert ruleset.stages["Prospecting"].probability == 5
    assert ruleset.stages["Prospecting"].forecast_category == "Pipeline"
    assert ruleset.stages["Discovery"].forecast_category == "BestCase"
    assert ruleset.conversion.stage.probability == 5


def test_rules_keep_their_descriptions() -> None:
    ruleset = make_ruleset(scoring=[{"id": "demo", "description": "asked for a demo", "when": DEMO, "points": 1}])
    assert ruleset.scoring_rules[0].description == "asked for a demo"
