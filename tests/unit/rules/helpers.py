"""Shared helpers for the rule language tests: small rulesets, complete facts dicts and lead histories."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from tests.builders import T0
from worker.lead.events import LeadActivity, LeadUpserted
from worker.lead.state import LeadState, apply_event, build_facts, event_digest, new_state
from worker.rules import Ruleset, parse_ruleset

NOW = T0.timestamp()
DAY = 86400.0

FIELDS: dict[str, str] = {
    "custom.tier": "text",
    "custom.plan": "text",
    "custom.seats": "number",
    "custom.deal_size": "number",
    "custom.vip": "yes/no",
    "custom.seen": "time",
    **{f"custom.f{i}": "number" for i in range(5)},
}
"""The custom fields the tests' rulesets declare unless a test gives its own ``fields``."""


def make_ruleset(
    scoring: list[dict[str, Any]] | None = None,
    qualification: list[dict[str, Any]] | None = None,
    **top: Any,
) -> Ruleset:
    """A ruleset from Python data (dumped to YAML, so it goes through the real loader)."""
    doc: dict[str, Any] = {"version": "1", "fields": FIELDS, **top}
    if scoring is not None:
        doc["scoring"] = scoring
    if qualification is not None:
        doc["qualification"] = qualification
    return parse_ruleset(yaml.safe_dump(doc, sort_keys=False))


def facts(**values: Any) -> dict[str, object]:
    """A complete facts dict of a blank lead at ``NOW`` (as build_facts makes it), with ``values`` on top.

    Keys with dots are passed with ``**{"activity.demo_request.count": 1}``.
    """
    out = build_facts(new_state("L1", NOW), NOW, None)
    out.update(values)
    return out


def matches(when: dict[str, Any], fact_values: Mapping[str, object] | None = None, **top: Any) -> bool:
    """Whether the condition ``when`` holds for ``facts(**fact_values)``."""
    ruleset = make_ruleset(qualification=[{"id": "q", "when": when, "status": "Contacted"}], **top)
    return ruleset.evaluate(facts(**(fact_values or {}))).qualification is not None


def lead_facts(events: list[LeadUpserted | LeadActivity], score: float) -> dict[str, object]:
    """Facts after applying ``events`` in order, with the model's ``score`` set (as the core does)."""
    state: LeadState = new_state("L1", events[0].occurred_at.timestamp())
    for event in events:
        apply_event(state, event, event_digest(event.event_id), event.occurred_at.timestamp(), 64)
    last = events[-1]
    out = build_facts(state, last.occurred_at.timestamp(), last)
    out["score"] = score
    return out
