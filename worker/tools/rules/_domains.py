"""What each fact can hold at all (the lead event contract and :func:`worker.lead.state.build_facts`), and the range
of ``points`` a ruleset's scoring rules can add up to."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

from worker.conditions import FIXED_FIELDS, Kind
from worker.lead.state import build_facts, new_state
from worker.rules import ScoringRule
from worker.tools.rules._symbolic import NOW, Domain

__all__ = ["base_facts", "domains", "points_range"]

_KINDS = {
    Kind.TEXT: frozenset({"null", "text"}),
    Kind.NUMBER: frozenset({"null", "number"}),
    Kind.TIME: frozenset({"null", "number"}),
    Kind.BOOL: frozenset({"null", "bool"}),
}
_COUNT = re.compile(r"activity\.[a-z][a-z0-9_]*\.count")
_LAST_AT = re.compile(r"activity\.[a-z][a-z0-9_]*\.last_at")


def _fixed(name: str) -> Domain | None:
    """The domain of the facts whose values the event contract and the state bound."""
    if name == "points":
        return Domain(frozenset({"number"}))
    if name == "score":
        return Domain(frozenset({"number"}), 0.0, 1.0, note="the score is a probability, from 0 to 1")
    if name == "converted":
        return Domain(frozenset({"bool"}))
    if name == "now":
        return Domain(frozenset({"number"}))
    if name == "activity.total":
        return Domain(frozenset({"number"}), 0.0, integer=True, note="activity.total is a whole number, 0 or more")
    if name == "event.type":
        texts = frozenset({"lead.upserted", "lead.activity"})
        return Domain(frozenset({"text"}), texts=texts, note="event.type is lead.upserted or lead.activity")
    if name == "number_of_employees":
        return Domain(_KINDS[Kind.NUMBER], 0.0, integer=True, note="number_of_employees is a whole number, 0 or more")
    if name in ("annual_revenue", "days_since_last_activity"):
        return Domain(_KINDS[Kind.NUMBER], 0.0, note=f"{name} is 0 or more when set")
    if _COUNT.fullmatch(name):
        note = "an activity count is 1 or more when set, and missing when the lead never had that activity"
        return Domain(_KINDS[Kind.NUMBER], 1.0, integer=True, note=note)
    if _LAST_AT.fullmatch(name):
        return Domain(_KINDS[Kind.TIME])
    kind = FIXED_FIELDS.get(name)
    return None if kind is None or kind not in _KINDS else Domain(_KINDS[kind])


def domains(points: tuple[float, float] | None = None) -> Callable[[str], Domain]:
    """The domain of every fact; ``points`` narrows the points to the range the scoring rules allow."""
    cache: dict[str, Domain] = {}

    def fact_domain(name: str) -> Domain:
        found = cache.get(name)
        if found is None:
            found = _fixed(name) or Domain()  # anything else (custom fields, new facts): anything at all
            if name == "points" and points is not None:
                low, high = points
                note = f"the scoring rules add up to points between {low:g} and {high:g}"
                found = Domain(frozenset({"number"}), low, high, note=note)
            cache[name] = found
        return found

    return fact_domain


def base_facts() -> dict[str, object]:
    """A blank lead at :data:`~worker.tools.rules._symbolic.NOW`, as the core would see it."""
    facts = build_facts(new_state("rules-tools", NOW), NOW, None)
    facts.update({"score": 0.5, "event.type": "lead.upserted"})
    return facts


def points_range(rules: Iterable[tuple[ScoringRule, bool]]) -> tuple[float, float, bool]:
    """The lowest and highest total of scoring rules given with whether each can match at all, and whether
    every total is a whole number (then :meth:`Ruleset.evaluate` does not round it)."""
    per_domain = domains()
    low = high = 0.0
    whole = True
    for rule, can_match in rules:
        whole = whole and float(rule.points).is_integer() and (rule.max is None or float(rule.max).is_integer())
        whole = whole and (rule.per is None or per_domain(rule.per).integer)
        whole = whole and getattr(rule, "decay", None) is None  # decayed points are fractions
        if can_match:
            least, most = _contribution(rule, per_domain)
            low += least
            high += most
    return low, high, whole


def _contribution(rule: ScoringRule, per_domain: Callable[[str], Domain]) -> tuple[float, float]:
    """The least and most points one rule adds (0 when it does not match)."""
    points = rule.points
    if rule.per is None:
        return min(0.0, points), max(0.0, points)
    domain = per_domain(rule.per)
    ends = [points * domain.low, points * domain.high] if "number" in domain.kinds else [0.0]
    ends = [0.0 if math.isnan(e) else e for e in ends]  # 0 x infinity: a rule worth 0 points
    least, most = min(0.0, *ends), max(0.0, *ends)
    if rule.max is not None:
        least, most = max(least, -rule.max), min(most, rule.max)
    return least, most
