"""What a compiled ruleset is made of: frozen dataclasses holding pre-built closures, and ``evaluate``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Condition",
    "ConversionDefaults",
    "Facts",
    "OpportunitySpec",
    "QualificationRule",
    "RuleOutcome",
    "Ruleset",
    "ScoringRule",
    "StageDef",
    "StatusDef",
]

Facts = Mapping[str, Any]
"""The flat ``path -> value`` facts of a lead (see :func:`worker.state.build_facts`)."""

Condition = Callable[[Facts], bool]
"""A compiled ``when``: a pure function of the facts."""

_NUMBER = frozenset({int, float})


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

    def amount(self, facts: Facts) -> float | None:
        """The opportunity amount for a lead with these facts (None when unknown)."""
        return self.amount_of(facts)

    def name(self, facts: Facts) -> str:
        """The opportunity name rendered from the template over these facts."""
        return self.name_of(facts)


@dataclass(frozen=True, slots=True)
class ScoringRule:
    """An additive scoring rule: ``points`` when ``condition`` holds, times the ``per`` fact if given."""

    id: str
    points: float
    condition: Condition | None = field(default=None, repr=False, compare=False)
    per: str | None = None
    max: float | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class QualificationRule:
    """An ordered qualification rule: the first whose condition holds sets the status (and may convert)."""

    id: str
    status: str
    convert: bool
    opportunity: OpportunitySpec | None
    condition: Condition = field(repr=False, compare=False)
    description: str | None = None


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What a ruleset decided for one set of facts."""

    points: float
    matched_rules: tuple[str, ...]
    qualification: QualificationRule | None


_Step = tuple[str, Condition | None, float, str | None, float | None]


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
    _steps: tuple[_Step, ...] = field(init=False, repr=False, compare=False)
    _checks: tuple[tuple[Condition, QualificationRule], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        steps = tuple((r.id, r.condition, r.points, r.per, r.max) for r in self.scoring_rules)
        object.__setattr__(self, "_steps", steps)
        object.__setattr__(self, "_checks", tuple((r.condition, r) for r in self.qualification_rules))

    def evaluate(self, facts: dict[str, object]) -> RuleOutcome:
        """Score and qualify one lead.

        Adds up the scoring rules, stores the total in ``facts["points"]`` (so qualification rules can read it),
        then returns the first qualification rule that matches, if any. Never raises on odd fact values.
        """
        total = 0.0
        matched: list[str] = []
        number = _NUMBER
        for rule_id, condition, points, per, cap in self._steps:
            if condition is not None and not condition(facts):
                continue
            if per is None:
                got = points
            else:
                value: Any = facts.get(per)
                if value.__class__ not in number:
                    continue
                got = points * value
                if cap is not None:
                    if got > cap:
                        got = cap
                    elif got < -cap:
                        got = -cap
            if got:
                total += got
                matched.append(rule_id)
        points_total = round(total, 4)
        facts["points"] = points_total
        for condition, rule in self._checks:
            if condition(facts):
                matched.append(rule.id)
                return RuleOutcome(points_total, tuple(matched), rule)
        return RuleOutcome(points_total, tuple(matched), None)
