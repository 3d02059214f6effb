"""Where a lead goes: the account owner, the first matching rule, the first matching territory, or the default."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from worker.routing._accounts import AccountIndex, AccountMatch
from worker.routing._pool import Pool
from worker.routing._target import Target

__all__ = ["ROUTING_FACTS", "Route", "Routing", "RoutingRule", "Territory"]

Facts = Mapping[str, Any]
Via = Literal["account", "rule", "territory", "default"]

ROUTING_FACTS = ("account.matched", "account.id")
"""Facts routing adds to the rule facts before its rules run (from lead-to-account matching)."""

_NUMBER: frozenset[type[float]] = frozenset({int, float})


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """An ordered routing rule: the first whose condition holds sends the lead to ``target``."""

    id: str
    target: Target
    condition: Callable[[Facts], bool] = field(repr=False, compare=False)
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Territory:
    """A territory: leads whose profile matches every given criterion (lists compare case-insensitively)."""

    id: str
    target: Target
    country: frozenset[str] | None = None
    state: frozenset[str] | None = None
    industry: frozenset[str] | None = None
    employees_min: int | None = None
    employees_max: int | None = None

    def matches(self, profile: Mapping[str, object]) -> bool:
        """Whether a lead profile falls in this territory (a missing value matches no criterion on it)."""
        for key, allowed in (("country", self.country), ("state", self.state), ("industry", self.industry)):
            if allowed is not None:
                value = profile.get(key)
                if not isinstance(value, str) or value.strip().casefold() not in allowed:
                    return False
        if self.employees_min is not None or self.employees_max is not None:
            size: Any = profile.get("number_of_employees")
            if size.__class__ not in _NUMBER:
                return False
            if self.employees_min is not None and size < self.employees_min:
                return False
            if self.employees_max is not None and size > self.employees_max:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Route:
    """Where the lead processor sends an opportunity, and why (``ref``: the rule, territory or account id)."""

    target: Target
    via: Via
    ref: str | None
    matched_by: str | None = None
    """For ``via="account"``: how the lead matched the account (email_domain, website_domain, company_name)."""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: ``{"via", "ref", "target": {...}}`` (plus ``matched_by`` for an account route)."""
        out: dict[str, object] = {"via": self.via, "ref": self.ref, "target": self.target.as_dict()}
        if self.matched_by is not None:
            out["matched_by"] = self.matched_by
        return out


@dataclass(frozen=True, slots=True)
class Routing:
    """A compiled ``routing:`` section; :meth:`route` decides where a lead goes."""

    default: Target
    match_accounts: bool
    pools: Mapping[str, Pool]
    rules: tuple[RoutingRule, ...] = ()
    territories: tuple[Territory, ...] = ()
    derived_facts: tuple[tuple[str, Callable[[Facts], object]], ...] = field(default=(), repr=False, compare=False)
    """Derived facts the routing rules read, computed when the given facts lack them."""
    reads_account: bool = False
    """Whether a routing rule reads ``account.matched`` or ``account.id``."""
    lead_statuses: frozenset[str] = frozenset()
    """Statuses on entering which the lead itself is routed too (not only the opportunity it converts into)."""

    def route(self, facts: Mapping[str, object], profile: Mapping[str, object], accounts: AccountIndex | None) -> Route:
        """The route of a lead: a matched account's owner (when ``match_accounts``), the first matching rule, the
        first matching territory, else the default.

        ``facts`` are the rule facts (as qualification rules see them), ``profile`` the lead's profile fields. When
        ``accounts`` is given, the rules see ``account.matched`` and ``account.id`` from the match. Pure.
        """
        match: AccountMatch | None = None
        if accounts is not None and (self.match_accounts or self.reads_account):
            match = accounts.match(
                _text(profile.get("email")), _text(profile.get("website")), _text(profile.get("company"))
            )
            if self.match_accounts and match is not None and match.owner_id is not None:
                return Route(Target("user", match.owner_id), "account", match.account_id, match.matched_by)
        if self.rules:
            facts = self._rule_facts(facts, match, accounts is not None)
            for rule in self.rules:
                if rule.condition(facts):
                    return Route(rule.target, "rule", rule.id)
        for territory in self.territories:
            if territory.matches(profile):
                return Route(territory.target, "territory", territory.id)
        return Route(self.default, "default", None)

    def _rule_facts(self, facts: Facts, match: AccountMatch | None, matched: bool) -> Facts:
        """The facts with the account facts (when matching ran) and any missing derived facts, in a copy."""
        missing = [(name, compute) for name, compute in self.derived_facts if name not in facts]
        if not missing and not (self.reads_account and matched):
            return facts
        out = dict(facts)
        for name, compute in missing:
            out[name] = compute(out)
        if self.reads_account and matched:
            out["account.matched"] = match is not None
            out["account.id"] = None if match is None else match.account_id
        else:
            out.setdefault("account.matched", False)
            out.setdefault("account.id", None)
        return out


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
