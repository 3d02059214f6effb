"""Pydantic models of the ruleset YAML, one flat model per mapping.

Nested parts (conditions, amounts, the opportunity, list items) are typed ``Any`` here and validated one by one by
the compiler, so that one broken rule does not hide the problems of the others.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from worker.conditions import Name, RuleId, StrictDoc, Text

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

Version = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")]
ActivityType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class RulesetDoc(StrictDoc):
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
    duplicates: Any = None


class StatusDoc(StrictDoc):
    """One lead status."""

    name: Name
    default: bool = False
    converted: bool = False
    disqualified: bool = False
    description: Text | None = None


class StageDoc(StrictDoc):
    """One opportunity stage; for a stage of the standard table, omitted keys keep the standard values."""

    name: Name
    probability: Annotated[int, Field(ge=0, le=100)] | None = None
    forecast_category: Name | None = None
    closed: bool | None = None
    won: bool | None = None


class ConversionDoc(StrictDoc):
    """Defaults for the opportunity of converting rules."""

    stage: Name = "Prospecting"
    close_in_days: Annotated[int, Field(ge=0, le=3650)] = 30
    amount: Annotated[float, Field(ge=0)] | None = None
    queue: Name = "Unassigned Leads"
    name: Annotated[str, StringConstraints(max_length=200)] = "$company - $lead_source"


class ScoringDoc(StrictDoc):
    """One additive scoring rule."""

    id: RuleId
    description: Text | None = None
    when: Any = None
    per: Any = None
    points: float
    max: Annotated[float, Field(gt=0)] | None = None
    decay: Any = None


class QualificationDoc(StrictDoc):
    """One ordered qualification rule."""

    id: RuleId
    description: Text | None = None
    when: Any
    status: Name
    convert: bool = False
    opportunity: Any = None


class OpportunityDoc(StrictDoc):
    """A converting rule's overrides of the conversion defaults."""

    stage: Name | None = None
    amount: Any = None
    close_in_days: Annotated[int, Field(ge=0, le=3650)] | None = None
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    queue: Name | None = None
    owner_id: Name | None = None
    probability: Annotated[int, Field(ge=0, le=100)] | None = None
    forecast_category: Name | None = None


class DecayDoc(StrictDoc):
    """Linear decay of engagement points: ``percent`` % of them per ``days`` days."""

    percent: Annotated[float, Field(gt=0, le=100)]
    days: Annotated[float, Field(gt=0, le=3650)]


class AmountDoc(StrictDoc):
    """An amount computed from a numeric fact."""

    field: str
    multiply: float = 1.0
    min: Annotated[float, Field(ge=0)] | None = None
    max: Annotated[float, Field(ge=0)] | None = None
    round: Annotated[int, Field(ge=0, le=6)] = 2
