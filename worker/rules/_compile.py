"""Validate ruleset data and compile it into closures, collecting every problem on the way."""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from worker.rules._derived import derived_fact
from worker.rules._fields import (
    FIXED_FIELDS,
    KINDS,
    ROUTING_FIELDS,
    FieldCheck,
    Kind,
    activity_part,
    can_change,
    check_field,
)
from worker.rules._limits import MAX_CONDITIONS, MAX_DEPTH, MAX_FIELDS, MAX_RULES
from worker.rules._loader import Loc, Source
from worker.rules._model import (
    Condition,
    ConversionDefaults,
    Decay,
    Facts,
    OpportunitySpec,
    QualificationRule,
    Ruleset,
    ScoringRule,
    StageDef,
    StatusDef,
)
from worker.rules._ops import (
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
from worker.rules._schema import (
    PATTERN_HINTS,
    AmountDoc,
    ConversionDoc,
    DecayDoc,
    OpportunityDoc,
    QualificationDoc,
    RulesetDoc,
    ScoringDoc,
    StageDoc,
    StatusDoc,
)
from worker.rules._template import FactTemplate, compile_name

__all__ = [
    "DEFAULT_STAGES",
    "DEFAULT_STATUSES",
    "FORECAST_CATEGORIES",
    "Compiled",
    "compile_condition",
    "compile_ruleset",
]

DEFAULT_STATUSES: tuple[StatusDef, ...] = (
    StatusDef("Open"),
    StatusDef("Contacted"),
    StatusDef("Qualified", converted=True),
    StatusDef("Unqualified", disqualified=True),
)
DEFAULT_STAGES: tuple[StageDef, ...] = (
    StageDef("Prospecting", 10, "Pipeline"),
    StageDef("Qualification", 10, "Pipeline"),
    StageDef("Needs Analysis", 20, "Pipeline"),
    StageDef("Value Proposition", 50, "Pipeline"),
    StageDef("Id. Decision Makers", 60, "Pipeline"),
    StageDef("Perception Analysis", 70, "Pipeline"),
    StageDef("Proposal/Price Quote", 75, "Pipeline"),
    StageDef("Negotiation/Review", 90, "Pipeline"),
    StageDef("Closed Won", 100, "Closed", closed=True, won=True),
    StageDef("Closed Lost", 0, "Omitted", closed=True),
)
FORECAST_CATEGORIES = ("Pipeline", "BestCase", "Forecast", "MostLikely", "Omitted", "Closed")

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


def _suggest(word: object, candidates: Collection[str], cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word`` (an exact match ignoring case first), or None."""
    if not isinstance(word, str):
        return None
    folded = {c.casefold(): c for c in candidates}
    if word.casefold() in folded:
        return folded[word.casefold()]
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return close[0] if close else None


def _describe(value: object) -> str:
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
        return f"{plain[kind]}, got {_describe(value)}"
    if kind == "string_pattern_mismatch":
        return f"needs {PATTERN_HINTS.get(key, 'a different text')}, got {value!r}"
    msg = str(err["msg"])
    return f"{msg[:1].lower()}{msg[1:]}, got {_describe(value)}"


@dataclass(slots=True)
class _Context:
    """What the compiler knows while it walks a ruleset."""

    src: Source
    activity_types: frozenset[str] = frozenset()
    custom: Mapping[str, Kind] = field(default_factory=dict)
    """The declared ``custom.*`` fields and their kinds."""
    read: set[str] = field(default_factory=set)
    """The fields read by the rule being compiled."""
    derived: dict[str, Callable[[Facts], object]] = field(default_factory=dict)
    """The derived facts the ruleset reads, by name."""
    statuses: Mapping[str, StatusDef] = field(default_factory=dict)
    stages: dict[str, StageDef] = field(default_factory=dict)
    conversion: ConversionDefaults | None = None
    decay: Decay | None = None
    """The ruleset's default decay for engagement scoring rules."""
    in_scoring: bool = False
    in_routing: bool = False
    """Compiling routing rules: the account facts (``ROUTING_FIELDS``) can be read."""

    def add(self, loc: Loc, message: str, rule_id: str | None = None, suggestion: str | None = None) -> None:
        self.src.add(loc, message, rule_id, suggestion)

    def field(self, name: object, expect: Kind = Kind.TEXT) -> FieldCheck:
        """Check a field a rule reads, and remember it (for decay, and derived facts to compute)."""
        if isinstance(name, str) and name in ROUTING_FIELDS:
            if not self.in_routing:
                msg = f"field {name!r} is only known to routing rules (it comes from lead-to-account matching)"
                return FieldCheck(None, msg)
            self.read.add(name)
            return FieldCheck(ROUTING_FIELDS[name])
        checked = check_field(name, self.activity_types, self.custom, expect)
        if checked.kind is None and self.in_routing and isinstance(name, str):
            close = difflib.get_close_matches(name, list(ROUTING_FIELDS), n=1, cutoff=0.8)
            if close:
                return FieldCheck(None, f"unknown field {name!r}", close[0])
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
            self.add(loc, f"{what} must be a mapping of keys, got {_describe(raw)}", rule_id)
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
            hint = _suggest(key, unused) or _suggest(key, list(model.model_fields))
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

    def stage(self, name: str, loc: Loc, rule_id: str | None = None) -> StageDef | None:
        found = self.stages.get(name)
        if found is None:
            known = ", ".join(self.stages)
            hint = _suggest(name, self.stages)
            self.add(loc, f"unknown stage {name!r}; stages are: {known}", rule_id, hint)
        return found

    def template(self, template: str, loc: Loc, rule_id: str | None = None) -> None:
        compiled = FactTemplate(template)
        if not compiled.is_valid():
            msg = f"name template {template!r} has a '$' not followed by a field name (write '$$' for a '$')"
            self.add(loc, msg, rule_id)
            return
        for ident in compiled.get_identifiers():
            checked = self.field(ident)
            if checked.kind is None:
                self.add(loc, f"name template {template!r}: {checked.message}", rule_id, checked.suggestion)


# --- conditions -------------------------------------------------------------------------------------------------


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


def _guard_of_all(parts: Sequence[Compiled]) -> str | None:
    return next((p.guard for p in parts if p.guard is not None), None)


def _guard_of_any(parts: Sequence[Compiled]) -> str | None:
    guards = {p.guard for p in parts}
    return guards.pop() if len(guards) == 1 else None


def compile_condition(raw: object, loc: Loc, ctx: _Context, rule_id: str | None) -> Compiled | None:
    """Check a ``when`` tree and compile it to a closure; None (with problems recorded) when it is broken."""
    if not isinstance(raw, dict) or not raw:
        msg = f"a condition is a mapping {{field, op, value}} or one of all/any/not, got {_describe(raw)}"
        ctx.add(loc, msg, rule_id)
        return None
    broken = False
    meant: set[str] = set()  # keys that an unknown key probably meant: not reported again as missing
    for key in raw:
        if key not in _GROUPS and key not in _LEAF:
            hint = _suggest(key, [k for k in _GROUPS + _LEAF if k not in raw])
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
            ctx.add((*loc, group), f"{group!r} needs a list of conditions, got {_describe(sub)}", rule_id)
            return None
        parts = [compile_condition(item, (*loc, group, i), ctx, rule_id) for i, item in enumerate(sub)]
        checked = [p for p in parts if p is not None]
        if broken or len(checked) != len(parts):
            return None
        if len(checked) == 1:
            return checked[0]
        leaves = [p.leaf for p in checked if p.leaf is not None]
        if len(leaves) == len(checked):  # every part tests one fact: skip the per-leaf wrappers
            combined = _all_leaves(leaves) if group == "all" else _any_leaves(leaves)
        else:
            conditions = [p.condition for p in checked]
            combined = _all_of(conditions) if group == "all" else _any_of(conditions)
        return Compiled(combined, _guard_of_all(checked) if group == "all" else _guard_of_any(checked))
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
    raw: dict[str, Any], loc: Loc, ctx: _Context, rule_id: str | None, meant: Collection[str] = ()
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
    elif ctx.in_scoring and name == "points":
        msg = "scoring rules cannot read 'points' (it is being added up); qualification rules can"
        ctx.add((*loc, "field"), msg, rule_id)
        return None
    operator = OPERATORS.get(op) if isinstance(op, str) else None
    if operator is None:
        hint = OP_ALIASES.get(op) if isinstance(op, str) else None
        hint = hint or _suggest(op, OPERATORS)
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
        return _leaf(operator, name, None, kind)
    if "value" not in raw:
        if "value" not in meant:
            ctx.add(loc, f"op {op!r} needs a 'value' ({operator.takes.value})", rule_id)
        return None
    try:
        prepared = prepare_value(operator, name, kind, raw["value"])
    except ValueProblem as exc:
        ctx.add((*loc, "value"), exc.message, rule_id, exc.suggestion)
        return None
    return _leaf(operator, name, prepared, kind)


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


def _within_limits(raw: object, loc: Loc, ctx: _Context, rule_id: str | None) -> bool:
    """Whether a rule's condition is within MAX_DEPTH and MAX_CONDITIONS (a problem is recorded when not)."""
    depth, tests = _measure(raw)
    if depth > MAX_DEPTH:
        ctx.add(loc, f"the condition is nested {depth} levels deep; the limit is {MAX_DEPTH}", rule_id)
        return False
    if tests > MAX_CONDITIONS:
        ctx.add(loc, f"the condition has {tests} tests; the limit is {MAX_CONDITIONS}", rule_id)
        return False
    return True


# --- statuses, stages, conversion ------------------------------------------------------------------------------


def _statuses(raw: list[Any] | None, ctx: _Context) -> tuple[Mapping[str, StatusDef], str]:
    if raw is None:
        return {s.name: s for s in DEFAULT_STATUSES}, DEFAULT_STATUSES[0].name
    if not raw:
        ctx.add(("statuses",), "needs at least one status (or leave 'statuses' out for the standard ones)")
        return {s.name: s for s in DEFAULT_STATUSES}, DEFAULT_STATUSES[0].name
    statuses: dict[str, StatusDef] = {}
    default: str | None = None
    for i, item in enumerate(raw):
        loc: Loc = ("statuses", i)
        doc, _ = ctx.validate(StatusDoc, item, loc, "a status")
        if doc is None:
            continue
        if doc.name in statuses:
            ctx.add((*loc, "name"), f"status {doc.name!r} is listed twice")
            continue
        if doc.converted and doc.disqualified:
            ctx.add(loc, f"status {doc.name!r} cannot be both converted and disqualified")
        if doc.default:
            if default is not None:
                ctx.add((*loc, "default"), f"only one status can be the default; {default!r} already is")
            else:
                default = doc.name
        statuses[doc.name] = StatusDef(doc.name, doc.converted, doc.disqualified)
    if not statuses:
        return {s.name: s for s in DEFAULT_STATUSES}, DEFAULT_STATUSES[0].name
    return statuses, default or next(iter(statuses))


def _stages(raw: list[Any], ctx: _Context) -> dict[str, StageDef]:
    stages = {s.name: s for s in DEFAULT_STAGES}
    given: set[str] = set()
    for i, item in enumerate(raw):
        loc: Loc = ("stages", i)
        doc, bad = ctx.validate(StageDoc, item, loc, "a stage")
        if doc is None:
            continue
        if doc.name in given:
            ctx.add((*loc, "name"), f"stage {doc.name!r} is listed twice")
            continue
        given.add(doc.name)
        base = stages.get(doc.name)
        missing = [k for k in ("probability", "forecast_category") if getattr(doc, k) is None and k not in bad]
        if base is None and missing:
            keys = " and ".join(repr(k) for k in missing)
            ctx.add(loc, f"new stage {doc.name!r} needs {keys}")
            continue
        category = doc.forecast_category if doc.forecast_category is not None else base and base.forecast_category
        if not isinstance(category, str) or not _forecast_category(category, (*loc, "forecast_category"), ctx):
            continue
        closed = doc.closed if doc.closed is not None else bool(base and base.closed)
        won = doc.won if doc.won is not None else bool(base and base.won)
        if won and not closed:
            ctx.add(loc, f"stage {doc.name!r} is won but not closed; a won stage must be closed: true")
        probability = doc.probability if doc.probability is not None else (base.probability if base else 0)
        stages[doc.name] = StageDef(doc.name, probability, category, closed, won)
    return stages


def _forecast_category(category: str, loc: Loc, ctx: _Context, rule_id: str | None = None) -> bool:
    """Whether ``category`` is a forecast category (a problem is recorded when not)."""
    if category in FORECAST_CATEGORIES:
        return True
    hint = "Forecast" if category.casefold() == "commit" else _suggest(category, FORECAST_CATEGORIES)
    allowed = ", ".join(FORECAST_CATEGORIES)
    ctx.add(loc, f"unknown forecast category {category!r}; use one of {allowed}", rule_id, hint)
    return False


def _declared_fields(raw: object, ctx: _Context) -> dict[str, Kind]:
    """The ``fields:`` declarations: ``custom.<name>: kind``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        msg = f"'fields' needs a mapping of custom fields to kinds, e.g. {{custom.plan: text}}, got {_describe(raw)}"
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
            hint = _KIND_ALIASES.get(word) or _suggest(kind_raw, KINDS)
            kinds = ", ".join(KINDS)
            ctx.add(loc, f"field {name!r} has an unknown kind {kind_raw!r}; kinds are: {kinds}", None, hint)
            continue
        declared[name] = kind
    return declared


def _conversion(raw: object, ctx: _Context) -> ConversionDefaults:
    doc: ConversionDoc | None = ConversionDoc()
    if raw is not None:
        doc, _ = ctx.validate(ConversionDoc, raw, ("conversion",), "'conversion'", placeholders={})
    doc = doc or ConversionDoc()
    stage = ctx.stage(doc.stage, ("conversion", "stage")) or ctx.stages["Prospecting"]
    ctx.template(doc.name, ("conversion", "name"))
    return ConversionDefaults(stage, doc.close_in_days, doc.amount, doc.queue, doc.name)


# --- rules ------------------------------------------------------------------------------------------------------


def _raw_id(raw: object) -> str | None:
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def _scoring_rule(raw: object, index: int, ctx: _Context) -> ScoringRule | None:
    loc: Loc = ("scoring", index)
    rule_id = _raw_id(raw)
    placeholders = {"id": f"scoring-{index}", "points": 0.0}
    doc, bad = ctx.validate(ScoringDoc, raw, loc, "scoring rule", rule_id, placeholders)
    if doc is None:
        return None
    ctx.in_scoring = True
    ctx.read = set()
    compiled: Compiled | None = None
    broken = bool(bad)
    if doc.when is not None:
        if _within_limits(doc.when, (*loc, "when"), ctx, rule_id):
            compiled = compile_condition(doc.when, (*loc, "when"), ctx, rule_id)
        broken = broken or compiled is None
    elif isinstance(raw, dict) and "when" in raw:
        ctx.add((*loc, "when"), "'when' is empty; give a condition or leave 'when' out", rule_id)
        broken = True
    ctx.in_scoring = False
    per: str | None = None
    if doc.per is not None:
        checked = ctx.field(doc.per, Kind.NUMBER)
        if checked.kind is None:
            ctx.add((*loc, "per"), checked.message or "unknown field", rule_id, checked.suggestion)
            broken = True
        elif checked.kind not in (Kind.NUMBER, Kind.ANY) or doc.per == "points":
            msg = f"'per' needs a count or another number, but field {doc.per!r} holds {checked.kind.value}"
            if doc.per == "points":
                msg = "'per' cannot use 'points' (it is being added up)"
            ctx.add((*loc, "per"), msg, rule_id)
            broken = True
        else:
            per = str(doc.per)
    elif doc.when is None and not bad & {"when", "per"}:
        ctx.add(loc, "a scoring rule needs 'when', 'per' or both", rule_id)
        broken = True
    if doc.max is not None and doc.per is None and "per" not in bad:
        ctx.add((*loc, "max"), "'max' only limits rules with 'per'; for a fixed rule set 'points'", rule_id)
        broken = True
    decayed = _rule_decay(doc.decay, (*loc, "decay"), ctx, rule_id)
    if broken or decayed is None:
        return None
    decay, decay_from = decayed
    condition = guard = leaf = None
    if compiled is not None:
        condition, guard = compiled.condition, compiled.guard
        leaf = compiled.leaf if compiled.leaf is not None and compiled.leaf[0] == compiled.guard else None
    return ScoringRule(doc.id, doc.points, condition, per, doc.max, doc.description, guard, leaf, decay, decay_from)


def _engagement_times(read: Collection[str]) -> tuple[str, ...]:
    """The time facts of the activity counts among ``read``: what a decaying rule's age is measured from."""
    times: set[str] = set()
    for name in read:
        if name == "activity.total":
            times.add("last_activity_at")
            continue
        part = activity_part(name)
        if part is not None and part[1] in ("count", "count_in_days"):
            times.add(f"activity.{part[0]}.last_at")
    return tuple(sorted(times))


def _decay_doc(raw: object, loc: Loc, ctx: _Context, rule_id: str | None) -> Decay | bool:
    """A ``decay:`` value: a Decay, False for ``decay: false``; True (with a problem recorded) when broken."""
    if raw is False:
        return False
    if not isinstance(raw, dict):
        msg = f"'decay' needs a mapping {{percent, days}} (e.g. {{percent: 50, days: 30}}) or false, got {raw!r}"
        ctx.add(loc, msg, rule_id)
        return True
    doc, bad = ctx.validate(DecayDoc, raw, loc, "'decay'", rule_id)
    if doc is None or bad:
        return True
    return Decay(doc.percent, doc.days)


def _rule_decay(
    raw: object, loc: Loc, ctx: _Context, rule_id: str | None
) -> tuple[Decay | None, tuple[str, ...]] | None:
    """The rule's decay (its own, or the ruleset's for engagement rules) and the times it ages from.

    None when the rule's ``decay`` is broken (a problem was recorded).
    """
    times = _engagement_times(ctx.read)
    if raw is None:
        return (ctx.decay if times else None), times
    decay = _decay_doc(raw, loc, ctx, rule_id)
    if decay is True:
        return None
    if decay is False:
        return None, ()
    if not times:
        msg = (
            "the rule reads no activity count, so there is nothing to decay (decay applies to rules on"
            " activity.<type>.count, activity.<type>.count_in_days(N) or activity.total)"
        )
        ctx.add(loc, msg, rule_id)
        return None
    return decay, times


def _amount(
    raw: object, loc: Loc, ctx: _Context, rule_id: str | None, default: float | None
) -> Callable[[Facts], float | None] | None:
    if raw is None or (raw.__class__ in _NUMBER and raw >= 0):
        fixed = None if raw is None else float(raw)

        def fixed_amount(facts: Facts) -> float | None:
            return fixed

        return fixed_amount
    if not isinstance(raw, dict):
        msg = f"'amount' needs a number (0 or more) or a mapping {{field, multiply, min, max, round}}, got {raw!r}"
        ctx.add(loc, msg, rule_id)
        return None
    doc, bad = ctx.validate(AmountDoc, raw, loc, "'amount'", rule_id)
    if doc is None or bad:
        return None
    checked = ctx.field(doc.field, Kind.NUMBER)
    if checked.kind is None:
        ctx.add((*loc, "field"), checked.message or "unknown field", rule_id, checked.suggestion)
        return None
    if checked.kind not in (Kind.NUMBER, Kind.ANY):
        msg = f"'amount' needs a numeric field, but field {doc.field!r} holds {checked.kind.value}"
        ctx.add((*loc, "field"), msg, rule_id)
        return None
    low, high = doc.min, doc.max
    if low is not None and high is not None and low > high:
        ctx.add(loc, f"'amount' has min {low:g} above max {high:g}", rule_id)
        return None
    name, multiply, digits = doc.field, doc.multiply, doc.round

    def amount(facts: Facts) -> float | None:
        x: Any = facts.get(name)
        if x.__class__ not in _NUMBER:
            return default
        value: float = x * multiply
        if low is not None and value < low:
            value = low
        if high is not None and value > high:
            value = high
        return round(value, digits)

    return amount


def _opportunity(raw: object, loc: Loc, ctx: _Context, rule_id: str | None) -> OpportunitySpec | None:
    conversion = ctx.conversion
    if conversion is None:
        return None
    doc: OpportunityDoc | None = OpportunityDoc()
    bad: set[str] = set()
    if raw is not None:
        doc, bad = ctx.validate(OpportunityDoc, raw, loc, "'opportunity'", rule_id, placeholders={})
    if doc is None:
        return None
    broken = bool(bad)
    stage = conversion.stage
    if doc.stage is not None:
        found = ctx.stage(doc.stage, (*loc, "stage"), rule_id)
        broken = broken or found is None
        stage = found or stage
    if doc.owner_id is not None and doc.queue is not None:
        ctx.add((*loc, "owner_id"), "give either 'owner_id' or 'queue', not both", rule_id)
        broken = True
    if doc.forecast_category is not None and not _forecast_category(
        doc.forecast_category, (*loc, "forecast_category"), ctx, rule_id
    ):
        broken = True
    if stage.closed and (doc.probability is not None or doc.forecast_category is not None):
        key = "probability" if doc.probability is not None else "forecast_category"
        msg = f"stage {stage.name!r} is closed: its probability and forecast category cannot be overridden"
        ctx.add((*loc, key), msg, rule_id)
        broken = True
    given = raw if isinstance(raw, dict) else {}
    amount_raw = doc.amount if "amount" in given else conversion.amount
    amount = _amount(amount_raw, (*loc, "amount"), ctx, rule_id, conversion.amount)
    template = conversion.name_template
    if doc.name is not None:
        template = doc.name
        before = len(ctx.src.problems)
        ctx.template(template, (*loc, "name"), rule_id)
        broken = broken or len(ctx.src.problems) != before
    if broken or amount is None:
        return None
    close_in_days = conversion.close_in_days if doc.close_in_days is None else doc.close_in_days
    return OpportunitySpec(
        stage=stage,
        close_in_days=close_in_days,
        owner_id=doc.owner_id,
        queue=doc.queue,
        name_template=template,
        amount_of=amount,
        name_of=compile_name(template),
        probability=doc.probability,
        forecast_category=doc.forecast_category,
    )


def _qualification_rule(raw: object, index: int, ctx: _Context, default_status: str) -> QualificationRule | None:
    loc: Loc = ("qualification", index)
    rule_id = _raw_id(raw)
    placeholders = {"id": f"qualification-{index}", "status": default_status, "when": None}
    doc, bad = ctx.validate(QualificationDoc, raw, loc, "qualification rule", rule_id, placeholders)
    if doc is None:
        return None
    broken = bool(bad)
    compiled: Compiled | None = None
    if doc.when is not None:
        if _within_limits(doc.when, (*loc, "when"), ctx, rule_id):
            compiled = compile_condition(doc.when, (*loc, "when"), ctx, rule_id)
    elif "when" not in bad:
        ctx.add((*loc, "when"), "'when' is empty; a qualification rule needs a condition", rule_id)
    status = ctx.statuses.get(doc.status)
    if status is None and "status" not in bad:
        known = ", ".join(ctx.statuses)
        hint = _suggest(doc.status, ctx.statuses)
        ctx.add((*loc, "status"), f"unknown status {doc.status!r}; statuses are: {known}", rule_id, hint)
        broken = True
    if doc.convert and status is not None and not status.converted:
        converted = [s.name for s in ctx.statuses.values() if s.converted]
        msg = f"rule converts the lead but status {doc.status!r} is not a converted status"
        if not converted:
            msg += "; mark a status with 'converted: true'"
        ctx.add((*loc, "status"), msg, rule_id, converted[0] if converted else None)
        broken = True
    opportunity: OpportunitySpec | None = None
    if doc.convert:
        opportunity = _opportunity(doc.opportunity, (*loc, "opportunity"), ctx, rule_id)
        broken = broken or opportunity is None
    elif doc.opportunity is not None:
        ctx.add((*loc, "opportunity"), "'opportunity' is only used with 'convert: true'", rule_id, "convert")
        broken = True
    if broken or compiled is None:
        return None
    return QualificationRule(
        doc.id, doc.status, doc.convert, opportunity, compiled.condition, doc.description, compiled.guard
    )


# --- the whole ruleset ------------------------------------------------------------------------------------------


def compile_ruleset(data: object, text: str, src: Source) -> Ruleset | None:
    """Validate and compile parsed ruleset data; None when any problem was recorded in ``src``."""
    ctx = _Context(src)
    if not isinstance(data, dict):
        msg = f"the top level must be a mapping with keys such as 'version' and 'scoring', got {_describe(data)}"
        ctx.add((), msg)
        return None
    doc, _ = ctx.validate(RulesetDoc, data, (), "the ruleset", placeholders={"version": "0"})
    if doc is None:
        return None
    rules = len(doc.scoring) + len(doc.qualification)
    if rules > MAX_RULES:
        ctx.add((), f"the ruleset has {rules} rules (scoring and qualification); the limit is {MAX_RULES}")
        return None
    ctx.activity_types = frozenset(doc.activity_types)
    ctx.custom = _declared_fields(doc.fields, ctx)
    if doc.decay is not None:
        decay = _decay_doc(doc.decay, ("decay",), ctx, None)
        ctx.decay = decay if isinstance(decay, Decay) else None
    statuses, default_status = _statuses(doc.statuses, ctx)
    ctx.statuses = statuses
    ctx.stages = _stages(doc.stages, ctx)
    ctx.conversion = _conversion(doc.conversion, ctx)
    seen: dict[str, int | None] = {}
    scoring: list[ScoringRule] = []
    qualification: list[QualificationRule] = []
    for section, items in (("scoring", doc.scoring), ("qualification", doc.qualification)):
        for i, item in enumerate(items):
            rule_id = _raw_id(item)
            if rule_id is not None:
                where = src.line((section, i, "id"))
                if rule_id in seen:
                    first = seen[rule_id]
                    at = f" (first used on line {first})" if first is not None else ""
                    ctx.add((section, i, "id"), f"rule id {rule_id!r} is used twice{at}", rule_id)
                seen.setdefault(rule_id, where)
            if section == "scoring":
                scored = _scoring_rule(item, i, ctx)
                if scored is not None:
                    scoring.append(scored)
            else:
                qualified = _qualification_rule(item, i, ctx, default_status)
                if qualified is not None:
                    qualification.append(qualified)
    routing = None
    if doc.routing is not None:
        # imported here: worker.routing builds on this module (conditions, context), so it cannot be imported above
        from worker.routing._compile import compile_routing

        routing = compile_routing(doc.routing, ctx)
    if src.problems:
        return None
    name = doc.name or ("ruleset" if src.path.startswith("<") else PurePath(src.path).stem)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return Ruleset(
        version=f"{doc.version}+{digest}",
        name=name,
        default_status=default_status,
        statuses=MappingProxyType(dict(statuses)),
        stages=MappingProxyType(dict(ctx.stages)),
        conversion=ctx.conversion,
        scoring_rules=tuple(scoring),
        qualification_rules=tuple(qualification),
        derived_facts=tuple(ctx.derived.items()),
        routing=routing,
    )
