"""A closed loop for ``leadflow export-training``: leads with known fields, a "live" model M0 trained on them with
``train --data``, the worker's pure core deciding their events with M0, and the sales side closing the
opportunities with the leads' known outcomes. Exporting what came out must give M0's training rows back.

Every lead of the CRM export ``crm.csv`` (the rows M0 learns from) reaches its known outcome in the stream:
converted and won (outcome Yes), converted and lost, or never converted and gone quiet before the cutoff (No).
Around them, what the export must not be fooled by: leads whose fields change after their conversion (the export
wants the facts the worker converted on), an event sent twice with the same id but other fields (the worker
ignores it), an open opportunity and a lead still active after the cutoff (no outcome yet), a replayed feedback
event, feedback for an opportunity nobody converted, and the sales side's ``opportunity.accepted``.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from worker.batch import Record, process_batch
from worker.core import Engine
from worker.rules import parse_ruleset
from worker.scoring import Model, load_model
from worker.scoring.training import train_table
from worker.scoring.training.train import write_model

__all__ = ["CUTOFF", "MAPPING", "RULES", "Loop", "build_loop", "decide_all"]

T0 = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
CUTOFF = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
"""Every lead of the CRM export had its last event before it; the lead still active has one after."""

RULES = """
version: "export-1"
conversion:
  queue: Inbound AEs
scoring:
  - id: demo
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 50
qualification:
  - id: hot
    when: {field: points, op: gte, value: 50}
    status: Qualified
    convert: true
"""

MAPPING = """
name: loop
outcome: {column: Converted, positive: ["Yes"]}
id: Lead ID
columns:
  Origin: {field: custom.origin, kind: categorical}
  Source: lead_source
  Visits: {field: custom.visits, kind: numeric, bins: 4}
  Newsletter: {field: custom.newsletter, kind: yes_no}
  Employees: number_of_employees
  Email: email
exclude: [Notes]
interactions:
  - [Origin, Newsletter]
rare: {min_share: 0.0, min_count: 8}
evaluation: {holdout: 0.3, seed: 3}
model: {C: 0.3}
"""
"""The live model's mapping; C is fixed (a number) so that training does not choose it, now or with a grid."""

HEADER = ["Lead ID", "Origin", "Source", "Visits", "Newsletter", "Employees", "Email", "Notes", "Converted"]


@dataclass
class Loop:
    crm: Path  # the CRM export M0 was trained on
    mapping: Path
    model_path: Path
    model: Model
    rules: Path
    labels: dict[str, int]  # lead id -> 1 won / 0 (lost or never converted), for the leads of crm.csv
    events: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[bytes] = field(default_factory=list)
    opportunities: list[bytes] = field(default_factory=list)
    feedback: list[bytes] = field(default_factory=list)
    changed_after_conversion: list[str] = field(default_factory=list)
    live: dict[tuple[str, str], float] = field(default_factory=dict)  # (lead, event) -> score decided

    def write_files(self, where: Path) -> dict[str, Path]:
        files = {
            "leads": (orjson.dumps(e) for e in self.events),
            "decisions": iter(self.decisions),
            "opportunities": iter(self.opportunities),
            "feedback": iter(self.feedback),
        }
        out = {}
        for name, lines in files.items():
            path = out[name] = where / f"{name}.jsonl"
            path.write_bytes(b"".join(line + b"\n" for line in lines))
        return out


def _lead_fields(rng: random.Random) -> tuple[dict[str, str], dict[str, Any], float]:
    """One lead: its CRM cells, the same as lead fields sent by a producer, and its log-odds."""
    origin = rng.choice(["API", "Form", "Form", "Import", "Select"])
    source = rng.choice(["Web", "Referral", "Event", ""])
    visits = rng.choice([None, *range(9), 2.5, 7.25])
    newsletter = rng.choice(["Yes", "No", ""])
    employees = rng.choice([None, 12, 40, 250, 1200, 8000])
    email = rng.choice(["ann@gmail.com", "bo@acme.example", "", "cy@globex.example", "di@yahoo.com"])
    cells = {
        "Origin": origin,
        "Source": source,
        "Visits": "" if visits is None else str(visits),
        "Newsletter": newsletter,
        "Employees": "" if employees is None else str(employees),
        "Email": email,
        "Notes": rng.choice(["call back", ""]),
    }
    custom: dict[str, Any] = {"origin": origin}
    if visits is not None:
        custom["visits"] = visits
    if newsletter:
        custom["newsletter"] = newsletter
    fields: dict[str, Any] = {"first_name": "Pat", "custom": custom}
    if source:
        fields["lead_source"] = source
    if employees is not None:
        fields["number_of_employees"] = employees
    if email:
        fields["email"] = email
    z = -0.6 + {"API": 1.0, "Form": -0.2, "Import": -0.9}.get(origin, 0.0) + 0.3 * (visits or 0) - 0.8
    z += (0.7 if source == "Referral" else 0.0) + (0.5 if newsletter == "Yes" else 0.0)
    z += -0.6 if "gmail" in email or "yahoo" in email else 0.2
    return cells, fields, z


def _event(lead_id: str, event_id: str, at: dt.datetime, **body: Any) -> dict[str, Any]:
    kind = "lead.activity" if "activity" in body else "lead.upserted"
    return {"event_id": event_id, "event_type": kind, "occurred_at": at.isoformat(), "lead_id": lead_id, **body}


def _feedback(kind: str, opportunity_id: str, event_id: str, at: dt.datetime, **body: Any) -> bytes:
    return orjson.dumps(
        {"event_type": kind, "opportunity_id": opportunity_id, "event_id": event_id, "occurred_at": at.isoformat()}
        | body
    )


def decide_all(model: Model, rules: str, events: list[dict[str, Any]]) -> tuple[list[bytes], list[bytes]]:
    """The worker's pure core over the events, in batches, state kept between them: decisions and opportunities."""
    engine = Engine(parse_ruleset(rules, "export.yaml"), model)
    records = [Record(e["lead_id"].encode(), orjson.dumps(e), "leads", 0, i) for i, e in enumerate(events)]
    store: dict[str, bytes] = {}
    decisions: list[bytes] = []
    opportunities: list[bytes] = []
    for start in range(0, len(records), 64):
        result = process_batch(engine, records[start : start + 64], store.get, 1_800_000_000.0)
        store.update(result.states)
        decisions += [value for _, value in result.decisions]
        opportunities += [value for _, value in result.opportunities]
    return decisions, opportunities


def build_loop(where: Path, n: int = 260, seed: int = 11) -> Loop:
    rng = random.Random(seed)
    leads = []
    for i in range(n):
        cells, fields, z = _lead_fields(rng)
        leads.append((f"L{i:04d}", cells, fields, int(rng.random() < 1 / (1 + math.exp(-z)))))
    crm = where / "crm.csv"
    with crm.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for lead_id, cells, _, label in leads:  # in the order of their events: the export's order too
            writer.writerow([lead_id, *(cells[h] for h in HEADER[1:-1]), "Yes" if label else "No"])
    mapping = where / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    model_path = where / "live-model.json"
    write_model(train_table(crm, mapping).model, model_path)
    model = load_model(model_path)  # M0, the live model, as the worker loads it
    rules = where / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    loop = Loop(crm, mapping, model_path, model, rules, {lead_id: label for lead_id, _, _, label in leads})

    plan: list[tuple[str, str]] = []  # (lead id, how it ends)
    for lead_id, _, fields, label in leads:
        k = int(lead_id[1:])
        at = T0 + dt.timedelta(hours=6 * k)
        ends = "won" if label else rng.choice(["lost", "quiet"])
        plan.append((lead_id, ends))
        loop.events.append(_event(lead_id, f"{lead_id}-1", at, lead=fields))
        loop.events.append(
            _event(lead_id, f"{lead_id}-2", at + dt.timedelta(minutes=5), activity={"type": "page_view"})
        )
        if k % 17 == 0:  # the same event id again, other fields: the worker ignores it, so must the export
            loop.events.append(
                _event(lead_id, f"{lead_id}-1", at + dt.timedelta(minutes=7), lead={"lead_source": "Spam"})
            )
        if ends == "quiet":
            continue
        loop.events.append(
            _event(lead_id, f"{lead_id}-3", at + dt.timedelta(minutes=9), activity={"type": "demo_request"})
        )
        if k % 3 == 0:  # after the conversion: other fields the model reads, not what it converted on
            loop.changed_after_conversion.append(lead_id)
            later = {"lead_source": "Partner", "custom": {"origin": "Import", "visits": 40}}
            loop.events.append(_event(lead_id, f"{lead_id}-4", at + dt.timedelta(minutes=30), lead=later))
    end = CUTOFF + dt.timedelta(days=20)
    loop.events.append(_event("X-open", "X-open-1", T0, lead={"lead_source": "Web"}))
    loop.events.append(_event("X-open", "X-open-2", T0, activity={"type": "demo_request"}))
    loop.events.append(_event("X-active", "X-active-1", T0, lead={"lead_source": "Web"}))
    loop.events.append(_event("X-active", "X-active-2", end, activity={"type": "page_view"}))

    loop.decisions, loop.opportunities = decide_all(model, RULES, loop.events)
    for raw in loop.decisions:
        decision = orjson.loads(raw)
        loop.live[(decision["lead_id"], decision["event_id"])] = decision["score"]
    by_lead = {orjson.loads(o)["lead_id"]: orjson.loads(o)["opportunity_id"] for o in loop.opportunities}
    for i, (lead_id, ends) in enumerate(plan):
        if ends == "quiet":
            continue
        opp = by_lead[lead_id]
        at = T0 + dt.timedelta(hours=6 * int(lead_id[1:]), days=10)
        loop.feedback.append(orjson.dumps({"event_type": "opportunity.accepted", "opportunity_id": opp}))
        loop.feedback.append(_feedback("opportunity.updated", opp, "f1", at, stage_name="Proposal/Price Quote"))
        if i % 4 == 0:  # closed by moving to the closed stage
            stage = "Closed Won" if ends == "won" else "Closed Lost"
            loop.feedback.append(_feedback("opportunity.updated", opp, "f2", at, stage_name=stage))
        else:
            loop.feedback.append(_feedback("opportunity.closed", opp, "f2", at, won=ends == "won", amount=900.0))
        if i % 5 == 0:  # replayed: counted once
            loop.feedback.append(_feedback("opportunity.closed", opp, "f2", at, won=ends == "won", amount=900.0))
    loop.feedback.append(_feedback("opportunity.updated", by_lead["X-open"], "f1", T0, stage_name="Negotiation/Review"))
    loop.feedback.append(_feedback("opportunity.closed", "opp-nobody-converted", "f1", T0, won=True))
    return loop
