"""What a broken ruleset reports: every problem at once, each with its line, rule id and a suggestion."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from worker.conditions.limits import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_FIELDS,
    MAX_LIST_VALUES,
    MAX_PATTERN_CHARS,
    MAX_RULES,
)
from worker.exceptions import Problem, RulesetError
from worker.rules import load_ruleset, parse_ruleset


def problems(text: str) -> list[Problem]:
    with pytest.raises(RulesetError) as info:
        parse_ruleset(textwrap.dedent(text), "rules.yaml")
    return list(info.value.problems)


def only(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def scoring_rule(when: str, extra: str = "points: 5") -> str:
    return f"""\
        version: "1"
        scoring:
          - id: r1
            when: {when}
            {extra}
        """


def test_three_different_mistakes_are_reported_together_with_their_lines() -> None:
    found = problems(
        """\
        version: "1"
        scoring:
          - id: demo
            when: {field: activity.demo_request.count, op: gte, value: 1}
            pionts: 40
          - id: revenue
            when: {field: anual_revenue, op: gte, value: 1000000}
            points: 10
        qualification:
          - id: hot
            when: {field: points, op: gte, value: 60}
            status: Qualifed
        """
    )
    assert [(p.line, p.rule_id, p.suggestion) for p in found] == [
        (5, "demo", "points"),
        (7, "revenue", "annual_revenue"),
        (12, "hot", "Qualified"),
    ]
    assert all(p.path == "rules.yaml" for p in found)
    assert "unknown key 'pionts'" in found[0].message
    assert "unknown field 'anual_revenue'" in found[1].message
    assert "unknown status 'Qualifed'" in found[2].message


def test_the_error_message_lists_every_problem() -> None:
    with pytest.raises(RulesetError) as info:
        parse_ruleset('version: "1"\nscoring:\n  - {id: a, per: activity.page_view.count, pionts: 1}\n', "r.yaml")
    text = str(info.value)
    assert text.startswith("ruleset has 1 problem:")
    assert (
        "r.yaml:3: rule 'a': scoring[0].pionts: unknown key 'pionts' in scoring rule (did you mean 'points'?)" in text
    )
    assert isinstance(info.value, ValueError)


def test_unknown_activity_type_near_a_known_one() -> None:
    problem = only(scoring_rule("{field: activity.demo_requests.count, op: gte, value: 1}"))
    assert problem.line == 4
    assert problem.suggestion == "activity.demo_request.count"


def test_own_activity_types_are_allowed() -> None:
    ruleset = parse_ruleset(textwrap.dedent(scoring_rule("{field: activity.trial_signup.count, op: gte, value: 1}")))
    assert ruleset.scoring_rules[0].id == "r1"
    declared = "activity_types: [demo_requested]\n" + textwrap.dedent(
        scoring_rule("{field: activity.demo_requested.count, op: gte, value: 1}")
    )
    assert parse_ruleset(declared).scoring_rules[0].id == "r1"


def test_an_unknown_plain_field_suggests_a_custom_field() -> None:
    problem = only(scoring_rule("{field: deal_size, op: gte, value: 1}"))
    assert problem.suggestion == "custom.deal_size"
    assert "custom.<name>" in problem.message


def test_unknown_op_suggests_the_right_one() -> None:
    assert only(scoring_rule("{field: title, op: contain_ci, value: vp}")).suggestion == "contains_ci"
    assert only(scoring_rule("{field: annual_revenue, op: '>=', value: 1}")).suggestion == "gte"


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{field: company, op: gte, value: 3}", "op 'gte' compares numbers, but field 'company' holds text"),
        (
            "{field: annual_revenue, op: gte, value: lots}",
            "op 'gte' needs a number, got 'lots' for field 'annual_revenue'",
        ),
        ("{field: number_of_employees, op: between, value: [1]}", "op 'between' needs a list of two numbers"),
        ("{field: number_of_employees, op: between, value: [1, x]}", "op 'between' needs a list of two numbers"),
        ("{field: number_of_employees, op: between, value: [9, 1]}", "op 'between' needs low <= high"),
        ("{field: country, op: in, value: US}", "op 'in' needs a list of values, got 'US'"),
        ("{field: phone, op: is_null, value: 1}", "op 'is_null' takes no value, got 1"),
        ("{field: company, op: eq}", "op 'eq' needs a 'value'"),
        ("{field: company, op: eq, value: null}", "cannot compare with null"),
        ("{field: company, op: eq, value: 42}", "op 'eq' needs a text, got 42 for field 'company'"),
        ("{field: lead_source, op: eq, value: yes}", "op 'eq' needs a text, got True"),
        ("{field: converted, op: eq, value: 'no'}", "op 'eq' needs true or false"),
        ("{field: number_of_employees, op: contains, value: '1'}", "op 'contains' works on text"),
        ("{field: company, op: within_days, value: 7}", "op 'within_days' needs a time field"),
        ("{field: last_activity_at, op: within_days, value: -1}", "needs a number of days"),
        ("{field: industry, op: in_ci, value: Software}", "op 'in_ci' needs a list of texts"),
        ("{field: title, op: contains_ci, value: [vp, 3]}", "op 'contains_ci' needs a text, got 3"),
        ("{field: company, op: eq_ci, value: 3}", "op 'eq_ci' needs a text, got 3"),
        ("{field: points, op: gte, value: 1}", "scoring rules cannot read 'points'"),
        ("{field: company}", "condition is missing 'op'"),
        ("{field: company, op: eq, value: x, all: []}", "a condition is either all, any, not"),
        ("{all: {field: company, op: is_null}}", "'all' needs a list of conditions"),
        ("{any: []}", "'any' needs a list of conditions"),
        ("{not: [{field: company, op: is_null}]}", "'not' takes one condition"),
        ("{fild: company, op: is_null}", "unknown key 'fild' in condition"),
        ("company is null", "a condition is a mapping"),
    ],
)
def test_condition_mistakes(when: str, message: str) -> None:
    found = problems(scoring_rule(when))
    assert any(message in p.message for p in found), found
    assert all(p.line == 4 and p.rule_id == "r1" for p in found), found


def test_a_value_problem_points_at_the_value_line() -> None:
    problem = only(
        """\
        version: "1"
        qualification:
          - id: big
            when:
              all:
                - field: number_of_employees
                  op: gte
                  value: "500"
            status: Contacted
        """
    )
    assert problem.line == 8
    assert problem.message.startswith("qualification[0].when.all[0].value: op 'gte' needs a number, got '500'")


def test_unknown_key_in_a_condition_suggests() -> None:
    problem = only(scoring_rule("{field: company, op: eq, valeu: x}"))
    assert problem.suggestion == "value"


def test_duplicate_rule_ids_across_sections() -> None:
    problem = only(
        """\
        version: "1"
        scoring:
          - {id: demo, when: {field: activity.demo_request.count, op: gte, value: 1}, points: 40}
        qualification:
          - {id: demo, when: {field: points, op: gte, value: 40}, status: Contacted}
        """
    )
    assert problem.line == 5
    assert problem.rule_id == "demo"
    assert "used twice (first used on line 3)" in problem.message


def test_unknown_stage_and_both_owner_and_queue() -> None:
    found = problems(
        """\
        version: "1"
        qualification:
          - id: hot
            when: {field: points, op: gte, value: 60}
            status: Qualified
            convert: true
            opportunity:
              stage: Needs Analisys
              owner_id: "005000000000001"
              queue: Inbound AEs
        """
    )
    assert [(p.line, p.suggestion) for p in found] == [(8, "Needs Analysis"), (9, None)]
    assert "unknown stage 'Needs Analisys'" in found[0].message
    assert "either 'owner_id' or 'queue'" in found[1].message


def test_convert_needs_a_converted_status() -> None:
    problem = only(
        """\
        version: "1"
        qualification:
          - id: hot
            when: {field: points, op: gte, value: 60}
            status: Contacted
            convert: true
        """
    )
    assert problem.line == 5
    assert "status 'Contacted' is not a converted status" in problem.message
    assert problem.suggestion == "Qualified"


def test_opportunity_without_convert() -> None:
    problem = only(
        """\
        version: "1"
        qualification:
          - id: warm
            when: {field: points, op: gte, value: 20}
            status: Contacted
            opportunity: {stage: Prospecting}
        """
    )
    assert problem.line == 6
    assert "only used with 'convert: true'" in problem.message


@pytest.mark.parametrize(
    ("opportunity", "message"),
    [
        ("{amount: lots}", "'amount' needs a number"),
        ("{amount: -5}", "'amount' needs a number"),
        ("{amount: {field: company}}", "'amount' needs a numeric field"),
        ("{amount: {field: revenue}}", "unknown field 'revenue'"),
        ("{amount: {field: annual_revenue, min: 10, max: 1.5}}", "min 10 above max 1.5"),
        ("{amount: {field: annual_revenue, mutliply: 2}}", "unknown key 'mutliply'"),
        ("{name: '$compnay - $lead_source'}", "unknown field 'compnay'"),
        ("{name: 'Costs $5'}", "has a '$' not followed by a field name"),
        ("{close_in_days: -1}", "should be greater than or equal to 0"),
        ("{close_in_days: soon}", "needs a whole number, got 'soon'"),
        ("{stage: Prospecting, color: red}", "unknown key 'color'"),
    ],
)
def test_opportunity_mistakes(opportunity: str, message: str) -> None:
    found = problems(
        f"""\
        version: "1"
        qualification:
          - id: hot
            when: {{field: points, op: gte, value: 60}}
            status: Qualified
            convert: true
            opportunity: {opportunity}
        """
    )
    assert any(message in p.message for p in found), found
    assert all(p.line == 7 and p.rule_id == "hot" for p in found), found


def test_unknown_status_suggests_ignoring_case() -> None:
    problem = only(
        """\
        version: "1"
        qualification:
          - {id: q, when: {field: points, op: gte, value: 1}, status: qualified}
        """
    )
    assert problem.suggestion == "Qualified"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('version: "1"\nscoring: [\n', 3, "YAML syntax error"),
        ('version: "1"\nscoring:\n  - id: a\n   points: 3\n', 4, "YAML syntax error"),
        ('version: "1"\n\tscoring: []\n', 2, "YAML syntax error"),
        ("", None, "the ruleset is empty"),
        ("# only a comment\n", None, "the ruleset is empty"),
        ("- version: 1\n", 1, "the top level must be a mapping"),
        ("just text\n", 1, "the top level must be a mapping"),
        ("version: 1.0\n", 1, "version: needs a text, got 1.0"),
        ('version: "1 beta"\n', 1, 'needs a version like "1.0"'),
        ("scoring: []\n", 1, "the ruleset is missing the required key 'version'"),
        ('version: "1"\nversoin: "2"\n', 2, "unknown key 'versoin'"),
        ('version: "1"\nscoring: {}\n', 2, "scoring: needs a list"),
        ('version: "1"\nversion: "2"\n', 2, "key 'version' is given twice"),
        (
            'version: "1"\na: &a [*a]\n',
            2,
            "a: the document is nested deeper than 64 levels or holds more than 100,000 values",
        ),
    ],
)
def test_document_level_mistakes(text: str, line: int | None, message: str) -> None:
    found = problems(text)
    assert any(message in p.message and p.line == line for p in found), found


def test_a_syntax_error_names_its_line_in_the_message() -> None:
    problem = only('version: "1"\nscoring:\n  - {id: a, points: 1\n')
    assert problem.line is not None
    assert "rules.yaml:" in str(problem)


def test_scoring_rule_shape_mistakes() -> None:
    found = problems(
        """\
        version: "1"
        scoring:
          - id: no-condition
            points: 5
          - id: max-without-per
            when: {field: activity.call.count, op: gte, value: 1}
            points: 5
            max: 10
          - id: per-on-text
            per: company
            points: 1
          - id: bad id!
            per: activity.call.count
            points: 1
          - id: per-typo
            per: activity.cal.count
            points: 1
          - id: no-points
            per: activity.call.count
          - just a string
        """
    )
    summary = [(p.line, p.rule_id) for p in found]
    assert summary == [
        (3, "no-condition"),
        (8, "max-without-per"),
        (10, "per-on-text"),
        (12, "bad id!"),
        (16, "per-typo"),
        (18, "no-points"),
        (20, None),
    ]
    assert "needs 'when', 'per' or both" in found[0].message
    assert "'max' only limits rules with 'per'" in found[1].message
    assert "'per' needs a count or another number" in found[2].message
    assert "needs an id of letters" in found[3].message
    assert found[4].suggestion == "activity.call.count"
    assert "missing the required key 'points'" in found[5].message
    assert "scoring rule must be a mapping" in found[6].message


def test_status_and_stage_definition_mistakes() -> None:
    found = problems(
        """\
        version: "1"
        statuses:
          - {name: Open, default: true}
          - {name: New, default: true}
          - {name: Open}
          - {name: Weird, converted: true, disqualified: true}
        stages:
          - {name: Discovery, probability: 15}
          - {name: Demo, probability: 30, forecast_category: Commit}
          - {name: Paid, probability: 100, forecast_category: Closed, won: true}
          - {name: Prospecting, probability: 150}
        conversion:
          stage: Prospectin
        """
    )
    summary = [(p.line, p.suggestion) for p in found]
    assert summary == [
        (4, None),
        (5, None),
        (6, None),
        (8, None),
        (9, "Forecast"),
        (10, None),
        (11, None),
        (13, "Prospecting"),
    ]


def test_load_ruleset_on_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RulesetError) as info:
        load_ruleset(missing)
    (problem,) = info.value.problems
    assert problem.path == str(missing)
    assert "cannot read the ruleset file" in problem.message


def test_load_ruleset_on_a_directory_and_on_bad_bytes(tmp_path: Path) -> None:
    with pytest.raises(RulesetError):
        load_ruleset(tmp_path)
    binary = tmp_path / "rules.yaml"
    binary.write_bytes(b"version: '1'\nname: \xff\xfe\n")
    with pytest.raises(RulesetError) as info:
        load_ruleset(binary)
    assert info.value.problems[0].path == str(binary)


def test_load_ruleset_names_the_file_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text('version: "1"\nscoring:\n  - {id: a, per: company, points: 1}\n')
    with pytest.raises(RulesetError) as info:
        load_ruleset(path)
    assert str(info.value.problems[0]).startswith(f"{path}:3: rule 'a':")


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ['version: "1"', "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    found = problems("\n".join(lines) + "\n")
    assert any("nested deeper than 64 levels or holds more than 100,000 values" in p.message for p in found)


# --- custom fields, new operators, windows, decay, overrides, limits -----------------------------------------


def with_fields(fields: str, when: str, extra: str = "points: 5") -> str:
    return f"""\
        version: "1"
        fields: {fields}
        scoring:
          - id: r1
            when: {when}
            {extra}
        """


def test_an_undeclared_custom_field_says_how_to_declare_it() -> None:
    problem = only(scoring_rule("{field: custom.seats, op: gte, value: 10}"))
    assert problem.line == 4
    assert problem.message == (
        "scoring[0].when.field: unknown field 'custom.seats'; declare it under 'fields:' with its kind"
        " (text, number, yes/no or time), e.g. fields: {custom.seats: number}"
    )
    assert "fields: {custom.plan: text}" in only(scoring_rule("{field: custom.plan, op: eq, value: pro}")).message


def test_a_near_miss_of_a_declared_custom_field_is_suggested() -> None:
    problem = only(with_fields("{custom.plan: text}", "{field: custom.pln, op: eq, value: pro}"))
    assert problem.message == "scoring[0].when.field: unknown field 'custom.pln'; it is not declared under 'fields:'"
    assert problem.suggestion == "custom.plan"


@pytest.mark.parametrize(
    ("fields", "message", "suggestion"),
    [
        ("{custom.plan: string}", "field 'custom.plan' has an unknown kind 'string'; kinds are:", "text"),
        ("{custom.trial: bool}", "field 'custom.trial' has an unknown kind 'bool'", "yes/no"),
        ("{custom.trial: yes}", "field 'custom.trial' has an unknown kind True", "yes/no"),
        ("{custom.budget: numbr}", "unknown kind 'numbr'; kinds are: text, number, yes/no, time", "number"),
        ("{plan: text}", "declared fields are org-specific fields written 'custom.<name>', got 'plan'", "custom.plan"),
        ("{company: text}", "'company' is a standard field with a fixed kind", None),
        ("[custom.plan]", "'fields' needs a mapping of custom fields to kinds, e.g. {custom.plan: text}", None),
    ],
)
def test_bad_field_declarations(fields: str, message: str, suggestion: str | None) -> None:
    problem = only(with_fields(fields, "{field: company, op: is_null}"))
    assert message in problem.message
    assert problem.suggestion == suggestion
    assert problem.line == 2


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{field: custom.budget, op: contains, value: '1'}", "op 'contains' works on text, but field 'custom.budget'"),
        (
            "{field: custom.budget, op: gte, value: lots}",
            "op 'gte' needs a number, got 'lots' for field 'custom.budget'",
        ),
        ("{field: custom.budget, op: between, value: [9, 1]}", "op 'between' needs low <= high, got [9, 1]"),
        ("{field: custom.trial, op: eq, value: 'yes'}", "op 'eq' needs true or false, got 'yes'"),
        ("{field: custom.plan, op: gt, value: 3}", "op 'gt' compares numbers, but field 'custom.plan' holds text"),
        ("{field: custom.plan, op: eq, value: 3}", "op 'eq' needs a text, got 3 for field 'custom.plan'"),
        ("{field: custom.signup_at, op: eq_ci, value: x}", "op 'eq_ci' works on text, but field 'custom.signup_at'"),
    ],
)
def test_declared_custom_fields_are_checked_like_standard_ones(when: str, message: str) -> None:
    fields = "{custom.budget: number, custom.plan: text, custom.trial: yes/no, custom.signup_at: time}"
    assert message in only(with_fields(fields, when)).message


@pytest.mark.parametrize(
    ("when", "message", "suggestion"),
    [
        (
            r"{field: title, op: matches, value: '(\w+) \1'}",
            r"op 'matches' cannot use the pattern '(\\w+) \\1' for field 'title': invalid escape sequence: \1"
            r" (patterns run in linear time: no look-around such as (?=...) and no back-references such as \1)",
            None,
        ),
        (
            "{field: title, op: matches, value: '(?=vp)'}",
            "op 'matches' cannot use the pattern '(?=vp)' for field 'title': invalid perl operator: (?=",
            None,
        ),
        ("{field: title, op: matches, value: '(vp'}", "missing )", None),
        ("{field: title, op: matches, value: ''}", "op 'matches' needs a regular expression (a text), got ''", None),
        ("{field: title, op: matches, value: [vp]}", "op 'matches' needs a regular expression (a text)", None),
        ("{field: annual_revenue, op: matches, value: '1'}", "op 'matches' works on text", None),
        ("{field: email, op: domain_in, value: []}", "op 'domain_in' needs a domain or a list of domains", None),
        ("{field: email, op: domain_in, value: [acme com]}", "needs a domain like 'example.com', got 'acme com'", None),
        ("{field: email, op: domain_in, value: [3]}", "needs a domain like 'example.com', got 3", None),
        ("{field: email, op: is_free_email, value: true}", "op 'is_free_email' takes no value, got True", None),
        ("{field: email, op: regex, value: x}", "unknown op 'regex'", "matches"),
        ("{field: email, op: free_email}", "unknown op 'free_email'", "is_free_email"),
        ("{field: points, op: changed}", "scoring rules cannot read 'points'", None),
        ("{field: score, op: changed}", "op 'changed' tests what an event sends", None),
        (
            "{field: activity.demo_request.count_in_days(7), op: changed}",
            "field 'activity.demo_request.count_in_days(7)' is computed by leadflow",
            None,
        ),
    ],
)
def test_new_operator_mistakes(when: str, message: str, suggestion: str | None) -> None:
    problem = only(scoring_rule(when))
    assert message in problem.message
    assert problem.suggestion == suggestion


@pytest.mark.parametrize(
    ("field", "message", "suggestion"),
    [
        (
            "activity.demo_request.count_in_days(120)",
            "field 'activity.demo_request.count_in_days(120)': a window of 120 days is over the limit of 90 days"
            " (leadflow keeps 90 days of activity history per lead)",
            "activity.demo_request.count_in_days(90)",
        ),
        ("activity.demo_request.count_in_days(0)", "a window needs at least 1 day, got 0", None),
        ("activity.demo_request.count_in_days", "a window is written count_in_days(N)", None),
        ("activity.demo_request.count_in_days(1.5)", "a window is written count_in_days(N)", None),
        (
            "activity.demo_requests.count_in_days(7)",
            "unknown activity type 'demo_requests'",
            "activity.demo_request.count_in_days(7)",
        ),
    ],
)
def test_window_mistakes(field: str, message: str, suggestion: str | None) -> None:
    problem = only(scoring_rule(f"{{field: '{field}', op: gte, value: 1}}"))
    assert message in problem.message
    assert problem.suggestion == suggestion


@pytest.mark.parametrize(
    ("decay", "when", "message"),
    [
        (
            "{percent: 50, days: 30}",
            "{field: title, op: eq, value: CTO}",
            "scoring[0].decay: the rule reads no activity count, so there is nothing to decay",
        ),
        ("{percent: 150, days: 30}", DEMO_WHEN := "{field: activity.demo_request.count, op: gte, value: 1}", "100"),
        ("{percent: 50}", DEMO_WHEN, "'decay' is missing the required key 'days'"),
        ("{percent: 50, dayz: 30}", DEMO_WHEN, "unknown key 'dayz' in 'decay'"),
        ("half", DEMO_WHEN, "'decay' needs a mapping {percent, days} (e.g. {percent: 50, days: 30}) or false"),
        ("true", DEMO_WHEN, "'decay' needs a mapping {percent, days}"),
    ],
)
def test_decay_mistakes(decay: str, when: str, message: str) -> None:
    problem = only(scoring_rule(when, f"points: 5\n            decay: {decay}"))
    assert message in problem.message
    assert problem.rule_id == "r1"


def test_a_broken_ruleset_decay_is_reported_at_its_line() -> None:
    problem = only('version: "1"\ndecay: {percent: 0, days: 30}\n')
    assert problem.line == 2
    assert problem.message.startswith("decay.percent: input should be greater than 0")


def converting(opportunity: str, stage: str = "Needs Analysis") -> str:
    return f"""\
        version: "1"
        qualification:
          - id: q1
            when: {{field: points, op: gte, value: 1}}
            status: Qualified
            convert: true
            opportunity: {{stage: {stage}, {opportunity}}}
        """


@pytest.mark.parametrize(
    ("opportunity", "stage", "message", "suggestion"),
    [
        ("forecast_category: Commit", "Needs Analysis", "unknown forecast category 'Commit'; use one of", "Forecast"),
        ("forecast_category: pipeline", "Needs Analysis", "unknown forecast category 'pipeline'", "Pipeline"),
        (
            "probability: 120",
            "Needs Analysis",
            "opportunity.probability: input should be less than or equal to 100",
            None,
        ),
        ("probability: '40'", "Needs Analysis", "opportunity.probability: needs a whole number, got '40'", None),
        (
            "probability: 50",
            "Closed Won",
            "opportunity.probability: stage 'Closed Won' is closed: its probability and forecast category cannot be"
            " overridden",
            None,
        ),
    ],
)
def test_opportunity_override_mistakes(opportunity: str, stage: str, message: str, suggestion: str | None) -> None:
    problem = only(converting(opportunity, stage))
    assert message in problem.message
    assert problem.suggestion == suggestion
    assert problem.line == 7


# --- limits -------------------------------------------------------------------------------------------------------


def test_too_many_rules() -> None:
    rules = "".join(
        f"  - {{id: r{i}, when: {{field: company, op: is_null}}, points: 1}}\n" for i in range(MAX_RULES + 1)
    )
    problem = only('version: "1"\nscoring:\n' + rules)
    assert (
        problem.message
        == f"the ruleset has {MAX_RULES + 1} rules (scoring and qualification); the limit is {MAX_RULES}"
    )


def test_a_condition_nested_too_deep() -> None:
    when: dict[str, object] = {"field": "company", "op": "is_null"}
    for _ in range(MAX_DEPTH):
        when = {"not": when}
    problem = only(scoring_rule(json.dumps(when)))
    assert (
        problem.message
        == f"scoring[0].when: the condition is nested {MAX_DEPTH + 1} levels deep; the limit is {MAX_DEPTH}"
    )
    assert (problem.rule_id, problem.line) == ("r1", 4)
    parse_ruleset(textwrap.dedent(scoring_rule(json.dumps(when["not"]))))  # at the limit: fine


def test_a_condition_with_too_many_tests() -> None:
    tests = [{"field": "company", "op": "eq", "value": str(i)} for i in range(MAX_CONDITIONS + 1)]
    problem = only(scoring_rule(json.dumps({"any": tests})))
    assert problem.message == (
        f"scoring[0].when: the condition has {MAX_CONDITIONS + 1} tests; the limit is {MAX_CONDITIONS}"
    )
    assert problem.rule_id == "r1"


def test_a_list_too_long() -> None:
    values = [str(i) for i in range(MAX_LIST_VALUES + 1)]
    problem = only(scoring_rule(json.dumps({"field": "country", "op": "in", "value": values})))
    assert problem.message == (
        f"scoring[0].when.value: op 'in' has {MAX_LIST_VALUES + 1} values for field 'country';"
        f" the limit is {MAX_LIST_VALUES}"
    )


def test_a_pattern_too_long() -> None:
    pattern = "a" * (MAX_PATTERN_CHARS + 1)
    problem = only(scoring_rule(json.dumps({"field": "title", "op": "matches", "value": pattern})))
    assert problem.message == (
        f"scoring[0].when.value: op 'matches' has a pattern of {MAX_PATTERN_CHARS + 1} characters for field 'title';"
        f" the limit is {MAX_PATTERN_CHARS}"
    )


def test_too_many_declared_fields() -> None:
    fields = json.dumps({f"custom.f{i}": "number" for i in range(MAX_FIELDS + 1)})
    problem = only(f'version: "1"\nfields: {fields}\n')
    assert problem.message == f"fields: 'fields' declares {MAX_FIELDS + 1} fields; the limit is {MAX_FIELDS}"
