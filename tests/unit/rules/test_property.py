"""Property: compiled conditions agree with a plain interpreter of the condition tree, on random facts."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.rules import parse_ruleset

NOW = 1_800_000_000.0
DAY = 86400.0

# --- the reference: a direct, obviously-correct reading of docs/RULES.md ------------------------------------


def _number(x: object) -> bool:
    return type(x) in (int, float)


def reference(cond: dict[str, Any], facts: dict[str, object]) -> bool:
    if "all" in cond:
        return all(reference(c, facts) for c in cond["all"])
    if "any" in cond:
        return any(reference(c, facts) for c in cond["any"])
    if "not" in cond:
        return not reference(cond["not"], facts)
    x: Any = facts.get(cond["field"])
    op: str = cond["op"]
    v: Any = cond.get("value")
    negated = {"ne": "eq", "not_in": "in", "ne_ci": "eq_ci", "not_in_ci": "in_ci", "not_within_days": "within_days"}
    if op in negated:
        return not reference({**cond, "op": negated[op]}, facts)
    texts: list[Any] = v if isinstance(v, list) else [v]
    if op == "eq":
        return bool(x == v)
    if op == "in":
        return x in v
    if op in ("gt", "gte", "lt", "lte"):
        if not _number(x):
            return False
        return bool({"gt": x > v, "gte": x >= v, "lt": x < v, "lte": x <= v}[op])
    if op == "between":
        return _number(x) and bool(v[0] <= x <= v[1])
    if op == "is_null":
        return x is None
    if op == "is_not_null":
        return x is not None
    if op == "within_days":
        now = facts.get("now")
        return _number(x) and _number(now) and bool(x >= now - v * DAY)
    if not isinstance(x, str):
        return False
    if op.endswith("_ci"):
        x = x.casefold()
        texts = [t.casefold() for t in texts]
        op = op[: -len("_ci")]
    if op == "eq":
        return bool(x == texts[0])
    if op == "in":
        return x in texts
    if op == "contains":
        return any(t in x for t in texts)
    if op == "starts_with":
        return any(x.startswith(t) for t in texts)
    if op == "ends_with":
        return any(x.endswith(t) for t in texts)
    raise AssertionError(op)


# --- random conditions over a small set of fields -------------------------------------------------------------

text = st.text(alphabet="aAbBßẞ -", max_size=4)
texts = st.lists(text, min_size=1, max_size=3)
number = st.one_of(st.integers(-5, 50), st.floats(-5, 50, allow_nan=False))
numbers = st.lists(number, min_size=1, max_size=3)
scalar = st.one_of(text, st.integers(-3, 3), st.booleans())


def _leaf(field: str, op: str, value: st.SearchStrategy[Any] | None) -> st.SearchStrategy[dict[str, Any]]:
    if value is None:
        return st.just({"field": field, "op": op})
    return value.map(lambda v: {"field": field, "op": op, "value": v})


bounds = st.tuples(number, number).map(lambda p: sorted(p))
text_ops = [
    "eq",
    "ne",
    "eq_ci",
    "ne_ci",
    "contains",
    "starts_with",
    "ends_with",
    "contains_ci",
    "starts_with_ci",
    "ends_with_ci",
]

leaves = st.one_of(
    # a number field
    st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]).flatmap(
        lambda op: _leaf("number_of_employees", op, number)
    ),
    st.sampled_from(["in", "not_in"]).flatmap(lambda op: _leaf("number_of_employees", op, numbers)),
    _leaf("number_of_employees", "between", bounds),
    # a text field
    st.sampled_from(text_ops).flatmap(lambda op: _leaf("company", op, text)),
    st.sampled_from(["contains", "starts_with_ci", "ends_with", "contains_ci"]).flatmap(
        lambda op: _leaf("company", op, texts)
    ),
    st.sampled_from(["in", "not_in", "in_ci", "not_in_ci"]).flatmap(lambda op: _leaf("company", op, texts)),
    # a custom field of any type
    st.sampled_from(["eq", "ne"]).flatmap(lambda op: _leaf("custom.x", op, scalar)),
    st.sampled_from(["gte", "lt"]).flatmap(lambda op: _leaf("custom.x", op, number)),
    st.sampled_from(["eq_ci", "contains_ci", "ends_with"]).flatmap(lambda op: _leaf("custom.x", op, text)),
    # a time field
    st.sampled_from(["within_days", "not_within_days"]).flatmap(
        lambda op: _leaf("activity.demo_request.last_at", op, st.integers(0, 10))
    ),
    # nulls
    st.tuples(
        st.sampled_from(["is_null", "is_not_null"]),
        st.sampled_from(["number_of_employees", "company", "custom.x", "activity.demo_request.last_at"]),
    ).flatmap(lambda p: _leaf(p[1], p[0], None)),
)

conditions = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=4).map(lambda cs: {"all": cs}),
        st.lists(children, min_size=1, max_size=4).map(lambda cs: {"any": cs}),
        children.map(lambda c: {"not": c}),
    ),
    max_leaves=8,
)

fact_values = st.fixed_dictionaries(
    {
        "number_of_employees": st.one_of(st.none(), st.integers(-5, 50), st.floats(-5, 50, allow_nan=False)),
        "company": st.one_of(st.none(), text),
        "custom.x": st.one_of(st.none(), scalar, number),
        "activity.demo_request.last_at": st.one_of(
            st.none(), st.floats(NOW - 12 * DAY, NOW + DAY, allow_nan=False), st.just(NOW - 7 * DAY)
        ),
        "now": st.one_of(st.just(NOW), st.none()),
    }
)


@settings(max_examples=300, deadline=None)
@given(cond=conditions, facts=st.lists(fact_values, min_size=1, max_size=4))
def test_compiled_conditions_agree_with_the_reference(cond: dict[str, Any], facts: list[dict[str, object]]) -> None:
    text_doc = yaml.safe_dump(
        {
            "version": "1",
            "scoring": [{"id": "s", "when": cond, "points": 1}],
            "qualification": [{"id": "q", "when": cond, "status": "Contacted"}],
        }
    )
    ruleset = parse_ruleset(text_doc)
    for values in facts:
        expected = reference(cond, values)
        outcome = ruleset.evaluate(dict(values))
        assert (outcome.qualification is not None) is expected, (cond, values)
        assert outcome.points == (1 if expected else 0), (cond, values)
