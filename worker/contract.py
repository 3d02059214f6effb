"""Generate the JSON Schemas in ``schemas/`` from the pydantic models (the source of truth)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from worker.events import DeadLetterHeaders, Decision, LeadEvent, OpportunityCreated

__all__ = ["SCHEMAS", "render_schemas", "write_schemas"]

SCHEMAS: dict[str, Any] = {
    "lead-event.schema.json": TypeAdapter(LeadEvent),
    "decision.schema.json": Decision,
    "opportunity.schema.json": OpportunityCreated,
    "dead-letter-headers.schema.json": DeadLetterHeaders,
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


def write_schemas(directory: Path, *, check: bool = False) -> list[str]:
    """Write (or with ``check`` only compare) the schema files; returns the names that differ."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in render_schemas().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            changed.append(name)
            if not check:
                path.write_text(text, encoding="utf-8")
    return changed
