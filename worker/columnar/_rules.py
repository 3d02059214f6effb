"""A ruleset's plain scoring rules over a batch: one mask per rule, points added column by column in file order.

The same totals and matched rules as :meth:`worker.rules.Ruleset.evaluate`'s generated scorer: a one-fact rule's test
runs once per distinct value (tests are pure functions of the value), any other condition runs on each lead's facts
as the scorer runs it, and the points are added in file order (adding 0.0 for a rule that did not match leaves a
total unchanged, bit for bit). The block takes no ruleset with derived facts or decaying rules; rounding and
qualification are the block's (:mod:`worker.columnar._whole`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from worker.columnar._frame import Frame, _key
from worker.rules import Ruleset, ScoringRule

__all__ = ["RuleColumns", "group_mask"]

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
        """Each lead's total of the plain scoring rules and the ids of those that added points, in file order.

        The ids are worked out once per distinct set of rules that matched, and the rows of a set share its list: the
        block only reads them (a qualification rule's id makes a new list)."""
        n = len(frame)
        total = np.zeros(n)
        masks = np.zeros((max(len(self.rules), 1), n), dtype=bool)
        for i, rule in enumerate(self.rules):
            if rule.per is None:
                mask = self._mask(i, rule, frame)
                masks[i] = mask
                total += np.where(mask, rule.points, 0.0)
            else:
                added = _per_points_by_value(rule, frame) if rule.condition is None else _per_points(rule, frame.facts)
                masks[i] = added != 0.0
                total += added
        keys = np.ascontiguousarray(np.packbits(masks, axis=0).T)  # a row's matched rules as bytes
        distinct, inverse = np.unique(keys.view(np.dtype((np.void, keys.shape[1]))), return_inverse=True)
        patterns = self._patterns
        ids = self._ids
        lists: list[list[str]] = []
        for key in map(bytes, distinct):
            found = patterns.get(key)
            if found is None:
                if len(patterns) >= _MEMO_LIMIT:
                    patterns.clear()
                row = np.unpackbits(np.frombuffer(key, dtype=np.uint8))[: len(ids)]
                found = patterns[key] = tuple(ids[i] for i in np.flatnonzero(row))
            lists.append(list(found))
        at = inverse.reshape(-1).tolist()
        return total.tolist(), [lists[k] for k in at]

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
        if rule.group is not None:
            return group_mask(rule.group, rule.guard, frame)
        return frame.condition_mask(condition, rule.guard, sorted(rule.reads))


def group_mask(
    group: tuple[bool, tuple[tuple[str, Callable[[Any], bool]], ...]], guard: str | None, frame: Frame
) -> npt.NDArray[np.bool_]:
    """Whether a condition that is ``all`` (or ``any``) of tests of one fact each holds for each lead: each test once
    per distinct value of its fact (a missing fact is None to the test, as the condition gives it), and-ed (or-ed);
    False where ``guard`` is missing."""
    every, leaves = group
    mask: npt.NDArray[np.bool_] | None = None
    for path, test in leaves:
        codes, uniques, _ = frame.codes(path)
        holds = np.array([bool(test(value)) for value in uniques], dtype=bool)[codes]
        mask = holds if mask is None else (mask & holds if every else mask | holds)
    if mask is None:
        mask = np.full(len(frame), every, dtype=bool)
    if guard is not None:
        codes, uniques, _ = frame.codes(guard)
        mask &= np.array([value is not None for value in uniques], dtype=bool)[codes]
    return mask


def _per_points_by_value(rule: ScoringRule, frame: Frame) -> npt.NDArray[np.float64]:
    """:func:`_per_points` of a rule with no condition, worked out once per distinct value of its ``per`` fact."""
    codes, uniques, _ = frame.codes(rule.per)  # type: ignore[arg-type]  # a per rule has its fact
    cap, points = rule.max, rule.points
    return np.array([_times(points, value, cap) for value in uniques], dtype=np.float64)[codes]


def _per_points(rule: ScoringRule, facts: Sequence[_Facts]) -> npt.NDArray[np.float64]:
    """What a ``per`` rule adds for each lead (0.0 when nothing), by the generated scorer's own steps."""
    condition, guard, per, cap, points = rule.condition, rule.guard, rule.per, rule.max, rule.points
    out: list[float] = []
    for lead in facts:
        if condition is not None and not ((guard is None or lead.get(guard) is not None) and condition(lead)):
            out.append(0.0)
            continue
        out.append(_times(points, lead.get(per), cap))  # type: ignore[arg-type]  # a per rule has its fact
    return np.array(out, dtype=np.float64)


def _times(points: float, value: Any, cap: float | None) -> float:
    """What a ``per`` rule adds for its fact's ``value`` (0.0 for no number), by the generated scorer's own steps."""
    if value.__class__ not in _NUMBER:
        return 0.0
    got: float = points * value
    if cap is not None:
        if got > cap:
            got = cap
        elif got < -cap:
            got = -cap
    return got if got else 0.0
