"""A small CRM export with a known signal, placeholders, a rare category and a planted leaky column."""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from pathlib import Path
from typing import Any

import pytest

from worker.core import Engine, decide
from worker.lead.events import LeadFields, LeadUpserted
from worker.rules import default_ruleset_path, load_ruleset
from worker.scoring import Model
from worker.scoring.training import TableReport, parse_mapping, train_table

HEADER = ["Lead ID", "Created", "Origin", "Source", "Visits", "Newsletter", "Sales Tag", "Notes", "Converted"]

MAPPING = """
name: tiny
outcome: {column: Converted, positive: ["Yes"]}
id: Lead ID
columns:
  Origin: {field: custom.origin, kind: categorical}
  Source: lead_source
  Visits: {field: custom.visits, kind: numeric, bins: 4}
  Newsletter: {field: custom.newsletter, kind: yes_no}
  Sales Tag: {field: custom.sales_tag, kind: categorical}
exclude: [Notes, Created]
rare: {min_share: 0.0, min_count: 10}
evaluation: {holdout: 0.3, seed: 1, splits: 3}
"""


def write_export(path: Path, n: int = 600, seed: int = 5) -> Path:
    """Write the export; ``Sales Tag`` is set from the outcome (95 %), as a tag recorded after the sale would be."""
    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(n):
            origin = rng.choice(["API", "Form", "Form", "Import"]) if i >= 3 else "Partner Portal"  # 3 rows: rare
            if rng.random() < 0.1:
                origin = "Select"  # the form's placeholder: missing
            source = rng.choice(["Web", "Referral", "Event", ""])
            visits = rng.choice(["", *[str(v) for v in range(12)]])
            newsletter = rng.choice(["Yes", "No"])
            z = -0.8 + {"API": 0.8, "Form": -0.2, "Import": -1.0}.get(origin, 0.0)
            z += 0.25 * (int(visits) if visits else 2) - 0.7 + (0.6 if source == "Referral" else 0.0)
            z += 0.5 if newsletter == "Yes" else 0.0
            converted = rng.random() < 1 / (1 + math.exp(-z))
            tag = ("Won" if converted else "Lost") if rng.random() < 0.95 else rng.choice(["Won", "Lost"])
            created = (start + dt.timedelta(hours=7 * i)).date().isoformat()
            notes = rng.choice(["call back", "N/A", ""])
            row = [f"P{i:04d}", created, origin, source, visits, newsletter, tag, notes, "Yes" if converted else "No"]
            writer.writerow(row)
    return path


def train_export(factory: pytest.TempPathFactory, mapping: str) -> tuple[TableReport, Path]:
    """A model trained with ``mapping`` (YAML text) on a fresh export, and the folder its files were written to."""
    export = write_export(factory.mktemp("export") / "leads.csv")
    out = factory.mktemp("model")
    return train_table(export, parse_mapping(mapping), out, progress=False), out


def served_score(model: Model, fields: dict[str, Any], lead_id: str) -> float:
    """The score the worker's core decides for a ``lead.upserted`` event carrying ``fields``."""
    engine = Engine(ruleset=load_ruleset(default_ruleset_path()), model=model)
    event = LeadUpserted(
        event_id=f"e-{lead_id}",
        occurred_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        lead_id=lead_id,
        event_type="lead.upserted",
        lead=LeadFields(**fields),
    )
    _, decided = decide(engine, None, event, decided_at=0.0)
    score: float = decided.decision["score"]
    return score
