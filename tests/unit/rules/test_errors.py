"""What a broken ruleset reports: every problem at once, each with its line, rule id and a suggestion."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

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
        ('version: "1"\na: &a [*a]\n', 2, "a: the document is nested too deeply or is too large"),
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
    assert any("nested too deeply or is too large" in p.message for p in found)
