"""Converting rules: opportunity specs merged over the conversion defaults, amounts and name templates."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.rules.helpers import facts, make_ruleset
from worker.rules import OpportunitySpec, Ruleset

DEMO = {"field": "activity.demo_request.count", "op": "gte", "value": 1}


def converting(opportunity: dict[str, Any] | None = None, **top: Any) -> Ruleset:
    rule: dict[str, Any] = {"id": "hot", "when": DEMO, "status": "Qualified", "convert": True}
    if opportunity is not None:
        rule["opportunity"] = opportunity
    return make_ruleset(qualification=[rule], **top)


def spec_of(ruleset: Ruleset) -> OpportunitySpec:
    spec = ruleset.qualification_rules[0].opportunity
    assert spec is not None
    return spec


def test_a_converting_rule_without_overrides_gets_the_defaults() -> None:
    ruleset = converting()
    spec = spec_of(ruleset)
    assert spec.stage.name == "Prospecting"
    assert spec.stage.probability == 10
    assert spec.stage.forecast_category == "Pipeline"
    assert spec.close_in_days == 30
    assert spec.amount(facts()) is None
    assert spec.owner_id is None
    assert spec.queue is None  # the core falls back to the lead's owner, then conversion.queue
    assert ruleset.conversion.queue == "Unassigned Leads"
    assert spec.name(facts(company="Acme", lead_source="Web")) == "Acme - Web"


def test_rule_overrides_merge_over_conversion_defaults() -> None:
    ruleset = converting(
        {"stage": "Needs Analysis", "close_in_days": 45, "queue": "Enterprise AEs", "amount": 12000},
        conversion={"stage": "Qualification", "close_in_days": 14, "amount": 5000, "queue": "Pool", "name": "$company"},
    )
    spec = spec_of(ruleset)
    assert (spec.stage.name, spec.stage.probability) == ("Needs Analysis", 20)
    assert spec.close_in_days == 45
    assert spec.queue == "Enterprise AEs"
    assert spec.amount(facts()) == 12000
    assert spec.name(facts(company="Acme")) == "Acme"
    assert ruleset.conversion.stage.name == "Qualification"
    assert ruleset.conversion.amount == 5000


def test_owner_id_instead_of_queue() -> None:
    spec = spec_of(converting({"owner_id": "005000000000001"}))
    assert spec.owner_id == "005000000000001"
    assert spec.queue is None


def test_a_non_converting_rule_has_no_opportunity() -> None:
    ruleset = make_ruleset(qualification=[{"id": "warm", "when": DEMO, "status": "Contacted"}])
    assert ruleset.qualification_rules[0].opportunity is None
    assert ruleset.qualification_rules[0].convert is False


@pytest.mark.parametrize(
    ("revenue", "expected"),
    [
        (50_000_000.0, 50_000.0),
        (1_000_000.0, 5_000.0),
        (10**12, 250_000.0),
        (123_456_789.0, 123_456.79),
        (None, 7_500.0),
    ],
)
def test_amount_from_a_field_scaled_and_clamped(revenue: float | None, expected: float) -> None:
    ruleset = converting(
        {"amount": {"field": "annual_revenue", "multiply": 0.001, "min": 5000, "max": 250000}},
        conversion={"amount": 7500},
    )
    assert spec_of(ruleset).amount(facts(annual_revenue=revenue)) == expected


def test_amount_rounding_and_custom_fields() -> None:
    spec = spec_of(converting({"amount": {"field": "custom.deal_size", "round": 0}}))
    assert spec.amount(facts(**{"custom.deal_size": 1234.56})) == 1235
    assert spec.amount(facts(**{"custom.deal_size": "big"})) is None  # not a number: the default amount (none)
    assert spec.amount(facts()) is None


def test_an_explicit_null_amount_means_no_amount() -> None:
    spec = spec_of(converting({"amount": None}, conversion={"amount": 5000}))
    assert spec.amount(facts()) is None


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("$company - $lead_source", {"company": "Acme", "lead_source": "Web"}, "Acme - Web"),
        ("$company - $lead_source", {"company": "Acme"}, "Acme"),
        ("$company - $lead_source", {"lead_source": "Web"}, "Web"),
        ("$company - $lead_source", {}, "Opportunity"),
        ("$company - $industry - $lead_source", {"company": "Acme", "lead_source": "Web"}, "Acme - Web"),
        ("${company}: ${custom.plan} seats", {"company": "Acme", "custom.plan": 12.0}, "Acme: 12 seats"),
        ("$first_name $last_name | $company", {"last_name": "Doe"}, "Doe"),
        ("Inbound  $$ deal for $company", {"company": "Acme"}, "Inbound $ deal for Acme"),
    ],
)
def test_name_templates_render_and_tidy(template: str, values: dict[str, object], expected: str) -> None:
    spec = spec_of(converting({"name": template}))
    assert spec.name(facts(**values)) == expected
    assert spec.name_template == template
