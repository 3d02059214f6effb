"""Pydantic models of the ruleset YAML, one flat model per mapping.

Nested parts (conditions, amounts, the opportunity, list items) are typed ``Any`` here and validated one by one by
the compiler, so that one broken rule does not hide the problems of the others.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "AmountDoc",
    "ConversionDoc",
    "DecayDoc",
    "OpportunityDoc",
    "QualificationDoc",
    "RulesetDoc",
    "ScoringDoc",
    "StageDoc",
    "StatusDoc",
]

Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
RuleId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")]
Version = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")]
ActivityType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Text = Annotated[str, StringConstraints(max_length=2000)]

PATTERN_HINTS = {
    "version": 'a version like "1.0" (letters, digits, ".", "-" and "_"; quote it)',
    "id": "an id of letters, digits, '-', '_', '.' or ':' (at most 100)",
    "activity_types": "an activity type in lower case like 'trial_signup'",
    "name": "a pool name of letters, digits, '_', '.' or '-' starting with a letter or digit (at most 64)",
}
"""What a value that fails a pattern should look like, by key (for error messages)."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class RulesetDoc(_Doc):
    """The top level of a ruleset file."""

    version: Version
    name: Name | None = None
    description: Text | None = None
    activity_types: list[ActivityType] = Field(default_factory=list)
    fields: Any = None
    decay: Any = None
    statuses: list[Any] | None = None
    stages: list[Any] = Field(default_factory=list)
    conversion: Any = None
    scoring: list[Any] = Field(default_factory=list)
    qualification: list[Any] = Field(default_factory=list)
    routing: Any = None


class StatusDoc(_Doc):
    """One lead status."""

    name: Name
    default: bool = False
    converted: bool = False
    disqualified: bool = False
    description: Text | None = None


class StageDoc(_Doc):
    """One opportunity stage; for a stage of the standard table, omitted keys keep the standard values."""

    name: Name
    probability: Annotated[int, Field(ge=0, le=100)] | None = None
    forecast_category: Name | None = None
    closed: bool | None = None
    won: bool | None = None


class ConversionDoc(_Doc):
    """Defaults for the opportunity of converting rules."""

    stage: Name = "Prospecting"
    close_in_days: Annotated[int, Field(ge=0, le=3650)] = 30
    amount: Annotated[float, Field(ge=0)] | None = None
    queue: Name = "Unassigned Leads"
    name: Annotated[str, StringConstraints(max_length=200)] = "$company - $lead_source"


class ScoringDoc(_Doc):
    """One additive scoring rule."""

    id: RuleId
    description: Text | None = None
    when: Any = None
    per: Any = None
    points: float
    max: Annotated[float, Field(gt=0)] | None = None
    decay: Any = None


class QualificationDoc(_Doc):
    """One ordered qualification rule."""

    id: RuleId
    description: Text | None = None
    when: Any
    status: Name
    convert: bool = False
    opportunity: Any = None


class OpportunityDoc(_Doc):
    """A converting rule's overrides of the conversion defaults."""

    stage: Name | None = None
    amount: Any = None
    close_in_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    queue: Name | None = None
    owner_id: Name | None = None
    probability: Annotated[int, Field(ge=0, le=100)] | None = None
    forecast_category: Name | None = None


class DecayDoc(_Doc):
    """Linear decay of engagement points: ``percent`` % of them per ``days`` days."""

    percent: Annotated[float, Field(gt=0, le=100)]
    days: Annotated[float, Field(gt=0, le=3650)]


class AmountDoc(_Doc):
    """An amount computed from a numeric fact."""

    field: str
    multiply: float = 1.0
    min: Annotated[float, Field(ge=0)] | None = None
    max: Annotated[float, Field(ge=0)] | None = None
    round: Annotated[int, Field(ge=0, le=6)] = 2
