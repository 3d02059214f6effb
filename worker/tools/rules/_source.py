"""A validated ruleset together with its conditions as trees of compiled tests, and the line of each rule.

The compiled :class:`~worker.rules.Ruleset` keeps only closures; the tools also need the shape of each condition.
Every test ``{field, op, value}`` is compiled on its own through the real compiler (so every operator the
language knows works here, including ones the tools have never heard of), inside a copy of the ruleset's top
level (so declarations such as its activity types or fields apply).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.conditions import Condition, Loc, Source, read_yaml
from worker.exceptions import Problem, RulesetError
from worker.rules import OPERATORS, QualificationRule, Ruleset, ScoringRule, compile_ruleset, parse_ruleset
from worker.tools.rules._symbolic import All, AnyOf, Leaf, Node, Not

__all__ = ["ParsedRuleset", "RuleView", "parse_for_tools"]

_SECTIONS = ("scoring", "qualification")
_CHUNK = 100  # tests compiled per throw-away ruleset: well under any rule-count limit


@dataclass(frozen=True, slots=True)
class RuleView:
    """One rule as the tools see it: where it is, its compiled form, and its condition tree (None: no ``when``)."""

    section: str
    index: int
    id: str
    line: int | None
    rule: ScoringRule | QualificationRule
    when: Node | None


@dataclass(frozen=True, slots=True)
class ParsedRuleset:
    """A valid ruleset and its rules in file order."""

    path: str
    ruleset: Ruleset
    scoring: tuple[RuleView, ...]
    qualification: tuple[RuleView, ...]


def parse_for_tools(text: str, path: str) -> ParsedRuleset:
    """Validate ``text`` (raises :class:`RulesetError` like the worker would) and build the rule views."""
    ruleset = parse_ruleset(text, path)
    src = Source(path)
    data = read_yaml(text, src)
    if not isinstance(data, dict):  # parse_ruleset accepted it: cannot happen, but keep the error meaningful
        raise RulesetError([Problem("the ruleset could not be read again for analysis", path)])
    raw_leaves: list[tuple[Loc, dict[str, Any]]] = []
    for section in _SECTIONS:
        for index, item in enumerate(_list(data.get(section))):
            if isinstance(item, dict) and item.get("when") is not None:
                _collect(item["when"], (section, index, "when"), raw_leaves)
    conditions = _compile_leaves(data, [raw for _, raw in raw_leaves], ruleset.default_status, path)
    leaves = {
        loc: _leaf(raw, condition, src.line(loc)) for (loc, raw), condition in zip(raw_leaves, conditions, strict=True)
    }
    views: dict[str, list[RuleView]] = {section: [] for section in _SECTIONS}
    compiled: dict[str, Sequence[ScoringRule | QualificationRule]] = {
        "scoring": ruleset.scoring_rules,
        "qualification": ruleset.qualification_rules,
    }
    for section in _SECTIONS:
        for index, item in enumerate(_list(data.get(section))):
            rule = compiled[section][index]
            when = item.get("when") if isinstance(item, dict) else None
            loc: Loc = (section, index, "when")
            node = None if when is None else _tree(when, loc, leaves)
            views[section].append(RuleView(section, index, rule.id, src.line((section, index)), rule, node))
    return ParsedRuleset(path, ruleset, tuple(views["scoring"]), tuple(views["qualification"]))


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _collect(raw: object, loc: Loc, out: list[tuple[Loc, dict[str, Any]]]) -> None:
    if not isinstance(raw, dict):
        return
    for group in ("all", "any"):
        if group in raw:
            for i, part in enumerate(_list(raw[group])):
                _collect(part, (*loc, group, i), out)
            return
    if "not" in raw:
        _collect(raw["not"], (*loc, "not"), out)
        return
    out.append((loc, raw))


def _tree(raw: Any, loc: Loc, leaves: Mapping[Loc, Leaf | None]) -> Node | None:
    """The condition tree at ``loc``; None when a part of it could not be compiled on its own."""
    for group, make in (("all", All), ("any", AnyOf)):
        if group in raw:
            parts = [_tree(part, (*loc, group, i), leaves) for i, part in enumerate(raw[group])]
            if any(p is None for p in parts):
                return None
            return make(tuple(p for p in parts if p is not None))
    if "not" in raw:
        inner = _tree(raw["not"], (*loc, "not"), leaves)
        return None if inner is None else Not(inner)
    return leaves.get(loc)


def _leaf(raw: dict[str, Any], condition: Condition | None, line: int | None) -> Leaf | None:
    if condition is None:
        return None
    op = str(raw["op"])
    operator = OPERATORS.get(op)
    pure = getattr(operator, "test", None) is not None  # a test of one value reads only its own field
    return Leaf(str(raw["field"]), op, raw.get("value"), condition, pure, line)


def _compile_leaves(
    data: Mapping[str, Any], raws: Sequence[dict[str, Any]], status: str, path: str
) -> list[Condition | None]:
    """Each test compiled alone, as the ``when`` of a qualification rule in a copy of the ruleset."""
    top = {k: v for k, v in data.items() if k not in _SECTIONS}
    out: list[Condition | None] = []
    for start in range(0, len(raws), _CHUNK):
        chunk = raws[start : start + _CHUNK]
        compiled = _compile_chunk(top, chunk, status, path)
        if compiled is None:  # one test does not compile alone: find it, keep the others
            out.extend(_one(top, raw, status, path) for raw in chunk)
        else:
            out.extend(compiled)
    return out


def _compile_chunk(
    top: Mapping[str, Any], raws: Sequence[dict[str, Any]], status: str, path: str
) -> list[Condition | None] | None:
    rules = [{"id": f"tools-leaf-{i}", "when": raw, "status": status} for i, raw in enumerate(raws)]
    ruleset = compile_ruleset({**top, "qualification": rules}, "", Source(path))
    if ruleset is None:
        return None
    return [_guarded(rule) for rule in ruleset.qualification_rules]


def _one(top: Mapping[str, Any], raw: dict[str, Any], status: str, path: str) -> Condition | None:
    compiled = _compile_chunk(top, [raw], status, path)
    return None if compiled is None else compiled[0]


def _guarded(rule: QualificationRule) -> Condition:
    """The rule's condition with its guard applied, exactly as :meth:`Ruleset.evaluate` checks it."""
    guard, condition = rule.guard, rule.condition
    if guard is None:
        return condition

    def guarded(facts: Mapping[str, object]) -> bool:
        return facts.get(guard) is not None and condition(facts)

    return guarded
