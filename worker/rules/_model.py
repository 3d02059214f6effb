"""What a compiled ruleset is made of: frozen dataclasses holding pre-built closures, and ``evaluate``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from worker.conditions import Clock, Condition, Facts, inline_form
from worker.routing import Routing
from worker.rules.duplicates import DuplicateRules

__all__ = [
    "ConversionDefaults",
    "Decay",
    "OpportunitySpec",
    "QualificationRule",
    "RuleOutcome",
    "Ruleset",
    "ScoringRule",
    "StageDef",
    "StatusDef",
]

_NUMBER: frozenset[type[float]] = frozenset({int, float})
_DAY = 86400.0
_ALWAYS_SET = frozenset({"points", "score", "converted", "activity.total", "now"})
"""Facts that the core always sets: a guard on them is never worth checking."""
_WHOLE_FACTS = frozenset({"activity.total", "number_of_employees"})


@dataclass(frozen=True, slots=True)
class StatusDef:
    """A lead status and what it means for the funnel."""

    name: str
    converted: bool = False
    disqualified: bool = False


@dataclass(frozen=True, slots=True)
class StageDef:
    """An opportunity stage (Salesforce ``OpportunityStage``)."""

    name: str
    probability: int
    forecast_category: str
    closed: bool = False
    won: bool = False


@dataclass(frozen=True, slots=True)
class ConversionDefaults:
    """Defaults for the opportunity of every converting rule that does not say otherwise."""

    stage: StageDef
    close_in_days: int
    amount: float | None
    queue: str
    name_template: str


@dataclass(frozen=True, slots=True)
class OpportunitySpec:
    """The opportunity a converting rule creates: rule overrides already merged over the conversion defaults."""

    stage: StageDef
    close_in_days: int
    owner_id: str | None
    queue: str | None
    name_template: str
    amount_of: Callable[[Facts], float | None] = field(repr=False, compare=False)
    name_of: Callable[[Facts], str] = field(repr=False, compare=False)
    probability: int | None = None
    """The rule's own probability (0-100) for the opportunity; None: the stage's."""
    forecast_category: str | None = None
    """The rule's own forecast category; None: the stage's."""

    def amount(self, facts: Facts) -> float | None:
        """The opportunity amount for a lead with these facts (None when unknown)."""
        return self.amount_of(facts)

    def name(self, facts: Facts) -> str:
        """The opportunity name rendered from the template over these facts."""
        return self.name_of(facts)


@dataclass(frozen=True, slots=True)
class Decay:
    """Linear score decay: a rule's points lose ``percent`` % per ``days`` days of age, down to 0."""

    percent: float
    days: float

    def factor(self, age_days: float) -> float:
        """What is left of the points after ``age_days`` days (1 for age 0 or less, never below 0)."""
        if age_days <= 0:
            return 1.0
        return max(0.0, 1.0 - self.percent / 100.0 * age_days / self.days)


def _newest(facts: Facts, times: tuple[str, ...]) -> Any:
    """The newest of the ``times`` facts (None when none is set): what a decaying rule's age is measured from."""
    newest: Any = None
    for name in times:
        t: Any = facts.get(name)
        if t.__class__ in _NUMBER and (newest is None or t > newest):
            newest = t
    return newest


def _decay_factor(decay: Decay, times: tuple[str, ...]) -> Callable[[Facts], float]:
    """The factor for a rule's points: the age is from the newest of the ``times`` facts to ``now``."""

    def factor(facts: Facts) -> float:
        now: Any = facts.get("now")
        newest = _newest(facts, times)
        if newest is None or now.__class__ not in _NUMBER:
            return 1.0  # nothing to age by: no activity time, no decay
        return decay.factor((now - newest) / _DAY)

    return factor


@dataclass(frozen=True, slots=True)
class ScoringRule:
    """An additive scoring rule: ``points`` when ``condition`` holds, times the ``per`` fact if given."""

    id: str
    points: float
    condition: Condition | None = field(default=None, repr=False, compare=False)
    per: str | None = None
    max: float | None = None
    description: str | None = None
    guard: str | None = field(default=None, repr=False, compare=False)
    """A field that, when missing (None), makes the condition False: checked before calling it."""
    leaf: tuple[str, Callable[[Any], bool]] | None = field(default=None, repr=False, compare=False)
    """``(field, test)`` when the condition is one test of one fact, False when it is missing: called directly."""
    decay: Decay | None = None
    """How the points decay with the age of the activity the rule reads (engagement rules only)."""
    decay_from: tuple[str, ...] = ()
    """The time facts of that activity (``activity.<type>.last_at``, ``last_activity_at``): the newest sets the age."""
    reads: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    """The facts the condition reads (an engine over columns evaluates it once per distinct combination)."""
    group: tuple[bool, tuple[tuple[str, Callable[[Any], bool]], ...]] | None = field(
        default=None, repr=False, compare=False
    )
    """``(all, leaves)`` when the condition is ``all`` or ``any`` of tests of one fact each (see ``Compiled``)."""


@dataclass(frozen=True, slots=True)
class QualificationRule:
    """An ordered qualification rule: the first whose condition holds sets the status (and may convert)."""

    id: str
    status: str
    convert: bool
    opportunity: OpportunitySpec | None
    condition: Condition = field(repr=False, compare=False)
    description: str | None = None
    guard: str | None = field(default=None, repr=False, compare=False)
    """A field that, when missing (None), makes the condition False: checked before calling it."""
    leaf: tuple[str, Callable[[Any], bool]] | None = field(default=None, repr=False, compare=False)
    """``(field, test)`` when the condition is one test of the fact it is guarded by (for engines over columns)."""
    reads: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    """The facts the condition reads (an engine over columns evaluates it once per distinct combination)."""
    group: tuple[bool, tuple[tuple[str, Callable[[Any], bool]], ...]] | None = field(
        default=None, repr=False, compare=False
    )
    """``(all, leaves)`` when the condition is ``all`` or ``any`` of tests of one fact each (see ``Compiled``)."""


class RuleOutcome(NamedTuple):
    """What a ruleset decided for one set of facts (a named tuple: cheap to build on the hot path)."""

    points: float
    matched_rules: tuple[str, ...]
    qualification: QualificationRule | None


_Check = tuple[str | None, Condition, "QualificationRule"]
_Scorer = Callable[[dict[str, object]], tuple[float, list[str]]]


def _generate_scorer(rules: tuple[ScoringRule, ...]) -> _Scorer:
    """One straight-line function for the plain (not decaying) scoring rules: ``facts -> (total, matched ids)``.

    Rules are added in file order, exactly as a loop over them would (the same float sums); a one-fact rule
    calls its test on the fact directly (a missing fact skips it), or, for the simplest operators, runs the test's
    own expression in place (``worker.conditions.inline_form``), and a rule with a guard is skipped when the guard's
    fact is missing (its condition would be False). The source holds only generated identifiers and those
    expressions, which are leadflow's code; every value from the ruleset (fields, tests, values, points, ids) is
    passed in the namespace, never pasted into the code.
    """
    namespace: dict[str, Any] = {"NUMBER": _NUMBER}
    lines = [
        "def score(facts):",
        "    get = facts.get",
        "    total = 0.0",
        "    matched = []",
        "    add = matched.append",
    ]
    for i, rule in enumerate(rules):
        namespace.update({f"points_{i}": rule.points, f"id_{i}": rule.id})
        if rule.leaf is not None and rule.per is None:
            namespace[f"field_{i}"], test = rule.leaf
            form = inline_form(test)
            if form is None:
                namespace[f"test_{i}"] = test
                check = f"test_{i}(x)"
            else:  # the test's own expression, its values bound to names of this rule
                expression, values = form
                namespace.update({f"{name}_{i}": value for name, value in values.items()})
                check = "(" + expression.format(**{name: f"{name}_{i}" for name in values}) + ")"
            lines += [f"    x = get(field_{i})", f"    if x is not None and {check}:"]
        elif rule.condition is None:
            lines.append("    if True:")
        else:
            namespace[f"test_{i}"] = rule.condition
            if rule.guard is not None and rule.guard not in _ALWAYS_SET:
                namespace[f"guard_{i}"] = rule.guard
                lines.append(f"    if get(guard_{i}) is not None and test_{i}(facts):")
            else:
                lines.append(f"    if test_{i}(facts):")
        if rule.per is None:
            lines += [f"        total += points_{i}", f"        add(id_{i})"]
            continue
        namespace[f"per_{i}"] = rule.per
        lines += [
            f"        value = get(per_{i})",
            "        if value.__class__ in NUMBER:",
            f"            points = points_{i} * value",
        ]
        if rule.max is not None:
            namespace[f"cap_{i}"] = rule.max
            lines += [
                f"            if points > cap_{i}:",
                f"                points = cap_{i}",
                f"            elif points < -cap_{i}:",
                f"                points = -cap_{i}",
            ]
        lines += ["            if points:", "                total += points", f"                add(id_{i})"]
    lines.append("    return total, matched")
    code = compile("\n".join(lines) + "\n", "<leadflow scoring rules>", "exec")
    exec(code, namespace)  # noqa: S102  # generated from identifiers only; see the docstring
    scorer: _Scorer = namespace["score"]
    return scorer


_Decaying = tuple[ScoringRule, Callable[[Facts], float]]


def _rule_points(rule: ScoringRule, facts: Facts) -> float:
    """What a scoring rule adds before decay (0 when it does not match): the plain reading of a rule."""
    if rule.condition is not None and not rule.condition(facts):
        return 0.0
    if rule.per is None:
        return rule.points
    value: Any = facts.get(rule.per)
    if value.__class__ not in _NUMBER:
        return 0.0
    points: float = rule.points * value
    if rule.max is not None:
        points = max(-rule.max, min(rule.max, points))
    return points


@dataclass(frozen=True, slots=True)
class Ruleset:
    """A compiled, validated ruleset; build it with :func:`worker.rules.load_ruleset` or ``parse_ruleset``."""

    version: str
    name: str
    default_status: str
    statuses: Mapping[str, StatusDef]
    stages: Mapping[str, StageDef]
    conversion: ConversionDefaults
    scoring_rules: tuple[ScoringRule, ...]
    qualification_rules: tuple[QualificationRule, ...]
    derived_facts: tuple[tuple[str, Callable[[Facts], object]], ...] = ()
    """Facts computed from others before the rules run (windowed counts, days since an activity type)."""
    _scorer: _Scorer = field(init=False, repr=False, compare=False)
    _decaying: tuple[_Decaying, ...] = field(init=False, repr=False, compare=False)
    """Rules whose points decay, with their decay factor: scored after the fast loop, which stays as it was."""
    _checks: tuple[_Check, ...] = field(init=False, repr=False, compare=False)
    _whole: bool = field(init=False, repr=False, compare=False)
    _order: Mapping[str, int] = field(init=False, repr=False, compare=False)
    routing: Routing | None = None
    """The compiled ``routing:`` section; None when the ruleset has none."""
    duplicates: DuplicateRules | None = None
    """The compiled ``duplicates:`` section; None when the ruleset has none (no lead is matched to another)."""
    clocks: tuple[Clock, ...] = ()
    """The scoring and qualification tests whose outcome time alone can change (see :mod:`worker.rules._wake`)."""

    def __post_init__(self) -> None:
        plain = tuple(r for r in self.scoring_rules if r.points and r.decay is None)
        object.__setattr__(self, "_scorer", _generate_scorer(plain))
        decaying = tuple(
            (r, _decay_factor(r.decay, r.decay_from)) for r in self.scoring_rules if r.points and r.decay is not None
        )
        object.__setattr__(self, "_decaying", decaying)
        object.__setattr__(self, "_order", {r.id: i for i, r in enumerate(self.scoring_rules)})
        checks = tuple((None if r.guard in _ALWAYS_SET else r.guard, r.condition, r) for r in self.qualification_rules)
        object.__setattr__(self, "_checks", checks)
        # whole points times counts always add up to a whole number: no rounding needed on the hot path
        whole = all(
            r.decay is None
            and float(r.points).is_integer()
            and (r.max is None or float(r.max).is_integer())
            and (r.per is None or r.per in _WHOLE_FACTS or (r.per.startswith("activity.") and r.per.endswith(".count")))
            for r in self.scoring_rules
        )
        object.__setattr__(self, "_whole", whole)

    def evaluate(self, facts: dict[str, object]) -> RuleOutcome:
        """Score and qualify one lead.

        Computes the derived facts the rules read (windows, days since) into ``facts``, adds up the scoring rules
        (decayed where a rule decays), stores the total in ``facts["points"]`` (so qualification rules can read
        it), then returns the first qualification rule that matches, if any. Never raises on odd fact values.
        """
        for name, compute in self.derived_facts:
            facts[name] = compute(facts)
        total, matched = self._scorer(facts)
        if self._decaying:
            total += self._decayed_points(facts, matched)
        if not self._whole:
            total = round(total, 4)
        facts["points"] = total
        get = facts.get
        for guard, condition, rule in self._checks:
            if guard is not None and get(guard) is None:
                continue
            if condition(facts):
                matched.append(rule.id)
                return RuleOutcome(total, tuple(matched), rule)
        return RuleOutcome(total, tuple(matched), None)

    @property
    def decays(self) -> bool:
        """Whether any scoring rule's points decay with time."""
        return bool(self._decaying)

    def decay_slopes(self, facts: Facts) -> list[tuple[float, float, float]]:
        """How time changes the decaying rules' points at these facts: ``(start, end, slope)`` per rule that adds
        points now, its points falling linearly by ``slope`` per second from ``start`` (its activity's time) to
        ``end`` (where they reach 0). Empty when no rule decays."""
        now: Any = facts.get("now")
        slopes = []
        for rule, _ in self._decaying:
            decay = rule.decay
            newest = _newest(facts, rule.decay_from)
            points = _rule_points(rule, facts)
            if decay is None or newest is None or not points or now.__class__ not in _NUMBER:
                continue
            rate = decay.percent / 100.0 / (decay.days * _DAY)  # of the points, per second
            slopes.append((float(newest), newest + 1.0 / rate, -points * rate))
        return slopes

    def _decayed_points(self, facts: Facts, matched: list[str]) -> float:
        """The decaying rules' points; their ids join ``matched`` in file order."""
        total = 0.0
        decayed: list[str] = []
        for rule, factor in self._decaying:
            points = _rule_points(rule, facts)
            if points:
                points *= factor(facts)
            if points:
                total += points
                decayed.append(rule.id)
        if decayed:
            order = self._order
            matched.extend(decayed)
            matched.sort(key=order.__getitem__)
        return total
