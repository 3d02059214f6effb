"""Property: what ``rules check`` says cannot happen does not happen, on facts built to come close.

For random rulesets, every rule reported as never matching, shadowed or unable to reach its points is checked
against the compiled ruleset on many facts, drawn from the values the conditions mention (and their neighbours,
other spellings, missing values): it must never be among the matched rules.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.rules import parse_ruleset
from worker.tools.rules import check_text

NOW = 1_800_000_000.0
DAY = 86400.0
FIELDS = {"custom.n": "number", "custom.t": "text"}
CLAIMS = {"never-matches", "shadowed", "points-unreachable"}

# small pools of values, so that conditions often test the same value from two sides
word = st.sampled_from(["de", "DE", "d", "vp", "VP s", "ß", "ss", ""])
words = st.lists(word, min_size=1, max_size=3)
number = st.one_of(st.sampled_from([1, 2, 2.5, 5]), st.integers(-3, 12))
numbers = st.lists(number, min_size=1, max_size=3)
text_ops = ["eq", "ne", "eq_ci", "ne_ci", "contains", "starts_with", "ends_with", "contains_ci", "starts_with_ci"]


def _leaf(field: str, op: str, value: st.SearchStrategy[Any] | None) -> st.SearchStrategy[dict[str, Any]]:
    if value is None:
        return st.just({"field": field, "op": op})
    return value.map(lambda v: {"field": field, "op": op, "value": v})


def _numeric(field: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]).flatmap(lambda op: _leaf(field, op, number)),
        st.sampled_from(["in", "not_in"]).flatmap(lambda op: _leaf(field, op, numbers)),
        st.tuples(number, number).map(sorted).flatmap(lambda b: _leaf(field, "between", st.just(b))),
    )


def _textual(field: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.sampled_from(text_ops).flatmap(lambda op: _leaf(field, op, word)),
        st.sampled_from(["in", "not_in", "in_ci", "not_in_ci", "ends_with_ci"]).flatmap(
            lambda op: _leaf(field, op, words)
        ),
    )


def _leaves(numeric: list[str], textual: list[str], qualification: bool) -> st.SearchStrategy[dict[str, Any]]:
    options = [_numeric(f) for f in numeric] + [_textual(f) for f in textual]
    options.append(
        st.tuples(st.sampled_from(["is_null", "is_not_null"]), st.sampled_from(numeric + textual)).flatmap(
            lambda p: _leaf(p[1], p[0], None)
        )
    )
    if qualification:
        options.append(_numeric("points"))
    return st.one_of(*options)


def _conditions(leaves: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda cs: {"all": cs}),
            st.lists(children, min_size=1, max_size=3).map(lambda cs: {"any": cs}),
            children.map(lambda c: {"not": c}),
        ),
        max_leaves=6,
    )


def rulesets(numeric: list[str], textual: list[str]) -> st.SearchStrategy[tuple[list[Any], list[Any]]]:
    scoring = st.lists(st.tuples(_conditions(_leaves(numeric, textual, False)), st.integers(-5, 10)), max_size=3).map(
        lambda rules: [{"id": f"s{i}", "when": c, "points": p} for i, (c, p) in enumerate(rules)]
    )
    qualification = st.lists(
        st.tuples(
            _conditions(_leaves(numeric, textual, True)), st.sampled_from(["Contacted", "Unqualified", "Qualified"])
        ),
        min_size=1,
        max_size=4,
    ).map(lambda rules: [{"id": f"q{i}", "when": c, "status": s} for i, (c, s) in enumerate(rules)])
    return st.tuples(scoring, qualification)


BROAD = rulesets(["number_of_employees", "custom.n", "activity.demo_request.count", "score"], ["company", "custom.t"])
FOCUSED = rulesets(["number_of_employees"], ["company"])


def _one_field(leaves: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """``all`` of a few tests of one field, some negated: where the per-field reasoning is exercised most."""
    maybe_not = st.one_of(leaves, leaves.map(lambda c: {"not": c}))
    return st.lists(maybe_not, min_size=2, max_size=3).map(lambda cs: {"all": cs})


ONE_FIELD = st.one_of(
    _one_field(_numeric("number_of_employees")),
    _one_field(_numeric("custom.n")),
    _one_field(_numeric("activity.demo_request.count")),
    _one_field(_textual("company")),
    _one_field(_textual("custom.t")),
)
TIMES = st.sampled_from(["within_days", "not_within_days"]).flatmap(
    lambda op: _leaf("activity.demo_request.last_at", op, st.integers(0, 10))
)


def _constants(node: Any, out: dict[str, list[Any]]) -> None:
    if isinstance(node, list):
        for item in node:
            _constants(item, out)
    elif isinstance(node, dict):
        if "op" in node and "value" in node:
            value = node["value"]
            out.setdefault(node["field"], []).extend(value if isinstance(value, list) else [value])
        for value in node.values():
            _constants(value, out)


def _near(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, str):
            out += [v, v.upper(), v.casefold(), v.title(), f"{v}x", f"x{v}", f"{v} {v}"]
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out += [v, v - 1, v + 1, v - 0.5, v + 0.5]
    return out


def _value(field: str, near: list[Any]) -> st.SearchStrategy[Any]:
    if field in ("number_of_employees",):
        base: st.SearchStrategy[Any] = st.integers(0, 60)
        near = [int(v) for v in near if isinstance(v, int | float) and v >= 0 and float(v).is_integer()]
    elif field == "activity.demo_request.count":
        base = st.integers(1, 20)
        near = [int(v) for v in near if isinstance(v, int | float) and v >= 1 and float(v).is_integer()]
    elif field == "custom.n":
        base = st.one_of(st.integers(-5, 20), st.floats(-5, 20, allow_nan=False))
        near = [v for v in near if isinstance(v, int | float)]
    elif field == "score":
        return st.one_of(st.floats(0, 1), st.sampled_from([0.0, 0.5, 1.0]))
    elif field == "activity.demo_request.last_at":
        return st.one_of(
            st.none(), st.floats(NOW - 12 * DAY, NOW + DAY), st.integers(0, 11).map(lambda d: NOW - d * DAY)
        )
    else:
        base = st.text(alphabet="aAdDeEsSßxX -", max_size=5)
        near = [v for v in near if isinstance(v, str)]
    if not near:
        return st.one_of(st.none(), base)
    close = st.sampled_from(near)
    return st.one_of(st.none(), base, close, close, close)  # mostly the values the conditions name


def _check_claims(scoring: list[Any], qualification: list[Any], data: st.DataObject) -> None:
    text = yaml.safe_dump(
        {"version": "1", "fields": FIELDS, "scoring": scoring, "qualification": qualification}, sort_keys=False
    )
    report = check_text(text, "rules.yaml")
    assert report.valid, report.problems
    claimed = {f.rule_id for f in report.findings if f.code in CLAIMS}
    if not claimed:
        return
    ruleset = parse_ruleset(text)
    constants: dict[str, list[Any]] = {}
    _constants([scoring, qualification], constants)
    read = set(constants) | {"activity.demo_request.last_at"} & set(text.split())
    fields = sorted(read | {"company", "score"})
    for _ in range(60):
        facts: dict[str, object] = {"now": NOW, "converted": False, "activity.total": 0}
        for name in fields:
            facts[name] = data.draw(_value(name, _near(constants.get(name, []))), label=name)
        outcome = ruleset.evaluate(facts)
        assert not claimed & set(outcome.matched_rules), (report.findings, facts, outcome)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=BROAD, data=st.data())
def test_rules_said_to_never_fire_never_fire(rules: tuple[list[Any], list[Any]], data: st.DataObject) -> None:
    _check_claims(*rules, data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=FOCUSED, data=st.data())
def test_on_one_number_and_one_text_field(rules: tuple[list[Any], list[Any]], data: st.DataObject) -> None:
    _check_claims(*rules, data)


@settings(max_examples=50, deadline=None)
@given(when=st.lists(TIMES, min_size=1, max_size=3), data=st.data())
def test_time_windows(when: list[dict[str, Any]], data: st.DataObject) -> None:
    _check_claims(
        [{"id": "s", "when": {"all": when}, "points": 1}],
        [{"id": "q", "when": {"all": when}, "status": "Contacted"}],
        data,
    )


@settings(max_examples=200, deadline=None)
@given(when=ONE_FIELD, data=st.data())
def test_tests_of_one_field(when: dict[str, Any], data: st.DataObject) -> None:
    scoring = [{"id": "s", "when": when, "points": 1}]
    _check_claims(scoring, [{"id": "q", "when": when, "status": "Contacted"}], data)
