"""A ruleset's plain scoring rules over a batch: one mask per rule, points added column by column in file order.

The same totals and matched rules as :meth:`worker.rules.Ruleset.evaluate`'s generated scorer: a one-fact rule's test
runs once per distinct value (tests are pure functions of the value), any other condition runs on each lead's facts
as the scorer runs it, and the points are added in file order (adding 0.0 for a rule that did not match leaves a
total unchanged, bit for bit). Derived facts, decaying rules, rounding and qualification stay with the ruleset's
own code, per lead (:func:`finish`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from worker.columnar._frame import Frame, _key
from worker.rules import QualificationRule, Ruleset, ScoringRule

__all__ = ["RuleColumns", "finish"]

_NUMBER = (int, float)
_MEMO_LIMIT = 4096
_Facts = dict[str, object]


class RuleColumns:
    """One ruleset's plain scoring rules for many leads' facts at once."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.rules: tuple[ScoringRule, ...] = tuple(
            r for r in ruleset.scoring_rules if r.points and r.decay is None
        )  # the rules the generated scorer adds up, in its order
        self._memos: list[dict[Hashable, bool]] = [{} for _ in self.rules]
        self._patterns: dict[bytes, tuple[str, ...]] = {}
        self._ids = tuple(rule.id for rule in self.rules)

    def points(self, frame: Frame) -> tuple[list[float], list[list[str]]]:
        """Each lead's total of the plain scoring rules and the ids of those that added points, in file order."""
        n = len(frame)
        total = np.zeros(n)
        masks = np.zeros((max(len(self.rules), 1), n), dtype=bool)
        for i, rule in enumerate(self.rules):
            if rule.per is None:
                mask = self._mask(i, rule, frame)
                masks[i] = mask
                total += np.where(mask, rule.points, 0.0)
            else:
                added = _per_points(rule, frame.facts)
                masks[i] = [p != 0.0 for p in added]
                total += np.array(added, dtype=np.float64)
        keys = np.packbits(masks, axis=0).T
        patterns = self._patterns
        ids = self._ids
        matched: list[list[str]] = []
        for key in map(bytes, keys):
            found = patterns.get(key)
            if found is None:
                if len(patterns) >= _MEMO_LIMIT:
                    patterns.clear()
                row = np.unpackbits(np.frombuffer(key, dtype=np.uint8))[: len(ids)]
                found = patterns[key] = tuple(ids[i] for i in np.flatnonzero(row))
            matched.append(list(found))
        return total.tolist(), matched

    def _mask(self, i: int, rule: ScoringRule, frame: Frame) -> npt.NDArray[np.bool_] | list[bool]:
        """Whether the rule's condition holds for each lead (its points are then added)."""
        if rule.leaf is not None:
            field, test = rule.leaf
            codes, uniques, _ = frame.codes(field)
            memo = self._memos[i]
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            results = []
            for value in uniques:
                if value is None:
                    results.append(False)
                    continue
                try:
                    key = _key(value)
                    hit = memo.get(key)
                except TypeError:  # an unhashable value (a list): tested as it is
                    results.append(bool(test(value)))
                    continue
                if hit is None:
                    hit = memo[key] = bool(test(value))
                results.append(hit)
            return np.array(results, dtype=bool)[codes]
        condition = rule.condition
        facts = frame.facts
        if condition is None:
            return [True] * len(facts)
        guard = rule.guard
        if guard is None:
            return [bool(condition(lead)) for lead in facts]
        return [lead.get(guard) is not None and bool(condition(lead)) for lead in facts]


def _per_points(rule: ScoringRule, facts: Sequence[_Facts]) -> list[float]:
    """What a ``per`` rule adds for each lead (0.0 when nothing), by the generated scorer's own steps."""
    condition, guard, per, cap, points = rule.condition, rule.guard, rule.per, rule.max, rule.points
    out: list[float] = []
    for lead in facts:
        if condition is not None and not ((guard is None or lead.get(guard) is not None) and condition(lead)):
            out.append(0.0)
            continue
        value: Any = lead.get(per)  # type: ignore[arg-type]  # a per rule has its fact
        if value.__class__ not in _NUMBER:
            out.append(0.0)
            continue
        got = points * value
        if cap is not None:
            if got > cap:
                got = cap
            elif got < -cap:
                got = -cap
        out.append(got if got else 0.0)
    return out


def finish(ruleset: Ruleset, facts: _Facts, total: float, matched: list[str]) -> tuple[float, QualificationRule | None]:
    """The rest of :meth:`Ruleset.evaluate` for one lead, by the ruleset's own code: decaying rules, rounding, the
    total as the ``points`` fact, and the first qualification rule that matches (its id joins ``matched``)."""
    if ruleset._decaying:
        total += ruleset._decayed_points(facts, matched)
    if not ruleset._whole:
        total = round(total, 4)
    facts["points"] = total
    get = facts.get
    for guard, condition, rule in ruleset._checks:
        if guard is not None and get(guard) is None:
            continue
        if condition(facts):
            matched.append(rule.id)
            return total, rule
    return total, None
