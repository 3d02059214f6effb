"""The shipped default ruleset: it loads, and it decides sensibly for realistic leads."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.builders import T0, activity, upsert
from tests.unit.rules.helpers import lead_facts
from worker.rules import Ruleset, default_ruleset_path, load_ruleset


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset(default_ruleset_path())


def test_the_default_ruleset_loads(ruleset: Ruleset) -> None:
    assert default_ruleset_path().name == "default.yaml"
    assert ruleset.name == "default"
    assert ruleset.version.startswith("1.0+")
    assert ruleset.default_status == "Open"
    assert ruleset.conversion.queue == "Unassigned Leads"
    assert [r.id for r in ruleset.qualification_rules] == [
        "unsubscribed",
        "bounced-no-engagement",
        "hot",
        "demo-request-fit",
        "warm",
    ]


def test_a_hot_lead_converts_to_an_opportunity(ruleset: Ruleset) -> None:
    facts = lead_facts(
        [
            upsert(
                "u1",
                company="Acme Corp",
                last_name="Doe",
                title="VP of Engineering",
                email="jo@acme.com",
                number_of_employees=800,
                annual_revenue=50_000_000.0,
                industry="Software",
                lead_source="Web",
            ),
            activity("a1", "page_view", count=6),
            activity("a2", "webinar_attended"),
            activity("a3", "demo_request", T0 + dt.timedelta(hours=1)),
        ],
        score=0.62,
    )
    outcome = ruleset.evaluate(facts)
    # fit 20 + 10 + 8 + 10 + 5, engagement 40 + 15 + 6
    assert outcome.points == 114
    rule = outcome.qualification
    assert rule is not None
    assert rule.id == "hot"
    assert rule.status == "Qualified"
    assert rule.convert is True
    assert ruleset.statuses[rule.status].converted is True
    spec = rule.opportunity
    assert spec is not None
    assert spec.stage.name == "Needs Analysis"
    assert spec.stage.probability == 20
    assert spec.queue == "Inbound AEs"
    assert spec.close_in_days == 30
    assert spec.amount(facts) == 50_000
    assert spec.name(facts) == "Acme Corp - Web"
    assert outcome.matched_rules[-1] == "hot"
    assert "demo-request" in outcome.matched_rules
    assert "page-views" in outcome.matched_rules


def test_a_demo_request_with_a_low_score_still_converts_through_the_demo_rule(ruleset: Ruleset) -> None:
    facts = lead_facts(
        [upsert("u1", company="Tiny", last_name="Roe", lead_source="Web"), activity("a1", "demo_request")],
        score=0.1,
    )
    outcome = ruleset.evaluate(facts)
    assert outcome.points == 45
    assert outcome.qualification is not None
    assert outcome.qualification.id == "demo-request-fit"
    spec = outcome.qualification.opportunity
    assert spec is not None
    assert spec.stage.name == "Qualification"
    assert spec.amount(facts) == 10_000  # the conversion default: no revenue to scale


def test_a_warm_lead_is_contacted(ruleset: Ruleset) -> None:
    facts = lead_facts(
        [
            upsert(
                "u1",
                company="Globex",
                last_name="Lee",
                title="Marketing Manager",
                email="lee@globex.example",
                number_of_employees=120,
                lead_source="Partner",
            ),
            activity("a1", "content_download"),
            activity("a2", "page_view", count=4),
        ],
        score=0.2,
    )
    outcome = ruleset.evaluate(facts)
    assert outcome.points == 39  # manager 5, 50-199 employees 5, partner 15, download 10, 4 page views
    assert outcome.qualification is not None
    assert outcome.qualification.id == "warm"
    assert outcome.qualification.status == "Contacted"
    assert outcome.qualification.opportunity is None


def test_an_unsubscribed_lead_is_unqualified_whatever_its_points(ruleset: Ruleset) -> None:
    facts = lead_facts(
        [
            upsert("u1", company="Initech", last_name="Smith", title="CEO", number_of_employees=5000),
            activity("a1", "demo_request"),
            activity("a2", "unsubscribe"),
        ],
        score=0.9,
    )
    outcome = ruleset.evaluate(facts)
    assert outcome.points >= 70
    assert outcome.qualification is not None
    assert outcome.qualification.id == "unsubscribed"
    assert ruleset.statuses[outcome.qualification.status].disqualified is True


def test_a_bounced_lead_without_engagement_is_unqualified(ruleset: Ruleset) -> None:
    facts = lead_facts(
        [upsert("u1", company="Nowhere", last_name="X", email="x@gmail.com"), activity("a1", "email_bounced")],
        score=0.05,
    )
    outcome = ruleset.evaluate(facts)
    assert outcome.points == -40
    assert outcome.qualification is not None
    assert outcome.qualification.id == "bounced-no-engagement"


def test_a_bounce_after_engagement_is_only_negative_points(ruleset: Ruleset) -> None:
    facts = lead_facts(
        [upsert("u1", company="Some", last_name="Y"), activity("a1", "form_submit"), activity("a2", "email_bounced")],
        score=0.05,
    )
    outcome = ruleset.evaluate(facts)
    assert outcome.points == -20
    assert outcome.qualification is None


def test_a_student_on_a_free_mailbox_stays_open(ruleset: Ruleset) -> None:
    facts = lead_facts(
        [
            upsert("u1", company="Uni", last_name="Z", title="PhD Student", email="z@Gmail.com"),
            activity("a1", "page_view", count=30),
        ],
        score=0.01,
    )
    outcome = ruleset.evaluate(facts)
    assert outcome.points == -15  # -20 student, -10 free mailbox, +15 capped page views
    assert outcome.qualification is None
    assert outcome.matched_rules == ("fit-title-student", "free-email-domain", "page-views")
