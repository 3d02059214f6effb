"""Every operator, its handling of missing facts and wrong types, and all/any/not nesting."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.rules.helpers import DAY, NOW, make_ruleset, matches
from worker.rules import OPERATORS


def leaf(field: str, op: str, value: Any = None, *, no_value: bool = False) -> dict[str, Any]:
    cond: dict[str, Any] = {"field": field, "op": op}
    if not no_value:
        cond["value"] = value
    return cond


CASES: list[tuple[str, str, Any, object, bool]] = [
    # (field, op, value, fact, expected)
    ("company", "eq", "Acme", "Acme", True),
    ("company", "eq", "Acme", "acme", False),
    ("number_of_employees", "eq", 50, 50, True),
    ("number_of_employees", "eq", 50, 50.0, True),
    ("converted", "eq", True, True, True),
    ("company", "ne", "Acme", "Globex", True),
    ("company", "ne", "Acme", "Acme", False),
    ("country", "in", ["US", "CA"], "CA", True),
    ("country", "in", ["US", "CA"], "DE", False),
    ("country", "not_in", ["US", "CA"], "DE", True),
    ("country", "not_in", ["US", "CA"], "US", False),
    ("annual_revenue", "gt", 1000, 1000.5, True),
    ("annual_revenue", "gt", 1000, 1000, False),
    ("annual_revenue", "gte", 1000, 1000, True),
    ("annual_revenue", "gte", 1000, 999.9, False),
    ("annual_revenue", "lt", 1000, 999, True),
    ("annual_revenue", "lt", 1000, 1000, False),
    ("annual_revenue", "lte", 1000, 1000, True),
    ("annual_revenue", "lte", 1000, 1001, False),
    ("number_of_employees", "between", [50, 199], 50, True),
    ("number_of_employees", "between", [50, 199], 199, True),
    ("number_of_employees", "between", [50, 199], 200, False),
    ("title", "contains", "Sales", "VP Sales", True),
    ("title", "contains", "sales", "VP Sales", False),
    ("title", "contains", ["Chief", "VP"], "VP Sales", True),
    ("title", "starts_with", "VP", "VP Sales", True),
    ("title", "starts_with", ["CEO", "CTO"], "VP Sales", False),
    ("email", "ends_with", "@acme.com", "jo@acme.com", True),
    ("email", "ends_with", "@acme.com", "jo@ACME.com", False),
    ("lead_source", "eq_ci", "web", "Web", True),
    ("lead_source", "eq_ci", "web", "Webinar", False),
    ("lead_source", "ne_ci", "web", "WEB", False),
    ("lead_source", "ne_ci", "web", "Partner", True),
    ("industry", "in_ci", ["Software", "Technology"], "SOFTWARE", True),
    ("industry", "in_ci", ["Software", "Technology"], "Retail", False),
    ("industry", "not_in_ci", ["Software"], "software", False),
    ("industry", "not_in_ci", ["Software"], "Retail", True),
    ("title", "contains_ci", "vp", "Senior VP, Sales", True),
    ("title", "contains_ci", ["chief", "founder"], "Co-Founder", True),
    ("title", "contains_ci", ["chief", "founder"], "Engineer", False),
    ("title", "starts_with_ci", "head", "Head of IT", True),
    ("email", "ends_with_ci", ["@gmail.com", "@yahoo.com"], "Jo@GMail.com", True),
    ("email", "ends_with_ci", ["@gmail.com", "@yahoo.com"], "jo@acme.com", False),
    ("custom.tier", "eq", "gold", "gold", True),
    ("custom.seats", "gte", 10, 12, True),
    ("custom.vip", "eq", True, True, True),
    ("custom.vip", "eq", True, 1, False),  # a declared yes/no field: 1 is not yes
    ("custom.seats", "eq", 1, True, False),  # a declared number field: yes is not 1
    ("custom.seats", "in", [0, 1], False, False),
    ("custom.seats", "ne", 1, True, True),
    ("title", "matches", r"^(vp|head) of", "vp of Sales", True),
    ("title", "matches", r"^(vp|head) of", "SVP of Sales", False),
    ("title", "matches", r"(?i)\bcto\b", "Founder & CTO", True),
    ("email", "domain_in", "acme.com", "Jo@ACME.com", True),
    ("email", "domain_in", "acme.com", "jo@eu.mail.acme.com", True),  # subdomains count
    ("email", "domain_in", "acme.com", "jo@notacme.com", False),
    ("email", "domain_in", ["globex.com", "acme.com"], "jo@acme.com.evil.io", False),
    ("website", "domain_in", "acme.com", "https://www.Acme.com:8443/pricing?x=1", True),
    ("website", "domain_in", "acme.com", "acme.com/about", True),
    ("website", "domain_in", "www.acme.com", "http://acme.com", True),  # 'www.' is ignored on both sides
    ("website", "domain_in", "acme.com", "https://acme.co", False),
    ("email", "is_free_email", None, "jo@gmail.com", True),
    ("email", "is_free_email", None, "Jo@GMX.DE", True),
    ("email", "is_free_email", None, "jo@acme.com", False),
    ("email", "is_not_free_email", None, "jo@acme.com", True),
    ("email", "is_not_free_email", None, "jo@yahoo.com", False),
]

NO_VALUE = {"is_free_email", "is_not_free_email"}


@pytest.mark.parametrize(("field", "op", "value", "fact", "expected"), CASES)
def test_operator(field: str, op: str, value: Any, fact: object, expected: bool) -> None:
    assert matches(leaf(field, op, value, no_value=op in NO_VALUE), {field: fact}) is expected


def test_every_operator_is_covered() -> None:
    covered = {case[1] for case in CASES} | {"is_null", "is_not_null", "within_days", "not_within_days", "changed"}
    assert covered == set(OPERATORS)


def test_a_missing_email_is_not_free_mail_and_the_negation_holds() -> None:
    # is_not_free_email is the exact opposite of is_free_email, like every negated operator
    assert matches(leaf("email", "is_free_email", no_value=True), {"email": None}) is False
    assert matches(leaf("email", "is_not_free_email", no_value=True), {"email": None}) is True
    assert matches(leaf("email", "domain_in", "acme.com"), {"email": None}) is False


@pytest.mark.parametrize(
    ("changed", "fact", "expected"),
    [
        (frozenset({"email"}), "jo@acme.com", True),
        (frozenset({"email"}), None, True),  # cleared in this event
        (frozenset({"phone"}), "jo@acme.com", False),
        (frozenset(), "jo@acme.com", False),
    ],
)
def test_changed_reads_what_the_event_changed(changed: frozenset[str], fact: object, expected: bool) -> None:
    assert matches(leaf("email", "changed", no_value=True), {"email": fact, "event.changed": changed}) is expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "Acme", False),
        ("ne", "Acme", True),
        ("in", ["Acme"], False),
        ("not_in", ["Acme"], True),
        ("contains", "A", False),
        ("starts_with", "A", False),
        ("ends_with", "e", False),
        ("eq_ci", "acme", False),
        ("ne_ci", "acme", True),
        ("in_ci", ["acme"], False),
        ("not_in_ci", ["acme"], True),
        ("contains_ci", "a", False),
        ("starts_with_ci", "a", False),
        ("ends_with_ci", "e", False),
    ],
)
def test_a_missing_text_fact_is_false_except_for_negations(op: str, value: Any, expected: bool) -> None:
    assert matches(leaf("company", op, value), {"company": None}) is expected


@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_a_missing_number_is_neither_big_nor_small(op: str) -> None:
    assert matches(leaf("annual_revenue", op, 0), {"annual_revenue": None}) is False
    assert matches(leaf("number_of_employees", "between", [0, 10**9]), {"number_of_employees": None}) is False


def test_a_missing_activity_counts_as_absent_not_zero() -> None:
    # build_facts leaves out activity types the lead never had: the fact is missing, not 0
    assert matches(leaf("activity.demo_request.count", "lt", 1), {}) is False
    assert matches(leaf("activity.demo_request.count", "is_null", no_value=True), {}) is True
    assert matches(leaf("activity.demo_request.count", "ne", 0), {}) is True


def test_is_null_and_is_not_null() -> None:
    assert matches(leaf("phone", "is_null", no_value=True), {"phone": None}) is True
    assert matches(leaf("phone", "is_null", no_value=True), {"phone": "+1 555"}) is False
    assert matches(leaf("phone", "is_not_null", no_value=True), {"phone": "+1 555"}) is True
    assert matches(leaf("phone", "is_not_null", no_value=True), {"phone": None}) is False
    assert matches(leaf("custom.tier", "is_null", no_value=True), {}) is True


@pytest.mark.parametrize(
    ("last_at", "within", "not_within"),
    [
        (NOW - 2 * DAY, True, False),
        (NOW - 7 * DAY, True, False),  # the boundary counts as within
        (NOW - 7 * DAY - 1, False, True),
        (NOW + 60, True, False),  # a clock slightly ahead still counts as recent
        (None, False, True),  # never happened: not within any window
    ],
)
def test_within_days(last_at: float | None, within: bool, not_within: bool) -> None:
    field = "activity.demo_request.last_at"
    assert matches(leaf(field, "within_days", 7), {field: last_at}) is within
    assert matches(leaf(field, "not_within_days", 7), {field: last_at}) is not_within


def test_within_days_without_now_is_false() -> None:
    field = "last_activity_at"
    assert matches(leaf(field, "within_days", 7), {field: NOW, "now": None}) is False


@pytest.mark.parametrize(
    ("field", "op", "value", "fact"),
    [
        ("custom.seats", "gte", 10, "12"),  # a text is not a number
        ("custom.seats", "gte", 1, True),  # a yes/no is not a number
        ("custom.seats", "between", [1, 5], "3"),
        ("custom.tier", "contains", "go", 42),
        ("custom.tier", "eq_ci", "gold", 1),
        ("custom.tier", "in", ["gold"], ["gold"]),  # an unhashable value is in no set
        ("custom.tier", "starts_with_ci", "go", 1.5),
        ("custom.seen", "within_days", 1, "yesterday"),
    ],
)
def test_wrong_types_are_false_and_never_raise(field: str, op: str, value: Any, fact: object) -> None:
    assert matches(leaf(field, op, value), {field: fact}) is False


def test_negated_forms_are_the_opposite_on_wrong_types() -> None:
    assert matches(leaf("custom.tier", "ne_ci", "gold"), {"custom.tier": 3}) is True
    assert matches(leaf("custom.tier", "not_in", ["gold"]), {"custom.tier": ["gold"]}) is True


def test_case_insensitive_forms_fold_both_sides() -> None:
    assert matches(leaf("city", "eq_ci", "STRASSE"), {"city": "Straße"}) is True
    assert matches(leaf("title", "contains_ci", ["CHIEF"]), {"title": "chief of staff"}) is True


def test_all_any_not_nest() -> None:
    when = {
        "all": [
            {"field": "country", "op": "in", "value": ["US", "CA"]},
            {
                "any": [
                    {"field": "number_of_employees", "op": "gte", "value": 500},
                    {"not": {"field": "industry", "op": "eq", "value": "Retail"}},
                ]
            },
        ]
    }
    assert matches(when, {"country": "US", "number_of_employees": 10, "industry": "Software"}) is True
    assert matches(when, {"country": "US", "number_of_employees": 10, "industry": "Retail"}) is False
    assert matches(when, {"country": "US", "number_of_employees": 900, "industry": "Retail"}) is True
    assert matches(when, {"country": "DE", "number_of_employees": 900, "industry": "Software"}) is False


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_all_and_any_of_any_length(size: int) -> None:
    parts = [{"field": f"custom.f{i}", "op": "eq", "value": 1} for i in range(size)]
    all_ones = {f"custom.f{i}": 1 for i in range(size)}
    one_zero = {**all_ones, "custom.f0": 0}
    none_one = {f"custom.f{i}": 0 for i in range(size)}
    assert matches({"all": parts}, all_ones) is True
    assert matches({"all": parts}, one_zero) is False
    assert matches({"any": parts}, one_zero) is (size > 1)
    assert matches({"any": parts}, none_one) is False
    mixed = [*parts, {"field": "custom.f0", "op": "ne", "value": 5}]  # a part without a value test
    assert matches({"all": mixed}, all_ones) is True
    assert matches({"any": mixed}, none_one) is True


def test_not_of_a_group() -> None:
    when = {"not": {"any": [{"field": "country", "op": "eq", "value": "US"}, {"field": "state", "op": "is_null"}]}}
    assert matches(when, {"country": "DE", "state": "BY"}) is True
    assert matches(when, {"country": "DE", "state": None}) is False


def test_evaluate_never_raises_on_an_empty_facts_dict() -> None:
    ruleset = make_ruleset(
        scoring=[
            {"id": "s1", "when": {"field": "title", "op": "contains_ci", "value": "vp"}, "points": 5},
            {"id": "s2", "per": "activity.page_view.count", "points": 1, "max": 3},
        ],
        qualification=[{"id": "q", "when": {"field": "points", "op": "gte", "value": 0}, "status": "Contacted"}],
    )
    empty: dict[str, object] = {}
    outcome = ruleset.evaluate(empty)
    assert outcome.points == 0
    assert outcome.matched_rules == ("q",)


TODAY = int(NOW // DAY)


@pytest.mark.parametrize(
    ("days", "history", "expected"),
    [
        (1, [[TODAY, 2]], 2),  # count_in_days(1) is the event's UTC day
        (1, [[TODAY - 1, 5]], 0),
        (7, [[TODAY - 7, 1], [TODAY - 6, 2], [TODAY, 3]], 5),  # the 7 days are today and the 6 before
        (7, [[TODAY - 6, 2], [TODAY + 1, 4]], 2),  # a later day (an event already applied) is not in the window
        (90, [[TODAY - 89, 1], [TODAY - 40, 1]], 2),
        (14, [], 0),
    ],
)
def test_count_in_days_counts_the_days_ending_with_the_event_day(
    days: int, history: list[list[int]], expected: int
) -> None:
    field = f"activity.demo_request.count_in_days({days})"
    values = {"activity.history": {"demo_request": history} if history else {}}
    assert matches(leaf(field, "eq", expected), values) is True
    assert matches(leaf(field, "eq", expected + 1), values) is False


def test_windows_and_days_since_without_an_event_time_are_missing() -> None:
    history = {"activity.history": {"demo_request": [[TODAY, 1]]}, "now": None}
    assert matches(leaf("activity.demo_request.count_in_days(7)", "is_null", no_value=True), history) is True
    last = {"activity.demo_request.last_at": NOW - DAY, "now": None}
    assert matches(leaf("activity.demo_request.days_since", "is_null", no_value=True), last) is True


@pytest.mark.parametrize(("last_at", "expected"), [(NOW - 1.5 * DAY, 1.5), (NOW + 60, 0.0), (None, None)])
def test_days_since_an_activity_type(last_at: float | None, expected: float | None) -> None:
    field = "activity.demo_request.days_since"
    if expected is None:
        assert matches(leaf(field, "is_null", no_value=True), {"activity.demo_request.last_at": last_at}) is True
    else:
        assert matches(leaf(field, "eq", expected), {"activity.demo_request.last_at": last_at}) is True


def test_matches_remembers_results_without_changing_them() -> None:
    import re2  # type: ignore[import-untyped]

    from worker.conditions._operators import _MATCHES_MEMO, _MATCHES_MEMO_CHARS, _matches

    pattern = r"(?i)\b(cto|vp)\b"
    test = _matches(re2.compile(pattern))
    texts = [f"{i} {'CTO' if i % 3 == 0 else 'director'}" for i in range(_MATCHES_MEMO * 2 + 7)]
    texts += ["x" * _MATCHES_MEMO_CHARS + " vp", "x" * _MATCHES_MEMO_CHARS + " director"]  # too long to remember
    for _ in range(2):  # the second pass reads what the first remembered (and what survived the clearing)
        assert [test(t) for t in texts] == [re2.search(pattern, t) is not None for t in texts]
    assert test(None) is False
    assert test(3) is False


class _Text(str):
    """A str subclass: the inlined tests check classes with `is`, the tests with isinstance."""


ODD_FACTS: list[object] = [
    *(0, 1, -3, 50, 999, 1000, 10**30, True, False),
    *(0.0, 49.9, 50.0, 1000.0, 1e300, float("nan"), float("inf"), -float("inf")),
    *("", "Acme", "acme", "ACME", "Straße", "STRASSE", "vp of sales", "CTO", "x" * 300),
    _Text("Acme"),
    _Text("CTO"),
    *([], ["Acme"], {}, {"a": 1}, (1,), b"Acme", object()),
]


@pytest.mark.parametrize(
    ("op", "value"),
    [
        ("eq", "Acme"),
        ("eq", 50),
        ("ne", "Acme"),
        ("gt", 50),
        ("gte", 1000),
        ("lt", 50),
        ("lte", 49.9),
        ("between", [50, 999]),
        ("eq_ci", "ACME"),
        ("ne_ci", "straße"),
        ("in_ci", ["Acme", "vp of sales"]),
        ("not_in_ci", ["Acme"]),
        ("matches", r"(?i)\b(cto|vp)\b"),
        ("is_null", None),
        ("is_not_null", None),
    ],
)
def test_an_inlined_test_gives_what_its_test_gives(op: str, value: Any) -> None:
    # the generated scorer pastes these expressions in place of the call: they must agree on any fact but None
    from worker.conditions._fields import Kind
    from worker.conditions._operators import inline_form, prepare_value

    operator = OPERATORS[op]
    assert operator.test is not None
    compiled = operator.test(prepare_value(operator, "custom.any", Kind.ANY, value))
    form = inline_form(compiled)
    assert form is not None, f"{op} has no inline form"
    expression, values = form
    function = eval(f"lambda x: {expression.format(**{name: name for name in values})}", dict(values))  # noqa: S307
    for _ in range(2):  # the second pass reads what `matches` remembered in the first
        for fact in ODD_FACTS:
            assert function(fact) == compiled(fact), (op, value, fact)
