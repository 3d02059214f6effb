"""``rules test``: the shipped cases pass, failures show expected against actual, and every mistake in a case
file is reported with its line."""

from __future__ import annotations

import pytest

from tests.unit.tools.rules.helpers import leaf, q, ruleset_text, scoring_rule
from worker.rules import default_ruleset_path, load_ruleset, parse_ruleset
from worker.scoring import default_model_path, load_model
from worker.tools.rules import cases_path_for, format_run, run_cases

MODEL = load_model(default_model_path())
RULESET = parse_ruleset(
    ruleset_text(
        [
            scoring_rule(leaf("number_of_employees", "gte", 1000), "big", 20),
            scoring_rule(leaf("activity.demo_request.count", "gte", 1), "demo", 40),
            scoring_rule(leaf("custom.plan", "eq", "pro"), "pro", 5),
        ],
        [
            q("unsubscribed", leaf("activity.unsubscribe.count", "gte", 1), "Unqualified"),
            q("hot", {"all": [leaf("points", "gte", 60), leaf("score", "gte", 0.5)]}, "Qualified", convert=True),
            q("warm", leaf("points", "gte", 20)),
        ],
    ),
    "rules.yaml",
)


def run(text: str) -> str:
    return format_run(run_cases(text, "cases.yaml", RULESET, MODEL))


def test_the_default_ruleset_passes_its_shipped_cases() -> None:
    rules = default_ruleset_path()
    cases = cases_path_for(rules)
    assert cases.name == "default.tests.yaml"
    result = run_cases(cases.read_text(encoding="utf-8"), str(cases), load_ruleset(rules), MODEL)
    assert result.problems == []
    assert len(result.results) >= 8
    assert result.failed == []
    assert result.exit_code() == 0


PASSING = """
cases:
  - name: big company asks for a demo
    given:
      profile: {company: Acme, number_of_employees: 5000}
      custom: {plan: pro}
    event: {activity: demo_request}
    score: 0.7
    expect: {status: Qualified, action: converted, converted: true, points: 65, rules: [big, demo, pro, hot]}
  - name: a fixed score decides between hot and warm
    given: {profile: {number_of_employees: 5000}, activity: {demo_request: 1}}
    event: {upsert: {title: CTO}}
    score: 0.2
    expect: {status: Contacted, action: status_changed, rules: {includes: [warm], excludes: [hot]}}
  - name: unsubscribed after a demo
    given: {activity: {demo_request: {count: 2, days_ago: 3}}, status: Contacted}
    event: {activity: unsubscribe, at: "2026-02-01T09:00:00+01:00"}
    expect: {status: Unqualified, action: disqualified, points: 40}
  - name: a converted lead keeps its status
    given: {profile: {number_of_employees: 5000}, status: Qualified, converted: true}
    event: {activity: unsubscribe}
    expect: {status: Qualified, action: none, converted: true}
"""


def test_passing_cases_print_one_line_each() -> None:
    assert run(PASSING).splitlines() == [
        "PASS  big company asks for a demo  (cases.yaml:3)",
        "PASS  a fixed score decides between hot and warm  (cases.yaml:10)",
        "PASS  unsubscribed after a demo  (cases.yaml:15)",
        "PASS  a converted lead keeps its status  (cases.yaml:19)",
        "4 passed, 0 failed",
    ]


def test_a_case_without_a_fixed_score_uses_the_model() -> None:
    text = """
cases:
  - name: scored by the model
    given: {profile: {number_of_employees: 5000}, activity: {demo_request: 1}}
    event: {activity: page_view}
    expect: {points: 60}
"""
    result = run_cases(text, "cases.yaml", RULESET, MODEL)
    assert result.exit_code() == 0


def test_a_failure_shows_each_expectation_expected_against_actual() -> None:
    text = """
cases:
  - name: wrong on purpose
    given: {profile: {number_of_employees: 5000}}
    event: {activity: demo_request}
    score: 0.1
    expect:
      status: Qualified
      points: 61
      action: converted
      converted: true
      rules: [big, hot, pro]
  - name: includes and excludes
    event: {activity: demo_request}
    score: 0.1
    expect: {rules: {includes: [big], excludes: [demo]}}
"""
    result = run_cases(text, "cases.yaml", RULESET, MODEL)
    assert result.exit_code() == 1
    assert format_run(result).splitlines() == [
        "FAIL  wrong on purpose  (cases.yaml:3)",
        "      status:",
        "        expected: 'Qualified'",
        "        actual:   'Contacted'",
        "      action:",
        "        expected: 'converted'",
        "        actual:   'status_changed'",
        "      converted:",
        "        expected: True",
        "        actual:   False",
        "      points:",
        "        expected: 61",
        "        actual:   60",
        "      rules:",
        "        expected: big, hot, pro",
        "        actual:   big, demo, warm (missing hot, pro; unexpected demo, warm)",
        "FAIL  includes and excludes  (cases.yaml:13)",
        "      rules includes:",
        "        expected: big",
        "        actual:   not matched; matched: demo, warm",
        "      rules excludes:",
        "        expected: demo",
        "        actual:   matched",
        "0 passed, 2 failed",
    ]


CASE = "cases:\n  - name: c\n    event: {activity: demo_request}\n    expect: {status: Contacted}\n"

ERRORS = [
    (
        "cases: [\n",
        "cases.yaml:2: YAML syntax error: expected the node content, but found '<stream end>' (while parsing a "
        "flow node that starts on line 2)",
    ),
    ("# nothing yet\n", "cases.yaml: the test case file is empty; it needs a list of 'cases'"),
    ("- 1\n", "cases.yaml:1: a test case file (a mapping with 'cases') must be a mapping of keys, got [1]"),
    (
        "case: []\n",
        "cases.yaml:1: case: unknown key 'case' in a test case file (a mapping with 'cases') (did you mean 'cases'?)",
    ),
    ("cases: []\n", "cases.yaml:1: cases: 'cases' is empty; add at least one test case"),
    ("cases: [5]\n", "cases.yaml:1: cases[0]: a test case must be a mapping of keys, got 5"),
    (
        "cases:\n  - name: c\n    expect: {status: Contacted}\n",
        "cases.yaml:2: cases[0]: a test case is missing the required key 'event'",
    ),
    (
        CASE + "    expected: {}\n",
        "cases.yaml:5: cases[0].expected: unknown key 'expected' in a test case (did you mean 'expect'?)",
    ),
    (CASE + CASE[7:], "cases.yaml:5: cases[1].name: test case name 'c' is used twice (first on line 2)"),
    (
        CASE.replace("{activity: demo_request}", "{}"),
        "cases.yaml:3: cases[0].event: an event is either 'upsert: {fields...}' or 'activity: <type>', exactly one",
    ),
    (
        CASE.replace("{activity: demo_request}", "{activity: demo_requests}"),
        "cases.yaml:3: cases[0].event.activity: unknown activity type 'demo_requests' (did you mean 'demo_request'?)",
    ),
    (
        CASE.replace("{activity: demo_request}", "{activity: Demo}"),
        "cases.yaml:3: cases[0].event.activity: an activity type is lower case letters, digits and '_', like "
        "'demo_request', got 'Demo'",
    ),
    (
        CASE.replace("{activity: demo_request}", "{upsert: {title: CTO}, count: 2}"),
        "cases.yaml:3: cases[0].event.count: 'count' goes with 'activity', not with 'upsert'",
    ),
    (
        CASE.replace("{activity: demo_request}", "{upsert: {titel: CTO}}"),
        "cases.yaml:3: cases[0].event.upsert.titel: unknown lead field 'titel' (org-specific fields go under "
        "'custom') (did you mean 'title'?)",
    ),
    (
        CASE.replace("{activity: demo_request}", "{upsert: {number_of_employees: many}}"),
        "cases.yaml:3: cases[0].event.upsert.number_of_employees: input should be a valid integer, unable to parse "
        "string as an integer, got 'many'",
    ),
    (
        CASE.replace("{activity: demo_request}", "{activity: call, at: tomorrow}"),
        "cases.yaml:3: cases[0].event.at: needs a time with its offset, like '2026-01-15T12:00:00Z', got 'tomorrow'",
    ),
    (
        CASE + "    score: 1.5\n",
        "cases.yaml:5: cases[0].score: 'score' needs a number from 0 to 1 (the model's probability), got 1.5",
    ),
    (CASE + "    given: []\n", "cases.yaml:5: cases[0].given: 'given' must be a mapping of keys, got []"),
    (
        CASE + "    given: {profil: {}}\n",
        "cases.yaml:5: cases[0].given.profil: unknown key 'profil' in 'given' (did you mean 'profile'?)",
    ),
    (
        CASE + "    given: {profile: {plan: pro}}\n",
        "cases.yaml:5: cases[0].given.profile.plan: unknown lead field 'plan' (org-specific fields go under "
        "'custom') (did you mean 'custom.plan'?)",
    ),
    (
        CASE + "    given: {profile: {status: Open}}\n",
        "cases.yaml:5: cases[0].given.profile.status: put 'status' next to 'profile', not inside it",
    ),
    (
        CASE + "    given: {activity: {call: 0}}\n",
        "cases.yaml:5: cases[0].given.activity.call: an activity count is 1 or more (leave the type out for none), "
        "got 0",
    ),
    (
        CASE + "    given: {activity: {call: yes}}\n",
        "cases.yaml:5: cases[0].given.activity.call: an activity is a count (1 or more) or a mapping "
        "{count, days_ago}, got True",
    ),
    (
        CASE + "    given: {activity: {call: {count: 1, days_ago: 2, at: '2026-01-01T00:00:00Z'}}}\n",
        "cases.yaml:5: cases[0].given.activity.call: activity 'call': give 'days_ago' or 'at', not both",
    ),
    (
        CASE + "    given: {activity: {call: {count: 1, days: 2}}}\n",
        "cases.yaml:5: cases[0].given.activity.call.days: unknown key 'days' in activity 'call' (did you mean "
        "'days_ago'?)",
    ),
    (
        CASE + "    given: {activity: {calls: 1}}\n",
        "cases.yaml:5: cases[0].given.activity.calls: unknown activity type 'calls' (did you mean 'call'?)",
    ),
    (
        CASE.replace("{status: Contacted}", "{}"),
        "cases.yaml:4: cases[0].expect: 'expect' checks nothing; give at least one of status, points, action, "
        "converted, rules",
    ),
    (
        CASE.replace("{status: Contacted}", "{status: Contactd}"),
        "cases.yaml:4: cases[0].expect.status: unknown status 'Contactd'; statuses are: Open, Contacted, Qualified, "
        "Unqualified (did you mean 'Contacted'?)",
    ),
    (
        CASE.replace("{status: Contacted}", "{action: convert}"),
        "cases.yaml:4: cases[0].expect.action: input should be 'none', 'status_changed', 'converted' or "
        "'disqualified', got 'convert'",
    ),
    (
        CASE.replace("{status: Contacted}", "{rules: [hott]}"),
        "cases.yaml:4: cases[0].expect.rules[0]: no rule has the id 'hott' (did you mean 'hot'?)",
    ),
    (
        CASE.replace("{status: Contacted}", "{rules: [5]}"),
        "cases.yaml:4: cases[0].expect.rules[0]: a rule id is a text, got 5",
    ),
    (
        CASE.replace("{status: Contacted}", "{rules: hot}"),
        "cases.yaml:4: cases[0].expect.rules: 'rules' needs a list of rule ids, or a mapping with 'includes' "
        "and/or 'excludes', got 'hot'",
    ),
    (
        CASE.replace("{status: Contacted}", "{rules: {include: [hot]}}"),
        "cases.yaml:4: cases[0].expect.rules.include: unknown key 'include' in 'rules' (did you mean 'includes'?)",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[m.split(": ", 1)[1][:60] for _, m in ERRORS])
def test_every_mistake_is_reported_with_its_line(text: str, message: str) -> None:
    result = run_cases(text, "cases.yaml", RULESET, MODEL)
    assert result.exit_code() == 2
    assert result.results == []
    assert [str(p) for p in result.problems] == [message]
    assert format_run(result).splitlines()[0] == "cases.yaml: invalid test case file, 1 problem:"


def test_every_mistake_of_a_file_is_reported_at_once() -> None:
    text = CASE + "    score: 2\n    given: {profile: {titel: x}}\n" + CASE[7:].replace("name: c", "name: d")
    text = text.replace("{status: Contacted}", "{status: Nope}")
    result = run_cases(text, "cases.yaml", RULESET, MODEL)
    assert [p.line for p in result.problems] == [4, 5, 6, 9]


def test_windowed_counts_see_the_given_activities() -> None:
    window = "activity.demo_request.count_in_days(14)"
    ruleset = parse_ruleset(ruleset_text([scoring_rule(leaf(window, "gte", 2), "recent-demos", 10)]), "r.yaml")
    text = """
cases:
  - name: two demos three days ago count in a 14-day window
    given: {activity: {demo_request: {count: 2, days_ago: 3}}}
    event: {upsert: {title: CTO}}
    expect: {points: 10}
  - name: two demos a month ago do not
    given: {activity: {demo_request: {count: 2, days_ago: 30}}}
    event: {upsert: {title: CTO}}
    expect: {points: 0}
"""
    result = run_cases(text, "cases.yaml", ruleset, MODEL)
    assert result.problems == []
    assert result.failed == []
