"""Routing: where a qualified lead goes (account owner, rules, territories, default) and who in a pool gets it.

Pure functions over plain data, configured by the ``routing:`` section of a ruleset (compiled with it, see
:func:`worker.rules.load_ruleset`): :meth:`Routing.route` picks a target, :func:`assign` picks a pool member by
weighted round robin with availability, caps and SLA reassignment, and :func:`explain_assignment` says why.
"""

from __future__ import annotations

from worker.routing._accounts import AccountIndex, AccountMatch, normalize_company
from worker.routing._assign import SKIP_REASONS, Assignment, Candidate, assign
from worker.routing._compile import compile_routing
from worker.routing._explain import describe_target, explain_assignment
from worker.routing._pool import Caps, Member, Pool
from worker.routing._route import ROUTING_FACTS, Route, Routing, RoutingRule, Territory
from worker.routing._target import Sla, Target

__all__ = [
    "ROUTING_FACTS",
    "SKIP_REASONS",
    "AccountIndex",
    "AccountMatch",
    "Assignment",
    "Candidate",
    "Caps",
    "Member",
    "Pool",
    "Route",
    "Routing",
    "RoutingRule",
    "Sla",
    "Target",
    "Territory",
    "assign",
    "compile_routing",
    "describe_target",
    "explain_assignment",
    "normalize_company",
]
