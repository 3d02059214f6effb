"""Pydantic models of the ``routing:`` section, one flat strict model per mapping (nested parts checked by the
compiler one by one, so one broken pool does not hide the problems of the others)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from worker.conditions import Name, RuleId, StrictDoc, Text

__all__ = [
    "POOL_NAME",
    "AccountsDoc",
    "BandDoc",
    "CapsDoc",
    "MemberDoc",
    "PoolDoc",
    "RoutingDoc",
    "RoutingRuleDoc",
    "SlaDoc",
    "TargetDoc",
    "TerritoryDoc",
    "WindowDoc",
]

POOL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PoolName = Annotated[str, StringConstraints(pattern=POOL_NAME)]
Texts = list[Name] | Name


class RoutingDoc(StrictDoc):
    """The ``routing:`` section."""

    default: Any
    accounts: Any = None
    rules: list[Any] = Field(default_factory=list)
    territories: list[Any] = Field(default_factory=list)
    pools: list[Any] = Field(default_factory=list)
    lead_statuses: list[Any] = Field(default_factory=list)


class AccountsDoc(StrictDoc):
    """Lead-to-account matching."""

    match: bool = True


class TargetDoc(StrictDoc):
    """Where a lead goes: exactly one of a user id, a queue name or a pool name."""

    user: Name | None = None
    queue: Name | None = None
    pool: Name | None = None


class RoutingRuleDoc(StrictDoc):
    """One ordered routing rule."""

    id: RuleId
    description: Text | None = None
    when: Any
    to: Any


class TerritoryDoc(StrictDoc):
    """One territory: every given criterion must hold."""

    id: RuleId
    description: Text | None = None
    country: Texts | None = None
    state: Texts | None = None
    industry: Texts | None = None
    employees: Any = None
    to: Any


class BandDoc(StrictDoc):
    """A company-size band, both ends included."""

    min: Annotated[int, Field(ge=0)] | None = None
    max: Annotated[int, Field(ge=0)] | None = None


class WindowDoc(StrictDoc):
    """At most ``count`` leads in any ``hours`` hours."""

    count: Annotated[int, Field(ge=1)]
    hours: Annotated[float, Field(gt=0, le=24 * 366)]


class CapsDoc(StrictDoc):
    """Capacity caps."""

    per_day: Annotated[int, Field(ge=1)] | None = None
    per_window: Any = None


class SlaDoc(StrictDoc):
    """A pool's SLA."""

    accept_within_minutes: Annotated[float, Field(gt=0, le=60 * 24 * 366)]
    then: Any = "next_member"


class PoolDoc(StrictDoc):
    """One pool."""

    name: PoolName
    description: Text | None = None
    strategy: Name = "round_robin"
    timezone: Name | None = None
    working_hours: Any = None
    caps: Any = None
    overflow: Any = None
    sla: Any = None
    members: list[Any] = Field(default_factory=list)


class MemberDoc(StrictDoc):
    """One member of a pool."""

    id: Name
    weight: Annotated[int, Field(ge=1, le=10000)] | None = None
    active: bool = True
    timezone: Name | None = None
    working_hours: Any = None
    caps: Any = None
    out_of_office: list[Any] = Field(default_factory=list)
