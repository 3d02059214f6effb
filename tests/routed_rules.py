"""The ruleset the routing tests share: a demo request converts the lead; German leads go to a queue, everyone else
to the weighted pool ``ae`` (members and pool settings given by each test)."""

from __future__ import annotations

__all__ = ["CONVERTS_ON_DEMO", "routed"]

CONVERTS_ON_DEMO = """
scoring:
  - id: demo-request
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 50
qualification:
  - id: hot
    when: {field: points, op: gte, value: 50}
    status: Qualified
    convert: true
"""
"""Scoring and qualification: 50 points for a demo request, and 50 points convert."""

_ROUTING = """
routing:
  default: {queue: Inbound}
  rules:
    - id: germany
      when: {field: country, op: eq, value: Germany}
      to: {queue: DACH}
    - id: everyone-else
      when: {field: points, op: gte, value: 0}
      to: {pool: ae}
  pools:
    - name: ae
      strategy: weighted_round_robin
      overflow: {queue: AE-Overflow}
"""


def routed(members: str, version: str = "r-1", pool: str = "") -> str:
    """The shared ruleset with the pool ``ae``'s ``members`` (YAML list items, indented 8) and more of its keys
    (``pool``: YAML lines indented 6, e.g. an ``sla``)."""
    return f'version: "{version}"\n{CONVERTS_ON_DEMO}{_ROUTING}{pool}      members:\n{members.rstrip()}\n'
