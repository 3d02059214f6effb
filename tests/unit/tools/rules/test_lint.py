"""Each lint of ``rules check``: found on a small ruleset that has the problem, absent on one that does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.tools.rules.helpers import check, codes, leaf, only, q, scoring_rule
from worker.conditions import _operators as _ops
from worker.conditions._fields import Kind
from worker.exceptions import ConfigError
from worker.tools.rules import read_sample

NEVER = [
    pytest.param(
        {"all": [leaf("custom.size", "gt", 10), leaf("custom.size", "lt", 5)]},
        "`custom.size gt 10` and `custom.size lt 5` cannot all be true",
        id="gt-and-lt",
    ),
    pytest.param(
        {"all": [leaf("country", "eq", "DE"), leaf("country", "eq", "AT")]},
        '`country eq "AT"` and `country eq "DE"` cannot all be true',
        id="two-eq",
    ),
    pytest.param(
        {"not": {"any": [leaf("country", "is_null"), leaf("country", "is_not_null")]}},
        "`not (country is_not_null)` and `not (country is_null)` cannot all be true",
        id="not-of-always-true",
    ),
    pytest.param(
        leaf("activity.demo_request.count", "lt", 1),
        "`activity.demo_request.count lt 1` is never true (an activity count is 1 or more when set, and missing "
        "when the lead never had that activity)",
        id="count-below-one",
    ),
    pytest.param(
        {"all": [leaf("number_of_employees", "gt", 5), leaf("number_of_employees", "lt", 6)]},
        "(number_of_employees is a whole number, 0 or more)",
        id="no-whole-number-between",
    ),
    pytest.param(
        {"all": [leaf("title", "starts_with_ci", "vp"), {"not": leaf("title", "contains_ci", "V")}]},
        "cannot all be true",
        id="prefix-against-not-contains",
    ),
    pytest.param(
        {"all": [leaf("title", "starts_with", "VP"), leaf("title", "starts_with", "Head")]},
        "cannot all be true",
        id="two-prefixes",
    ),
    pytest.param(
        {"all": [leaf("country", "in", ["DE", "AT"]), leaf("country", "not_in", ["AT", "DE"])]},
        "cannot all be true",
        id="in-and-not-in",
    ),
    pytest.param(
        {"all": [leaf("country", "eq_ci", "de"), leaf("country", "ne_ci", "DE")]},
        "cannot all be true",
        id="eq-ci-and-ne-ci",
    ),
    pytest.param(
        {"all": [leaf("country", "in_ci", ["de", "at"]), leaf("country", "eq", "CH")]},
        "cannot all be true",
        id="in-ci-and-eq",
    ),
    pytest.param(
        {"all": [leaf("company", "is_null"), leaf("company", "contains", "Inc")]}, "cannot all be true", id="null"
    ),
    pytest.param(leaf("score", "gt", 1), "(the score is a probability, from 0 to 1)", id="score-above-one"),
    pytest.param(
        {"all": [leaf("last_activity_at", "within_days", 7), leaf("last_activity_at", "not_within_days", 30)]},
        "cannot all be true",
        id="within-7-not-within-30",
    ),
    pytest.param(leaf("event.type", "eq", "lead.created"), "is never true", id="unknown-event-type"),
    pytest.param(
        {"any": [{"all": [leaf("custom.a", "eq", 1), leaf("custom.a", "eq", 2)]}, leaf("score", "lt", 0)]},
        "cannot all be true",
        id="every-alternative",
    ),
    pytest.param(
        {"all": [leaf("custom.flag", "eq", True), leaf("custom.flag", "ne", True)]},
        "cannot all be true",
        id="eq-and-ne",
    ),
]

POSSIBLE = [
    pytest.param({"all": [leaf("custom.size", "gt", 5), leaf("custom.size", "lt", 6)]}, id="decimal-between"),
    pytest.param({"all": [leaf("country", "eq", "DE"), leaf("country", "in_ci", ["de", "at"])]}, id="eq-in-ci"),
    pytest.param(
        {"all": [leaf("last_activity_at", "not_within_days", 7), leaf("last_activity_at", "within_days", 30)]},
        id="between-7-and-30-days",
    ),
    pytest.param(
        {"all": [leaf("email", "ends_with", "@acme.com"), {"not": leaf("email", "ends_with_ci", "@gmail.com")}]},
        id="suffixes",
    ),
    pytest.param(
        {"all": [leaf("activity.call.count", "gte", 1), leaf("activity.call.count", "lte", 1)]}, id="one-call"
    ),
    pytest.param({"not": leaf("country", "is_null")}, id="not-null"),
    pytest.param(leaf("activity.demo_request.count", "is_null"), id="never-asked"),
    pytest.param(
        {"all": [leaf("title", "contains_ci", ["vp", "chief"]), {"not": leaf("title", "contains", "vp")}]},
        id="case-matters",
    ),
    pytest.param({"all": [leaf("custom.x", "ne", "a"), leaf("custom.x", "ne", "b")]}, id="two-ne"),
]


@pytest.mark.parametrize(("when", "why"), NEVER)
def test_never_matches_is_found(when: dict[str, Any], why: str) -> None:
    report = check(scoring=[scoring_rule(when)], qualification=[q("q", when)])
    assert codes(report) == [("never-matches", "s"), ("never-matches", "q")]
    scoring, qualification = report.findings
    assert scoring.message.startswith("can never match, so it never adds its points: ")
    assert qualification.message.startswith("can never match, so it never fires: ")
    assert why in scoring.message
    assert scoring.severity == "warning"
    assert scoring.line == 3


@pytest.mark.parametrize("when", POSSIBLE)
def test_never_matches_is_absent_when_a_lead_can_match(when: dict[str, Any]) -> None:
    assert codes(check(scoring=[scoring_rule(when)], qualification=[q("q", when)])) == []


def test_an_operator_the_analysis_does_not_know_never_causes_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    def odd(_: object) -> _ops.Test:
        def test(x: object) -> bool:
            return isinstance(x, int) and x % 2 == 1

        return test

    operator = _ops.Operator("odd", _ops.Takes.NOTHING, frozenset(Kind), test=odd)
    monkeypatch.setitem(_ops.OPERATORS, "odd", operator)  # type: ignore[index]  # the table is a dict
    possible = [
        {"all": [leaf("custom.n", "odd"), leaf("custom.n", "eq", 5)]},
        {"all": [leaf("custom.n", "odd"), leaf("custom.n", "gte", 3), leaf("custom.n", "lte", 3)]},
        {"all": [leaf("custom.n", "odd"), {"not": leaf("custom.n", "eq", 1)}]},
    ]
    number = {"custom.n": "number"}
    for when in possible:
        assert codes(check(scoring=[scoring_rule(when)], fields=number)) == [], when
    never = {"all": [leaf("custom.n", "odd"), {"not": leaf("custom.n", "odd")}]}
    assert codes(check(scoring=[scoring_rule(never)], fields=number)) == [("never-matches", "s")]
    exact = {"all": [leaf("custom.n", "odd"), leaf("custom.n", "in", [2, 4])]}  # a test of one value: tried on each
    assert codes(check(scoring=[scoring_rule(exact)], fields=number)) == [("never-matches", "s")]


def test_points_unreachable_is_found() -> None:
    scoring = [
        scoring_rule(leaf("number_of_employees", "gte", 1000), "big", 20),
        {"id": "views", "per": "activity.page_view.count", "points": 2, "max": 10},
        scoring_rule({"all": [leaf("custom.a", "eq", 1), leaf("custom.a", "eq", 2)]}, "never", 100),
    ]
    report = check(scoring, [q("hot", leaf("points", "gte", 31), "Qualified", convert=True)])
    finding = only(report, "points-unreachable")
    assert finding.rule_id == "hot"
    assert finding.message == (
        "can never match: it asks for `points gte 31`, but the scoring rules add up to points between 0 and 30; "
        "lower the threshold or add scoring rules"
    )
    low = check(scoring, [q("cold", leaf("points", "lt", -5))])
    assert codes(low) == [("never-matches", "never"), ("points-unreachable", "cold")]


@pytest.mark.parametrize(
    ("scoring", "threshold"),
    [
        ([scoring_rule(leaf("number_of_employees", "gte", 1000), "big", 20)], 20),
        ([{"id": "views", "per": "activity.page_view.count", "points": 1}], 1000),  # no max: no limit
        ([{"id": "size", "per": "custom.seats", "points": 0.5}], 1e9),
    ],
)
def test_points_unreachable_is_absent_when_the_points_can_add_up(
    scoring: list[dict[str, Any]], threshold: float
) -> None:
    assert codes(check(scoring, [q("hot", leaf("points", "gte", threshold))])) == []


def test_a_total_that_is_rounded_is_given_its_rounding() -> None:
    scoring = [scoring_rule(leaf("country", "eq", "DE"), "a", 0.1), scoring_rule(leaf("city", "eq", "X"), "b", 0.2)]
    assert codes(check(scoring, [q("q", leaf("points", "gte", 0.3))])) == []
    assert codes(check(scoring, [q("q", leaf("points", "gt", 0.3002))])) == [("points-unreachable", "q")]


def test_shadowed_is_found_with_the_rule_that_takes_the_leads() -> None:
    report = check(
        qualification=[
            q("dach", leaf("country", "in_ci", ["de", "at", "ch"])),
            q("other", leaf("city", "eq", "Paris"), "Unqualified"),
            q("germany-big", {"all": [leaf("country", "eq", "DE"), leaf("number_of_employees", "gte", 1000)]}),
        ]
    )
    finding = only(report, "shadowed")
    assert finding.rule_id == "germany-big"
    assert finding.message == (
        "never fires: every lead it matches is already taken by the earlier rule 'dach' (line 3); "
        "move it higher or narrow the earlier rule"
    )
    assert finding.line == 18


def test_shadowed_by_several_rules_together() -> None:
    report = check(
        qualification=[
            q("small", leaf("number_of_employees", "lt", 100)),
            q("big", leaf("number_of_employees", "gte", 100), "Qualified", convert=True),
            q("known-size", leaf("number_of_employees", "is_not_null"), "Unqualified"),
        ]
    )
    finding = only(report, "shadowed")
    assert finding.rule_id == "known-size"
    assert "the earlier rules 'small' (line 3), 'big' (line 9)" in finding.message


def test_shadowed_is_absent_when_some_lead_reaches_the_rule() -> None:
    report = check(
        qualification=[
            q("dach", leaf("country", "in", ["DE", "AT"])),
            q("germany-big", {"all": [leaf("country", "eq_ci", "de"), leaf("number_of_employees", "gte", 1000)]}),
        ]
    )
    assert "shadowed" not in [c for c, _ in codes(report)]


def test_overlap_is_reported_with_an_example_lead() -> None:
    report = check(
        qualification=[
            q("unsubscribed", leaf("activity.unsubscribe.count", "gte", 1), "Unqualified"),
            q("enterprise", leaf("number_of_employees", "gte", 1000), "Qualified", convert=True),
        ]
    )
    finding = only(report, "overlap")
    assert finding.severity == "info"
    assert finding.rule_id == "enterprise"
    assert finding.message == (
        "can match the same lead as the earlier rule 'unsubscribed' (line 3), for example a lead with "
        "activity.unsubscribe.count = 1, number_of_employees = 1000; 'unsubscribed' wins because it comes first "
        "(status 'Unqualified' rather than 'Qualified'); check that this order is what you want"
    )


@pytest.mark.parametrize(
    "rules",
    [
        [q("a", leaf("country", "eq", "DE")), q("b", leaf("city", "eq", "Berlin"))],  # same outcome
        [q("a", leaf("country", "eq", "DE")), q("b", leaf("country", "eq", "AT"), "Unqualified")],  # disjoint
    ],
)
def test_overlap_is_absent_for_the_same_outcome_or_disjoint_rules(rules: list[dict[str, Any]]) -> None:
    assert codes(check(qualification=rules)) == []


def test_overlap_names_a_different_opportunity() -> None:
    opp = {"stage": "Needs Analysis", "queue": "Enterprise"}
    report = check(
        qualification=[
            q("a", leaf("country", "eq", "DE"), "Qualified", convert=True, opportunity=opp),
            q("b", leaf("city", "eq", "Berlin"), "Qualified", convert=True),
        ]
    )
    assert "(an opportunity at stage 'Needs Analysis' for 'Enterprise')" in only(report, "overlap").message


def test_too_complex_is_said_instead_of_guessed() -> None:
    many = {"all": [{"any": [leaf(f"custom.f{i}{j}", "eq", j) for j in range(8)]} for i in range(5)]}
    report = check(scoring=[scoring_rule(many)])
    finding = only(report, "too-complex")
    assert finding.severity == "info"
    assert "too many alternatives" in finding.message
    assert report.exit_code() == 0
    assert report.exit_code(strict=True) == 1


def test_invalid_rulesets_report_their_problems_and_no_findings() -> None:
    report = check(scoring=[scoring_rule(leaf("country", "in", []))])
    assert report.exit_code() == 2
    assert not report.valid
    assert report.findings == []
    (problem,) = report.problems
    assert problem.line == 7
    assert "op 'in' needs a list of values" in problem.message


def _sample(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "sample.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


UPSERT = (
    '{"event_id": "e1", "event_type": "lead.upserted", "occurred_at": "2026-01-01T00:00:00Z", "lead_id": "L1", '
    '"lead": {"company": "Acme", "country": null, "custom": {"plan": "pro", "seats": null}}}'
)
ACTIVITY = (
    '{"event_id": "e2", "event_type": "lead.activity", "occurred_at": "2026-01-01T00:00:00Z", "lead_id": "L1", '
    '"activity": {"type": "page_view"}}'
)


def test_fields_never_set_in_a_sample_are_reported(tmp_path: Path) -> None:
    sample = read_sample(_sample(tmp_path, UPSERT, ACTIVITY, "not json", ""))
    assert (sample.events, sample.invalid) == (2, 1)
    when = {
        "all": [
            leaf("company", "is_not_null"),
            leaf("custom.plan", "eq", "pro"),
            leaf("activity.page_view.count", "gte", 1),
            leaf("days_since_last_activity", "lt", 3),
            leaf("score", "gte", 0.5),
        ]
    }
    assert codes(check([scoring_rule(when)], sample=sample)) == []
    unset = {"any": [leaf("country", "eq", "DE"), leaf("custom.seats", "gt", 5), leaf("custom.seats", "lt", 1)]}
    scoring = [scoring_rule(unset), {"id": "demos", "per": "activity.demo_request.count", "points": 5}]
    report = check(scoring, sample=sample)
    assert codes(report) == [("field-never-set", "s"), ("field-never-set", "s"), ("field-never-set", "demos")]
    assert report.findings[0].message == (
        f"reads field 'country', which none of the 2 events in {tmp_path / 'sample.jsonl'} sets (1 lines were not "
        "lead events); the rule will always see it missing: check the field name or the producers"
    )
    assert report.findings[0].line == 6  # the test that reads it


def test_an_unreadable_sample_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the sample"):
        read_sample(tmp_path / "missing.jsonl")


def test_the_default_ruleset_has_no_warning() -> None:
    from worker.rules import default_ruleset_path
    from worker.tools.rules import check_text

    path = default_ruleset_path()
    report = check_text(path.read_text(encoding="utf-8"), str(path))
    assert report.exit_code() == 0
    assert {f.code for f in report.findings} == {"overlap"}


def test_the_json_form_has_every_key() -> None:
    report = check(scoring=[scoring_rule(leaf("score", "gt", 2))])
    data = report.to_dict()
    assert data["valid"] is True
    assert data["exit_code"] == 1
    assert data["findings"] == [
        {
            "severity": "warning",
            "code": "never-matches",
            "file": "rules.yaml",
            "line": 3,
            "rule_id": "s",
            "message": "can never match, so it never adds its points: `score gt 2` is never true "
            "(the score is a probability, from 0 to 1)",
        }
    ]


def test_decayed_points_stay_within_the_range() -> None:
    scoring = [scoring_rule(leaf("activity.demo_request.count", "gte", 1), "demo", 40)]
    decayed = check(scoring, [q("q", leaf("points", "gt", 40))], decay={"percent": 50, "days": 30})
    assert codes(decayed) == [("points-unreachable", "q")]
    assert codes(check(scoring, [q("q", leaf("points", "gte", 40))], decay={"percent": 50, "days": 30})) == []
    assert (
        codes(check(scoring, [q("q", leaf("points", "between", [0.5, 39.5]))], decay={"percent": 50, "days": 30})) == []
    )
