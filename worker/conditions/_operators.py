"""Operators: how each one checks its value at compile time and the closure it compiles to.

No compiled test ever raises: a missing (None) fact or a fact of the wrong type makes a test False, and the
negated forms (``ne``, ``not_in``, ``ne_ci``, ``not_in_ci``, ``not_within_days``, ``is_not_free_email``) are the
exact opposite of their positive forms, so they are True then.

Why one module of about 700 lines: it is the operator table, one entry per operator with its value check and
its closure side by side; to add or change an operator is to change one place here (see docs/RULES.md).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeGuard

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

from worker.conditions._fields import Kind
from worker.conditions._freemail import FREE_EMAIL_DOMAINS
from worker.conditions._model import Condition, Facts
from worker.conditions.limits import MAX_LIST_VALUES, MAX_PATTERN_CHARS
from worker.lead.state import CHANGED_FACT

__all__ = [
    "OPERATORS",
    "OP_ALIASES",
    "Operator",
    "Takes",
    "Test",
    "ValueProblem",
    "domain_of",
    "inline_form",
    "leaf_condition",
    "prepare_value",
    "typed_test",
]

Test = Callable[[Any], bool]
"""A compiled test of one fact value."""

_NUMBER: frozenset[type[float]] = frozenset({int, float})
_DAY = 86400.0


class Takes(Enum):
    """The shape of value an operator needs."""

    NOTHING = "no value"
    SCALAR = "a single value"
    SCALARS = "a list of values"
    NUMBER = "a number"
    RANGE = "a list of two numbers [low, high]"
    TEXT = "a text"
    TEXTS = "a text or a list of texts"
    TEXT_LIST = "a list of texts"
    DAYS = "a number of days"
    PATTERN = "a regular expression (a text)"
    DOMAINS = "a domain or a list of domains"


_TRUE_ON_NONE = frozenset(
    {"ne", "not_in", "ne_ci", "not_in_ci", "is_null", "not_within_days", "is_not_free_email", "changed"}
)
"""Operators that can hold for a missing fact (``changed`` does when the event cleared the field)."""
_ALL = frozenset(Kind)
_NUMERIC = frozenset({Kind.NUMBER, Kind.TIME, Kind.ANY})
_TEXTUAL = frozenset({Kind.TEXT, Kind.ANY})
_TIMES = frozenset({Kind.TIME, Kind.ANY})


class ValueProblem(Exception):
    """A value that does not suit its operator or field (compile time only)."""

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion


# --- value tests ----------------------------------------------------------------------------------------------
# Most operators compile to a *test* of one value: ``test(x) -> bool``. A leaf condition binds a field to it, and
# the ruleset's scoring loop calls a test directly with the fact it already looked up.
#
# The simplest tests also carry the same test as an expression over ``x`` (``inline_form``): the generated scoring
# function (worker.rules._model) pastes it in instead of calling the test, saving a Python call per rule and
# event. The expression holds only ``x`` and ``{name}`` placeholders, which the generator renames to identifiers
# of its own and binds to the values given here; a unit test checks every expression against its test.

_INLINE = "__leadflow_inline__"


def _inline(function: Test, expression: str, /, **values: object) -> Test:
    """Mark a test with an expression over ``x`` that gives what ``function(x)`` gives for any ``x`` but None."""
    setattr(function, _INLINE, (expression, values))
    return function


def inline_form(test: Test) -> tuple[str, dict[str, object]] | None:
    """The expression (with ``{name}`` placeholders) and values of a test marked by ``_inline``, or None."""
    form: tuple[str, dict[str, object]] | None = getattr(test, _INLINE, None)
    return form


def _eq(value: object) -> Test:
    def eq(x: object) -> bool:
        return x == value

    return _inline(eq, "x == {value}", value=value)


def _ne(value: object) -> Test:
    def ne(x: object) -> bool:
        return x != value

    return _inline(ne, "x != {value}", value=value)


def _in(values: frozenset[object]) -> Test:
    def in_(x: object) -> bool:
        try:
            return x in values
        except TypeError:  # an unhashable fact is in no set
            return False

    return in_


def _not_in(values: frozenset[object]) -> Test:
    def not_in(x: object) -> bool:
        try:
            return x not in values
        except TypeError:
            return True

    return not_in


def _gt(bound: float) -> Test:
    def gt(x: Any) -> bool:
        ok: bool = x.__class__ in _NUMBER and x > bound
        return ok

    return _inline(gt, "x.__class__ in {number} and x > {bound}", number=_NUMBER, bound=bound)


def _gte(bound: float) -> Test:
    def gte(x: Any) -> bool:
        ok: bool = x.__class__ in _NUMBER and x >= bound
        return ok

    return _inline(gte, "x.__class__ in {number} and x >= {bound}", number=_NUMBER, bound=bound)


def _lt(bound: float) -> Test:
    def lt(x: Any) -> bool:
        ok: bool = x.__class__ in _NUMBER and x < bound
        return ok

    return _inline(lt, "x.__class__ in {number} and x < {bound}", number=_NUMBER, bound=bound)


def _lte(bound: float) -> Test:
    def lte(x: Any) -> bool:
        ok: bool = x.__class__ in _NUMBER and x <= bound
        return ok

    return _inline(lte, "x.__class__ in {number} and x <= {bound}", number=_NUMBER, bound=bound)


def _between(bounds: tuple[float, float]) -> Test:
    low, high = bounds

    def between(x: Any) -> bool:
        ok: bool = x.__class__ in _NUMBER and low <= x <= high
        return ok

    return _inline(between, "x.__class__ in {number} and {low} <= x <= {high}", number=_NUMBER, low=low, high=high)


def _search(needles: tuple[str, ...]) -> Callable[[str], object]:
    """A substring search for any of ``needles``: ``in`` for one, a compiled alternation for several."""
    if len(needles) == 1:
        needle = needles[0]

        def search_one(text: str) -> bool:
            return needle in text

        return search_one
    return re.compile("|".join(re.escape(n) for n in needles)).search


def _contains(needles: tuple[str, ...]) -> Test:
    search = _search(needles)

    def contains(x: object) -> bool:
        return isinstance(x, str) and bool(search(x))

    return contains


def _contains_ci(needles: tuple[str, ...]) -> Test:
    search = _search(needles)

    def contains_ci(x: object) -> bool:
        return isinstance(x, str) and bool(search(x.casefold()))

    return contains_ci


def _starts_with(prefixes: tuple[str, ...]) -> Test:
    def starts_with(x: object) -> bool:
        return isinstance(x, str) and x.startswith(prefixes)

    return starts_with


def _starts_with_ci(prefixes: tuple[str, ...]) -> Test:
    def starts_with_ci(x: object) -> bool:
        return isinstance(x, str) and x.casefold().startswith(prefixes)

    return starts_with_ci


def _ends_with(suffixes: tuple[str, ...]) -> Test:
    def ends_with(x: object) -> bool:
        return isinstance(x, str) and x.endswith(suffixes)

    return ends_with


def _ends_with_ci(suffixes: tuple[str, ...]) -> Test:
    def ends_with_ci(x: object) -> bool:
        return isinstance(x, str) and x.casefold().endswith(suffixes)

    return ends_with_ci


def _eq_ci(value: str) -> Test:
    def eq_ci(x: object) -> bool:
        return isinstance(x, str) and x.casefold() == value

    return _inline(eq_ci, "isinstance(x, str) and x.casefold() == {value}", value=value)


def _ne_ci(value: str) -> Test:
    def ne_ci(x: object) -> bool:
        return not isinstance(x, str) or x.casefold() != value

    return _inline(ne_ci, "not isinstance(x, str) or x.casefold() != {value}", value=value)


def _in_ci(values: frozenset[str]) -> Test:
    def in_ci(x: object) -> bool:
        return isinstance(x, str) and x.casefold() in values

    return _inline(in_ci, "isinstance(x, str) and x.casefold() in {values}", values=values)


def _not_in_ci(values: frozenset[str]) -> Test:
    def not_in_ci(x: object) -> bool:
        return not isinstance(x, str) or x.casefold() not in values

    return _inline(not_in_ci, "not isinstance(x, str) or x.casefold() not in {values}", values=values)


def _is_null(_: object) -> Test:
    def is_null(x: object) -> bool:
        return x is None

    return _inline(is_null, "False")


def _is_not_null(_: object) -> Test:
    def is_not_null(x: object) -> bool:
        return x is not None

    return _inline(is_not_null, "True")  # the generated code has checked that x is not None


_MATCHES_MEMO = 1024  # results remembered per matches test; a lead's title comes back with every event
_MATCHES_MEMO_CHARS = 256  # longer texts are searched every time rather than kept


def _matches(regex: Any) -> Test:
    search = regex.search
    memo: dict[str, bool] = {}  # RE2 costs ~3 µs a call from Python; a dict lookup ~0.05 µs

    def matches(x: object) -> bool:
        if not isinstance(x, str):
            return False
        hit = memo.get(x)
        if hit is None:
            hit = search(x) is not None
            if len(x) <= _MATCHES_MEMO_CHARS:
                if len(memo) >= _MATCHES_MEMO:
                    memo.clear()
                memo[x] = hit
        return hit

    # a remembered text is a dict lookup; anything else is the call
    expression = "(True if (hit := ({memo}.get(x) if x.__class__ is str else None)) else hit is None and {test}(x))"
    return _inline(matches, expression, memo=memo, test=matches)


@functools.lru_cache(maxsize=4096)  # a lead's email and website come back with every event and every domain rule
def domain_of(text: str) -> str:
    """The domain of an email address (after the last '@') or the host of a website (no scheme, path, port or
    ``www.``), in lower case: ``Bob@Mail.Acme.com`` -> ``mail.acme.com``, ``https://www.acme.com:8080/x`` ->
    ``acme.com``."""
    host = text.strip()
    scheme = host.find("://")
    if scheme >= 0:
        host = host[scheme + 3 :]
    for sep in "/?#":
        cut = host.find(sep)
        if cut >= 0:
            host = host[:cut]
    at = host.rfind("@")
    if at >= 0:
        host = host[at + 1 :]
    colon = host.find(":")
    if colon >= 0:
        host = host[:colon]
    host = host.rstrip(".").lower()
    return host[4:] if host.startswith("www.") else host


def _domain_in(domains: frozenset[str]) -> Test:
    def domain_in(x: object) -> bool:
        if not isinstance(x, str):
            return False
        host = domain_of(x)
        while host:  # the domain itself, then each parent domain: a listed domain covers its subdomains
            if host in domains:
                return True
            dot = host.find(".")
            if dot < 0:
                return False
            host = host[dot + 1 :]
        return False

    return domain_in


def _is_free_email(_: object) -> Test:
    def is_free_email(x: object) -> bool:
        return isinstance(x, str) and domain_of(x) in FREE_EMAIL_DOMAINS

    return is_free_email


def _is_not_free_email(_: object) -> Test:
    def is_not_free_email(x: object) -> bool:
        return not isinstance(x, str) or domain_of(x) not in FREE_EMAIL_DOMAINS

    return is_not_free_email


def typed_test(test: Test, kind: Kind, negated: bool) -> Test:
    """``test`` made strict about the kind of a declared custom field: a value of another kind never equals.

    (Python has ``True == 1``: without this, a producer's ``1`` would pass ``eq: true`` on a yes/no field.)
    """
    if kind is Kind.BOOL:
        classes: frozenset[type] = frozenset({bool})
    elif kind in (Kind.NUMBER, Kind.TIME):
        classes = _NUMBER
    else:
        return test
    if negated:

        def typed_negated(x: object) -> bool:
            return x.__class__ not in classes or test(x)

        return typed_negated

    def typed(x: object) -> bool:
        return x.__class__ in classes and test(x)

    return typed


# changed reads what the event changed, not the fact's value: a condition over the facts.


def _changed(field: str, _: object) -> Condition:
    def changed(facts: Facts) -> bool:
        paths: Any = facts.get(CHANGED_FACT)
        return paths is not None and field in paths

    return changed


# within_days compares two facts (the field and ``now``), so it compiles to a condition over the facts directly.


def _within_days(field: str, span: float) -> Condition:
    def within_days(facts: Facts) -> bool:
        x: Any = facts.get(field)
        now: Any = facts.get("now")
        ok: bool = x.__class__ in _NUMBER and now.__class__ in _NUMBER and x >= now - span
        return ok

    return within_days


def _not_within_days(field: str, span: float) -> Condition:
    within = _within_days(field, span)

    def not_within_days(facts: Facts) -> bool:
        return not within(facts)

    return not_within_days


def leaf_condition(field: str, test: Test) -> Condition:
    """The condition ``test(facts[field])`` (a missing fact is None)."""

    def leaf(facts: Facts) -> bool:
        return test(facts.get(field))

    return leaf


# --- the table ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operator:
    """One operator: the value it takes, the kinds of field it applies to, and how it compiles.

    ``test`` builds a value test from the prepared value; operators that need more than one fact build a whole
    condition with ``condition`` instead.
    """

    name: str
    takes: Takes
    fields: frozenset[Kind]
    test: Callable[[Any], Test] | None = None
    condition: Callable[[str, Any], Condition] | None = None
    case_insensitive: bool = False

    @property
    def none_is_false(self) -> bool:
        """Whether a missing (None) fact makes this test False (every operator but the negated ones)."""
        return self.name not in _TRUE_ON_NONE

    def compile(self, field: str, prepared: object) -> tuple[Condition, Test | None]:
        """The leaf condition on ``field``, and its value test when the operator has one."""
        if self.test is not None:
            test = self.test(prepared)
            return leaf_condition(field, test), test
        if self.condition is None:  # pragma: no cover - the table below gives every operator one of the two
            msg = f"operator {self.name!r} has no compiler"
            raise TypeError(msg)
        return self.condition(field, prepared), None


def _op(
    name: str, takes: Takes, fields: frozenset[Kind], test: Callable[[Any], Test], ci: bool = False
) -> tuple[str, Operator]:
    return name, Operator(name, takes, fields, test=test, case_insensitive=ci)


OPERATORS: Mapping[str, Operator] = dict(
    [
        _op("eq", Takes.SCALAR, _ALL, _eq),
        _op("ne", Takes.SCALAR, _ALL, _ne),
        _op("in", Takes.SCALARS, _ALL, _in),
        _op("not_in", Takes.SCALARS, _ALL, _not_in),
        _op("gt", Takes.NUMBER, _NUMERIC, _gt),
        _op("gte", Takes.NUMBER, _NUMERIC, _gte),
        _op("lt", Takes.NUMBER, _NUMERIC, _lt),
        _op("lte", Takes.NUMBER, _NUMERIC, _lte),
        _op("between", Takes.RANGE, _NUMERIC, _between),
        _op("contains", Takes.TEXTS, _TEXTUAL, _contains),
        _op("starts_with", Takes.TEXTS, _TEXTUAL, _starts_with),
        _op("ends_with", Takes.TEXTS, _TEXTUAL, _ends_with),
        _op("eq_ci", Takes.TEXT, _TEXTUAL, _eq_ci, ci=True),
        _op("ne_ci", Takes.TEXT, _TEXTUAL, _ne_ci, ci=True),
        _op("in_ci", Takes.TEXT_LIST, _TEXTUAL, _in_ci, ci=True),
        _op("not_in_ci", Takes.TEXT_LIST, _TEXTUAL, _not_in_ci, ci=True),
        _op("contains_ci", Takes.TEXTS, _TEXTUAL, _contains_ci, ci=True),
        _op("starts_with_ci", Takes.TEXTS, _TEXTUAL, _starts_with_ci, ci=True),
        _op("ends_with_ci", Takes.TEXTS, _TEXTUAL, _ends_with_ci, ci=True),
        _op("is_null", Takes.NOTHING, _ALL, _is_null),
        _op("is_not_null", Takes.NOTHING, _ALL, _is_not_null),
        ("within_days", Operator("within_days", Takes.DAYS, _TIMES, condition=_within_days)),
        ("not_within_days", Operator("not_within_days", Takes.DAYS, _TIMES, condition=_not_within_days)),
        _op("matches", Takes.PATTERN, _TEXTUAL, _matches),
        _op("domain_in", Takes.DOMAINS, _TEXTUAL, _domain_in),
        _op("is_free_email", Takes.NOTHING, _TEXTUAL, _is_free_email),
        _op("is_not_free_email", Takes.NOTHING, _TEXTUAL, _is_not_free_email),
        ("changed", Operator("changed", Takes.NOTHING, _ALL, condition=_changed)),
    ]
)

OP_ALIASES: Mapping[str, str] = {
    "=": "eq",
    "==": "eq",
    "equals": "eq",
    "is": "eq",
    "!=": "ne",
    "<>": "ne",
    "not_eq": "ne",
    ">": "gt",
    "greater_than": "gt",
    "more_than": "gt",
    "above": "gt",
    ">=": "gte",
    "greater_than_or_equal": "gte",
    "greater_or_equal": "gte",
    "at_least": "gte",
    "less_than": "lt",
    "below": "lt",
    "less_than_or_equal": "lte",
    "less_or_equal": "lte",
    "at_most": "lte",
    "not_equal": "ne",
    "not_equals": "ne",
    "includes": "contains",
    "one_of": "in",
    "not_one_of": "not_in",
    "range": "between",
    "ge": "gte",
    "<": "lt",
    "<=": "lte",
    "le": "lte",
    "nin": "not_in",
    "in_list": "in",
    "startswith": "starts_with",
    "endswith": "ends_with",
    "is_none": "is_null",
    "exists": "is_not_null",
    "not_null": "is_not_null",
    "within": "within_days",
    "regex": "matches",
    "like": "matches",
    "rlike": "matches",
    "domain": "domain_in",
    "domain_is": "domain_in",
    "in_domain": "domain_in",
    "free_email": "is_free_email",
    "is_freemail": "is_free_email",
    "has_changed": "changed",
    "is_changed": "changed",
}
"""Spellings from other rule languages, used only to suggest the right operator name."""


# --- compile-time value checks -----------------------------------------------------------------------------------


def _is_number(value: object) -> TypeGuard[float]:
    return value.__class__ in _NUMBER


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float)  # bool is an int


def _scalar_for(op: str, field: str, kind: Kind, value: object) -> object:
    """Check one eq/ne/in value against the field's kind."""
    if value is None:
        msg = f"op {op!r} cannot compare with null for field {field!r}; use 'is_null' or 'is_not_null'"
        raise ValueProblem(msg, "is_null" if op in ("eq", "in") else "is_not_null")
    if kind is Kind.TEXT and not isinstance(value, str):
        msg = f"op {op!r} needs a text, got {value!r} for field {field!r} (put quotes around it)"
        raise ValueProblem(msg)
    if kind in (Kind.NUMBER, Kind.TIME) and not _is_number(value):
        msg = f"op {op!r} needs a number, got {value!r} for field {field!r}"
        raise ValueProblem(msg)
    if kind is Kind.BOOL and not isinstance(value, bool):
        msg = f"op {op!r} needs true or false, got {value!r} for field {field!r}"
        raise ValueProblem(msg)
    if not _is_scalar(value):
        msg = f"op {op!r} needs a text, number or true/false, got {value!r} for field {field!r}"
        raise ValueProblem(msg)
    return value


def _check_size(op: str, field: str, value: object) -> None:
    if isinstance(value, list) and len(value) > MAX_LIST_VALUES:
        msg = f"op {op!r} has {len(value)} values for field {field!r}; the limit is {MAX_LIST_VALUES}"
        raise ValueProblem(msg)


_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _is_domain(text: str) -> bool:
    return 0 < len(text) <= 253 and all(_LABEL.fullmatch(label) for label in text.split("."))


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 8 << 20  # bytes for the compiled program: far above what MAX_PATTERN_CHARS can need


def _pattern(field: str, value: object) -> object:
    if not isinstance(value, str) or not value:
        msg = f"op 'matches' needs a regular expression (a text), got {value!r} for field {field!r}"
        raise ValueProblem(msg)
    if len(value) > MAX_PATTERN_CHARS:
        msg = (
            f"op 'matches' has a pattern of {len(value)} characters for field {field!r};"
            f" the limit is {MAX_PATTERN_CHARS}"
        )
        raise ValueProblem(msg)
    try:
        return re2.compile(value, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        msg = (
            f"op 'matches' cannot use the pattern {value!r} for field {field!r}: {reason}"
            " (patterns run in linear time: no look-around such as (?=...) and no back-references such as \\1)"
        )
        raise ValueProblem(msg) from exc


def _domains(field: str, value: object) -> frozenset[str]:
    items = value if isinstance(value, list) else [value]
    if not items:
        msg = f"op 'domain_in' needs {Takes.DOMAINS.value}, got {value!r} for field {field!r}"
        raise ValueProblem(msg)
    domains: set[str] = set()
    for item in items:
        if not isinstance(item, str):
            msg = f"op 'domain_in' needs a domain like 'example.com', got {item!r} for field {field!r}"
            raise ValueProblem(msg)
        domain = domain_of(item)
        if not _is_domain(domain):
            msg = f"op 'domain_in' needs a domain like 'example.com', got {item!r} for field {field!r}"
            raise ValueProblem(msg)
        domains.add(domain)
    return frozenset(domains)


def _texts(op: str, field: str, value: object, *, fold: bool, list_only: bool) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if (list_only and not isinstance(value, list)) or not items:
        what = "a list of texts" if list_only else "a text or a list of texts"
        msg = f"op {op!r} needs {what}, got {value!r} for field {field!r}"
        raise ValueProblem(msg, "eq_ci" if list_only and isinstance(value, str) else None)
    for item in items:
        if not isinstance(item, str):
            msg = f"op {op!r} needs a text, got {item!r} for field {field!r} (put quotes around it)"
            raise ValueProblem(msg)
    return tuple(str(s).casefold() if fold else str(s) for s in items)


def prepare_value(operator: Operator, field: str, kind: Kind, value: object) -> object:
    """Check ``value`` for ``operator`` on a field of ``kind`` and return what the closure builder takes."""
    op = operator.name
    takes = operator.takes
    _check_size(op, field, value)
    if takes is Takes.NOTHING:
        return None
    if takes is Takes.PATTERN:
        return _pattern(field, value)
    if takes is Takes.DOMAINS:
        return _domains(field, value)
    if takes is Takes.SCALAR:
        return _scalar_for(op, field, kind, value)
    if takes is Takes.SCALARS:
        if not isinstance(value, list) or not value:
            msg = f"op {op!r} needs a list of values, got {value!r} for field {field!r}"
            raise ValueProblem(msg, "eq" if op == "in" and _is_scalar(value) else None)
        return frozenset(_scalar_for(op, field, kind, v) for v in value)
    if takes is Takes.NUMBER:
        if not _is_number(value):
            msg = f"op {op!r} needs a number, got {value!r} for field {field!r}"
            raise ValueProblem(msg)
        return value
    if takes is Takes.RANGE:
        if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)):
            msg = f"op 'between' needs a list of two numbers [low, high], got {value!r} for field {field!r}"
            raise ValueProblem(msg)
        low, high = value
        if low > high:
            msg = f"op 'between' needs low <= high, got [{low!r}, {high!r}] for field {field!r}"
            raise ValueProblem(msg, f"[{high!r}, {low!r}]")
        return (low, high)
    if takes is Takes.TEXT:
        if not isinstance(value, str):
            msg = f"op {op!r} needs a text, got {value!r} for field {field!r}"
            raise ValueProblem(msg)
        return value.casefold()
    if takes in (Takes.TEXTS, Takes.TEXT_LIST):
        texts = _texts(op, field, value, fold=operator.case_insensitive, list_only=takes is Takes.TEXT_LIST)
        return frozenset(texts) if takes is Takes.TEXT_LIST else texts
    # Takes.DAYS
    if not _is_number(value) or value < 0:
        msg = f"op {op!r} needs a number of days (0 or more), got {value!r} for field {field!r}"
        raise ValueProblem(msg)
    return float(value) * _DAY
