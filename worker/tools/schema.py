"""Generate the JSON Schemas in ``schemas/`` from the pydantic models (the source of truth)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from worker.batch import Record, process_batch
from worker.core import Decided, Engine, decide, decide_time, erase
from worker.lead.events import (
    AccountRecord,
    DeadLetterHeaders,
    Decision,
    LeadErased,
    LeadErasure,
    LeadMerged,
    LeadsRecord,
    OpportunityAccepted,
    OpportunityClosed,
    OpportunityCreated,
    OpportunityUpdated,
    RoutingDecision,
)
from worker.lead.parse import parse_event
from worker.lead.state import LeadState
from worker.routing import Target
from worker.routing.flow import route_batch
from worker.rules import default_ruleset_path, load_ruleset, parse_ruleset
from worker.scoring import default_model_path, load_model

__all__ = ["SCHEMAS", "render_examples", "render_schemas", "write_schemas"]

EXAMPLE_EVENTS = ("lead-upserted", "lead-activity", "lead-activity-demo-request")
"""The lead events in ``examples/`` that, in this order, produce the decision and opportunity examples."""
_EXAMPLE_DECIDED_AT = 1_794_130_400.0  # 2026-11-08T09:33:20Z: fixed, so that the examples are reproducible

SCHEMAS: dict[str, Any] = {
    "lead-event.schema.json": TypeAdapter(LeadsRecord),
    "lead-erasure.schema.json": LeadErasure,
    "lead-merged.schema.json": LeadMerged,
    "decision.schema.json": Decision,
    "opportunity.schema.json": OpportunityCreated,
    "dead-letter-headers.schema.json": DeadLetterHeaders,
    "routing-decision.schema.json": RoutingDecision,
    "opportunity-accepted.schema.json": OpportunityAccepted,
    "opportunity-updated.schema.json": OpportunityUpdated,
    "opportunity-closed.schema.json": OpportunityClosed,
    "account.schema.json": AccountRecord,
}


def render_schemas() -> dict[str, str]:
    """File name → JSON text of every schema, deterministic."""
    out: dict[str, str] = {}
    for name, source in SCHEMAS.items():
        schema = (
            source.model_json_schema()
            if isinstance(source, type) and issubclass(source, BaseModel)
            else (source.json_schema())
        )
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": name, **schema}
        out[name] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def render_examples(examples: Path) -> dict[str, str]:
    """``decision.json`` and ``opportunity.json``: what the default ruleset and model make of the lead examples."""
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    state, decided = _decided_examples(engine, examples, EXAMPLE_EVENTS)
    if decided is None or decided.opportunity is None:
        msg = f"the example lead in {examples} no longer converts under the default ruleset; adjust the examples"
        raise ValueError(msg)
    routed = _routed_example(examples)
    erased = parse_event(b"L-10492", (examples / "lead-erased.json").read_bytes())
    if not isinstance(erased, LeadErased):  # pragma: no cover - a guard for whoever edits the example
        msg = f"{examples / 'lead-erased.json'} is not a lead.erased event"
        raise ValueError(msg)
    erasure = erase(state, erased, _EXAMPLE_DECIDED_AT)
    return {
        "lead-erasure.json": json.dumps(erasure, indent=2, ensure_ascii=False) + "\n",
        "decision-time.json": json.dumps(_time_example(examples), indent=2, ensure_ascii=False) + "\n",
        "decision.json": json.dumps(decided.decision, indent=2, ensure_ascii=False) + "\n",
        "opportunity.json": json.dumps(decided.opportunity, indent=2, ensure_ascii=False) + "\n",
        **{name: json.dumps(value, indent=2, ensure_ascii=False) + "\n" for name, value in routed.items()},
    }


def _decided_examples(engine: Engine, examples: Path, names: Sequence[str]) -> tuple[LeadState | None, Decided | None]:
    """The example lead's state after the lead events ``names``, in order, and the last one's decision."""
    state = None
    decided = None
    for name in names:
        raw = (examples / f"{name}.json").read_bytes()
        event = parse_event(json.loads(raw)["lead_id"].encode(), raw)
        if isinstance(event, LeadErased):  # pragma: no cover - a guard for whoever edits EXAMPLE_EVENTS
            msg = f"{name}.json is an erasure; the examples that convert are lead events"
            raise ValueError(msg)
        state, decided = decide(engine, state, event, _EXAMPLE_DECIDED_AT)
    return state, decided


_EXAMPLE_QUIET = """
  - id: recycle-quiet
    description: No activity in 30 days; recycle to Nurture.
    when: {field: days_since_last_activity, op: gt, value: 30}
    status: Nurture
"""


def _time_example(examples: Path) -> dict[str, Any]:
    """``decision-time.json``: the example lead after its first two events (not yet converted), gone quiet for 30
    days under the default ruleset with a recycling rule first: the decision time triggers."""
    text = default_ruleset_path().read_text(encoding="utf-8")
    text = text.replace("  - {name: Contacted}\n", "  - {name: Contacted}\n  - {name: Nurture}\n")
    text = text.replace("\nqualification:\n", "\nqualification:" + _EXAMPLE_QUIET)
    engine = Engine(parse_ruleset(text, "default.yaml + recycling"), load_model(default_model_path()))
    state, _ = _decided_examples(engine, examples, EXAMPLE_EVENTS[:2])
    if state is None or state.get("wake_at") is None:  # pragma: no cover - a guard for whoever edits the examples
        msg = "the example lead has no wake-up time under the default ruleset with a recycling rule"
        raise ValueError(msg)
    _, decided = decide_time(engine, state, _EXAMPLE_DECIDED_AT + 40 * 86400)
    return decided.decision


_EXAMPLE_ROUTING = """
routing:
  default: {queue: Inbound}
  rules:
    - id: all-to-ae-pool
      when: {field: points, op: gte, value: 0}
      to: {pool: account-executives}
  pools:
    - name: account-executives
      strategy: weighted_round_robin
      overflow: {queue: AE Overflow}
      sla: {accept_within_minutes: 30, then: next_member}
      members:
        - {id: 005-ANN, weight: 200}
        - {id: 005-BOB, weight: 100, active: false}
        - {id: 005-CY, weight: 100}
"""


def _routed_example(examples: Path) -> dict[str, Any]:
    """``routing-decision.json`` and ``opportunity-routed.json``: the example lead routed through a pool (judged at
    the fixed example time, a Sunday: no working hours are set, so every active member is available)."""
    # the default ruleset, with its converting rules leaving the owner to routing (a rule's own queue wins over it)
    text = default_ruleset_path().read_text(encoding="utf-8").replace("      queue: Inbound AEs\n", "")
    text += _EXAMPLE_ROUTING
    engine = Engine(parse_ruleset(text, "default.yaml + routing"), load_model(default_model_path()))
    state = None
    records = []
    for offset, name in enumerate(EXAMPLE_EVENTS):
        raw = (examples / f"{name}.json").read_bytes()
        records.append(Record(json.loads(raw)["lead_id"].encode(), raw, "leads", 0, offset))
    result = process_batch(engine, records, lambda _lead: state, _EXAMPLE_DECIDED_AT)
    if not result.route_requests:
        msg = f"the example lead in {examples} no longer converts under the default ruleset; adjust the examples"
        raise ValueError(msg)
    routing = engine.ruleset.routing
    requests = [Record(key, value, "route-requests", 0, i) for i, (key, value) in enumerate(result.route_requests)]
    out = route_batch(
        routing,
        requests,
        lambda _pool: None,
        lambda _r, _p: None,
        _EXAMPLE_DECIDED_AT,
        engine.ruleset.version,
        Target("queue", "Inbound"),
    )
    return {
        "routing-decision.json": json.loads(out.routing_decisions[0][1]),
        "opportunity-routed.json": json.loads(out.opportunities[0][1]),
    }


def write_schemas(directory: Path, *, check: bool = False) -> list[str]:
    """Write (or with ``check`` only compare) the schema files and the output examples; returns those that differ."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    outputs = {f"examples/{name}": text for name, text in render_examples(directory / "examples").items()}
    for name, text in {**render_schemas(), **outputs}.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            changed.append(name)
            if not check:
                path.write_text(text, encoding="utf-8")
    return changed
