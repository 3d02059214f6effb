"""The condition compiler shared by rules and routing: check a ``when`` tree and compile it to closures.

:class:`ConditionContext` is what the compiler knows while it walks one file (its source, the declared custom fields,
the facts read and the derived facts to compute); the ruleset compiler (:mod:`worker.rules._compile`) and the
routing compiler (:mod:`worker.routing._compile`) each extend it. Every problem is recorded in the source, with its
location, rule id and a suggestion, so that one broken rule does not hide the others.

Why one module of about 510 lines: the context that records problems and the walk of the condition tree that
reports them are one compiler; a rule's problems must read the same wherever the condition sits.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from worker.conditions._derived import derived_fact
from worker.conditions._fields import (
    FIXED_FIELDS,
    KINDS,
    ROUTING_FIELDS,
    FieldCheck,
    Kind,
    activity_part,
    can_change,
    check_field,
)
from worker.conditions._loader import Loc, Source
from worker.conditions._model import Condition, Facts
from worker.conditions._operators import (
    OP_ALIASES,
    OPERATORS,
    Operator,
    Takes,
    Test,
    ValueProblem,
    leaf_condition,
    prepare_value,
    typed_test,
)
from worker.conditions._schema import PATTERN_HINTS
from worker.conditions.limits import MAX_CONDITIONS, MAX_DEPTH, MAX_FIELDS
from worker.lead.state import CHANGED_FACT

__all__ = [
    "Clock",
    "Compiled",
    "ConditionContext",
    "compile_condition",
    "declared_fields",
    "describe",
    "raw_id",
    "suggest",
    "within_limits",
]

_NUMBER: frozenset[type[float]] = frozenset({int, float})
_GROUPS = ("all", "any", "not")
_LEAF = ("field", "op", "value")
_TYPED_OPS = {"eq": False, "in": False, "ne": True, "not_in": True}
"""Operators made strict about a declared custom field's kind, and whether each is a negated one."""
_KIND_ALIASES = {
    "string": "text",
    "str": "text",
    "int": "number",
    "integer": "number",
    "float": "number",
    "decimal": "number",
    "bool": "yes/no",
    "boolean": "yes/no",
    "true": "yes/no",
    "yes": "yes/no",
    "date": "time",
    "datetime": "time",
    "timestamp": "time",
}
M = TypeVar("M", bound=BaseModel)
_TIME_FACTS = frozenset({"now", "days_since_last_activity", "days_in_status", "points"})
"""Facts whose value can change with no event: the time itself, ages, and points (which decay can lower)."""


class Clock(NamedTuple):
    """One test whose outcome can change as time passes, with no new event (see :mod:`worker.rules._wake`).

    ``field`` is the fact it reads, ``op`` the operator, ``value`` the operator's prepared value (a number, a
    ``(low, high)`` pair, a set, or a span in seconds for ``within_days``) and ``condition`` the compiled test over
    the facts.
    """

    field: str
    op: str
    value: object
    condition: Condition
    test: Test | None = None
    """The test of the fact's value alone, when the condition is one (``condition(facts) == test(facts[field])``)."""


def _ticks(name: str, op: str) -> bool:
    """Whether the test ``name op ...`` can change its outcome as time passes (with no event)."""
    if op in ("within_days", "not_within_days") or name in _TIME_FACTS:
        return True
    part = activity_part(name)
    return part is not None and part[1] in ("days_since", "count_in_days")


def suggest(word: object, candidates: Collection[str], cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word`` (an exact match ignoring case first), or None."""
    if not isinstance(word, str):
        return None
    folded = {c.casefold(): c for c in candidates}
    if word.casefold() in folded:
        return folded[word.casefold()]
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return close[0] if close else None


def describe(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _explain(err: Mapping[str, Any]) -> str:
    """A pydantic error in the words a sales-ops reader expects."""
    kind = err["type"]
    value = err.get("input")
    keys = [p for p in err["loc"] if isinstance(p, str)]
    key = keys[-1] if keys else ""
    plain = {
        "string_type": "needs a text",
        "int_type": "needs a whole number",
        "float_type": "needs a number",
        "bool_type": "needs true or false",
        "list_type": "needs a list",
        "finite_number": "needs a finite number",
    }
    if kind in plain:
        return f"{plain[kind]}, got {describe(value)}"
    if kind == "string_pattern_mismatch":
        return f"needs {PATTERN_HINTS.get(key, 'a different text')}, got {value!r}"
    msg = str(err["msg"])
    return f"{msg[:1].lower()}{msg[1:]}, got {describe(value)}"


@dataclass(slots=True)
class ConditionContext:
    """What the condition compiler knows while it walks a file; rules and routing each extend it."""

    src: Source
    activity_types: frozenset[str] = frozenset()
    custom: Mapping[str, Kind] = field(default_factory=dict)
    """The declared ``custom.*`` fields and their kinds."""
    read: set[str] = field(default_factory=set)
    """The fields read by the rule being compiled."""
    derived: dict[str, Callable[[Facts], object]] = field(default_factory=dict)
    """The derived facts the ruleset reads, by name."""
    unreadable: Mapping[str, str] = field(default_factory=dict)
    """Fields the rule being compiled may not read, each with the reason (scoring rules cannot read 'points')."""
    clocks: list[Clock] = field(default_factory=list)
    """The tests compiled so far whose outcome can change as time passes (what a lead's wake-up time is from)."""

    def add(self, loc: Loc, message: str, rule_id: str | None = None, suggestion: str | None = None) -> None:
        self.src.add(loc, message, rule_id, suggestion)

    def field(self, name: object, expect: Kind = Kind.TEXT) -> FieldCheck:
        """Check a field a rule reads, and remember it (for decay, and derived facts to compute)."""
        if isinstance(name, str) and name in ROUTING_FIELDS:
            msg = f"field {name!r} is only known to routing rules (it comes from lead-to-account matching)"
            return FieldCheck(None, msg)
        checked = check_field(name, self.activity_types, self.custom, expect)
        if checked.kind is not None and isinstance(name, str):
            self.read.add(name)
            compute = derived_fact(name)
            if compute is not None:
                self.derived.setdefault(name, compute)
        return checked

    def validate(
        self,
        model: type[M],
        raw: object,
        loc: Loc,
        what: str,
        rule_id: str | None = None,
        placeholders: Mapping[str, object] | None = None,
    ) -> tuple[M | None, set[str]]:
        """Validate one mapping; report every error; retry without the bad keys so checking can go on."""
        if not isinstance(raw, dict):
            self.add(loc, f"{what} must be a mapping of keys, got {describe(raw)}", rule_id)
            return None, set()
        try:
            return model.model_validate(raw), set()
        except ValidationError as exc:
            errors = exc.errors()
        bad: set[str] = set()
        suggested: set[str] = set()
        unused = [name for name in model.model_fields if name not in raw]
        for err in errors:
            if err["type"] != "extra_forbidden":
                continue
            key = str(err["loc"][0])
            bad.add(key)
            hint = suggest(key, unused) or suggest(key, list(model.model_fields))
            if hint is not None:
                suggested.add(hint)
            self.add((*loc, key), f"unknown key {key!r} in {what}", rule_id, hint)
        for err in errors:
            if err["type"] == "extra_forbidden":
                continue
            err_loc = tuple(err["loc"])
            key = str(err_loc[0]) if err_loc else ""
            bad.add(key)
            if err["type"] == "missing":
                if key not in suggested:
                    self.add(loc, f"{what} is missing the required key {key!r}", rule_id)
                continue
            self.add((*loc, *err_loc), _explain(err), rule_id)
        kept: dict[str, object] = {k: v for k, v in raw.items() if k not in bad}
        for key in bad:
            if placeholders is not None and key in placeholders:
                kept[key] = placeholders[key]
        try:
            return model.model_validate(kept), bad
        except ValidationError:
            return None, bad


# --- the condition tree ---------------------------------------------------------------------------------------


def _all_of(parts: Sequence[Condition]) -> Condition:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts

        def all_2(facts: Facts) -> bool:
            return first(facts) and second(facts)

        return all_2
    steps = tuple(parts)

    def all_n(facts: Facts) -> bool:
        for step in steps:  # noqa: SIM110  # a plain loop is faster than all() over a generator
            if not step(facts):
                return False
        return True

    return all_n


def _any_of(parts: Sequence[Condition]) -> Condition:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts

        def any_2(facts: Facts) -> bool:
            return first(facts) or second(facts)

        return any_2
    steps = tuple(parts)

    def any_n(facts: Facts) -> bool:
        for step in steps:  # noqa: SIM110  # a plain loop is faster than any() over a generator
            if step(facts):
                return True
        return False

    return any_n


def _all_leaves(leaves: Sequence[tuple[str, Test]]) -> Condition:
    if len(leaves) == 2:
        (first_field, first), (second_field, second) = leaves

        def all_leaves_2(facts: Facts) -> bool:
            return first(facts.get(first_field)) and second(facts.get(second_field))

        return all_leaves_2
    steps = tuple(leaves)

    def all_leaves(facts: Facts) -> bool:
        get = facts.get
        for name, test in steps:  # noqa: SIM110  # a plain loop is faster than all() over a generator
            if not test(get(name)):
                return False
        return True

    return all_leaves


def _any_leaves(leaves: Sequence[tuple[str, Test]]) -> Condition:
    if len(leaves) == 2:
        (first_field, first), (second_field, second) = leaves

        def any_leaves_2(facts: Facts) -> bool:
            return first(facts.get(first_field)) or second(facts.get(second_field))

        return any_leaves_2
    steps = tuple(leaves)

    def any_leaves(facts: Facts) -> bool:
        get = facts.get
        for name, test in steps:  # noqa: SIM110  # a plain loop is faster than any() over a generator
            if test(get(name)):
                return True
        return False

    return any_leaves


def _not(inner: Condition) -> Condition:
    def not_(facts: Facts) -> bool:
        return not inner(facts)

    return not_


def _kind_mismatch(op: str, field_name: str, kind: Kind) -> str:
    if op in ("gt", "gte", "lt", "lte", "between"):
        return f"op {op!r} compares numbers, but field {field_name!r} holds {kind.value}"
    if op in ("within_days", "not_within_days"):
        return (
            f"op {op!r} needs a time field such as 'activity.demo_request.last_at', "
            f"but field {field_name!r} holds {kind.value}"
        )
    return f"op {op!r} works on text, but field {field_name!r} holds {kind.value}"


class Compiled(NamedTuple):
    """A compiled condition, its guard (a field that, when missing, makes it False) and its leaf form."""

    condition: Condition
    guard: str | None
    leaf: tuple[str, Test] | None = None
    """``(field, test)`` when the condition is one test of one fact."""
    group: tuple[bool, tuple[tuple[str, Test], ...]] | None = None
    """``(all, leaves)`` when the condition is ``all`` (True) or ``any`` (False) of tests of one fact each: the
    condition is ``test(facts.get(field))`` of each, and-ed or or-ed (for engines over columns)."""


def _guard_of_all(parts: Sequence[Compiled]) -> str | None:
    return next((p.guard for p in parts if p.guard is not None), None)


def _guard_of_any(parts: Sequence[Compiled]) -> str | None:
    guards = {p.guard for p in parts}
    return guards.pop() if len(guards) == 1 else None


def compile_condition(raw: object, loc: Loc, ctx: ConditionContext, rule_id: str | None) -> Compiled | None:
    """Check a ``when`` tree and compile it to a closure; None (with problems recorded) when it is broken."""
    if not isinstance(raw, dict) or not raw:
        msg = f"a condition is a mapping {{field, op, value}} or one of all/any/not, got {describe(raw)}"
        ctx.add(loc, msg, rule_id)
        return None
    broken = False
    meant: set[str] = set()  # keys that an unknown key probably meant: not reported again as missing
    for key in raw:
        if key not in _GROUPS and key not in _LEAF:
            hint = suggest(key, [k for k in _GROUPS + _LEAF if k not in raw])
            ctx.add((*loc, key), f"unknown key {key!r} in condition", rule_id, hint)
            broken = True
            if hint is not None:
                meant.add(hint)
    groups = [k for k in _GROUPS if k in raw]
    leaf_keys = [k for k in _LEAF if k in raw]
    if len(groups) > 1 or (groups and leaf_keys):
        found = ", ".join(groups + leaf_keys)
        msg = f"a condition is either all, any, not, or {{field, op, value}}; found {found} together"
        ctx.add(loc, msg, rule_id)
        return None
    if groups:
        group = groups[0]
        sub = raw[group]
        if group == "not":
            if isinstance(sub, list):
                msg = "'not' takes one condition; to negate several, put them under 'all' or 'any'"
                ctx.add((*loc, "not"), msg, rule_id)
                return None
            inner = compile_condition(sub, (*loc, "not"), ctx, rule_id)
            return None if inner is None or broken else Compiled(_not(inner.condition), None)
        if not isinstance(sub, list) or not sub:
            ctx.add((*loc, group), f"{group!r} needs a list of conditions, got {describe(sub)}", rule_id)
            return None
        parts = [compile_condition(item, (*loc, group, i), ctx, rule_id) for i, item in enumerate(sub)]
        checked = [p for p in parts if p is not None]
        if broken or len(checked) != len(parts):
            return None
        if len(checked) == 1:
            return checked[0]
        leaves = [p.leaf for p in checked if p.leaf is not None]
        guard = _guard_of_all(checked) if group == "all" else _guard_of_any(checked)
        if len(leaves) == len(checked):  # every part tests one fact: skip the per-leaf wrappers
            combined = _all_leaves(leaves) if group == "all" else _any_leaves(leaves)
            return Compiled(combined, guard, None, (group == "all", tuple(leaves)))
        conditions = [p.condition for p in checked]
        combined = _all_of(conditions) if group == "all" else _any_of(conditions)
        return Compiled(combined, guard)
    leaf = _compile_leaf(raw, loc, ctx, rule_id, meant)
    return None if broken else leaf


def _expected_kind(op: object, value: object) -> Kind:
    """The kind of field that an operator and its value suggest (to show how to declare a custom field)."""
    operator = OPERATORS.get(op) if isinstance(op, str) else None
    if operator is not None and Kind.TEXT not in operator.fields:
        return Kind.TIME if Kind.NUMBER not in operator.fields else Kind.NUMBER
    sample = value[0] if isinstance(value, list) and value else value
    if isinstance(sample, bool):
        return Kind.BOOL
    if isinstance(sample, int | float):
        return Kind.NUMBER
    return Kind.TEXT


def _compile_leaf(
    raw: dict[str, Any], loc: Loc, ctx: ConditionContext, rule_id: str | None, meant: Collection[str] = ()
) -> Compiled | None:
    if "field" not in raw or "op" not in raw:
        missing = [k for k in ("field", "op") if k not in raw and k not in meant]
        if missing:
            ctx.add(loc, f"condition is missing {' and '.join(repr(k) for k in missing)}", rule_id)
        return None
    name, op = raw["field"], raw["op"]
    checked = ctx.field(name, _expected_kind(op, raw.get("value")))
    if checked.kind is None:
        ctx.add((*loc, "field"), checked.message or f"unknown field {name!r}", rule_id, checked.suggestion)
    elif isinstance(name, str) and name in ctx.unreadable:
        ctx.add((*loc, "field"), ctx.unreadable[name], rule_id)
        return None
    operator = OPERATORS.get(op) if isinstance(op, str) else None
    if operator is None:
        hint = OP_ALIASES.get(op) if isinstance(op, str) else None
        hint = hint or suggest(op, OPERATORS)
        ctx.add((*loc, "op"), f"unknown op {op!r}", rule_id, hint)
        return None
    if checked.kind is None or not isinstance(name, str):
        return None
    kind = checked.kind
    if kind not in operator.fields:
        ctx.add((*loc, "op"), _kind_mismatch(operator.name, name, kind), rule_id)
        return None
    if operator.name == "changed" and not can_change(name):
        msg = (
            f"op 'changed' tests what an event sends (lead fields, custom fields, activity counts and times),"
            f" but field {name!r} is computed by leadflow"
        )
        ctx.add((*loc, "field"), msg, rule_id)
        return None
    if operator.takes is Takes.NOTHING:
        if "value" in raw:
            ctx.add((*loc, "value"), f"op {op!r} takes no value, got {raw['value']!r}", rule_id)
            return None
        return _timed(ctx, _read_more(ctx, _leaf(operator, name, None, kind)), name, operator.name, None)
    if "value" not in raw:
        if "value" not in meant:
            ctx.add(loc, f"op {op!r} needs a 'value' ({operator.takes.value})", rule_id)
        return None
    try:
        prepared = prepare_value(operator, name, kind, raw["value"])
    except ValueProblem as exc:
        ctx.add((*loc, "value"), exc.message, rule_id, exc.suggestion)
        return None
    return _timed(ctx, _read_more(ctx, _leaf(operator, name, prepared, kind)), name, operator.name, prepared)


def _read_more(ctx: ConditionContext, compiled: Compiled) -> Compiled:
    """``compiled``; an operator that is no test of the field's value alone (``changed``, ``within_days``) reads
    more facts than the field: the time and what the event changed are noted as read too."""
    if compiled.leaf is None:
        ctx.read.update(_READ_BEYOND)
    return compiled


_READ_BEYOND = ("now", CHANGED_FACT)


def _timed(ctx: ConditionContext, compiled: Compiled, name: str, op: str, prepared: object) -> Compiled:
    """``compiled``, noted among the context's clocks when time alone can change its outcome."""
    if _ticks(name, op):
        test = None if compiled.leaf is None else compiled.leaf[1]
        ctx.clocks.append(Clock(name, op, prepared, compiled.condition, test))
    return compiled


def _leaf(operator: Operator, name: str, prepared: object, kind: Kind) -> Compiled:
    condition, test = operator.compile(name, prepared)
    negated = _TYPED_OPS.get(operator.name)
    if test is not None and negated is not None and name.startswith("custom."):
        test = typed_test(test, kind, negated)
        condition = leaf_condition(name, test)
    return Compiled(condition, name if operator.none_is_false else None, None if test is None else (name, test))


def _measure(raw: object, depth: int = 1) -> tuple[int, int]:
    """``(depth, tests)`` of a condition tree as written (the YAML reader already bounds its nesting)."""
    if isinstance(raw, dict):
        for group in _GROUPS:
            sub = raw.get(group)
            if sub is None:
                continue
            items = sub if isinstance(sub, list) else [sub]
            measured = [_measure(item, depth + 1) for item in items]
            return max((d for d, _ in measured), default=depth), sum(n for _, n in measured)
    return depth, 1


def within_limits(raw: object, loc: Loc, ctx: ConditionContext, rule_id: str | None) -> bool:
    """Whether a rule's condition is within MAX_DEPTH and MAX_CONDITIONS (a problem is recorded when not)."""
    depth, tests = _measure(raw)
    if depth > MAX_DEPTH:
        ctx.add(loc, f"the condition is nested {depth} levels deep; the limit is {MAX_DEPTH}", rule_id)
        return False
    if tests > MAX_CONDITIONS:
        ctx.add(loc, f"the condition has {tests} tests; the limit is {MAX_CONDITIONS}", rule_id)
        return False
    return True


def raw_id(raw: object) -> str | None:
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def declared_fields(raw: object, ctx: ConditionContext) -> dict[str, Kind]:
    """The ``fields:`` declarations: ``custom.<name>: kind``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        msg = f"'fields' needs a mapping of custom fields to kinds, e.g. {{custom.plan: text}}, got {describe(raw)}"
        ctx.add(("fields",), msg)
        return {}
    if len(raw) > MAX_FIELDS:
        ctx.add(("fields",), f"'fields' declares {len(raw)} fields; the limit is {MAX_FIELDS}")
        return {}
    declared: dict[str, Kind] = {}
    for name, kind_raw in raw.items():
        loc: Loc = ("fields", name)
        if not name.startswith("custom.") or len(name) == len("custom.") or len(name) > len("custom.") + 100:
            if name in FIXED_FIELDS or activity_part(name) is not None:
                ctx.add(loc, f"{name!r} is a standard field with a fixed kind; only custom.<name> fields are declared")
            else:
                hint = f"custom.{name}" if name and "." not in name else None
                msg = f"declared fields are org-specific fields written 'custom.<name>', got {name!r}"
                ctx.add(loc, msg, None, hint)
            continue
        kind = KINDS.get(kind_raw) if isinstance(kind_raw, str) else None
        if kind is None:
            word = str(kind_raw).casefold()
            hint = _KIND_ALIASES.get(word) or suggest(kind_raw, KINDS)
            kinds = ", ".join(KINDS)
            ctx.add(loc, f"field {name!r} has an unknown kind {kind_raw!r}; kinds are: {kinds}", None, hint)
            continue
        declared[name] = kind
    return declared
