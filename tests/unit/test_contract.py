"""schemas/ is generated from the pydantic models: it must not drift, and every example must validate."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import TypeAdapter

from worker.contract import render_schemas
from worker.events import LeadEvent

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = sorted((SCHEMAS / "examples").glob("*.json"))
SCHEMA_OF = {
    "lead-upserted": "lead-event.schema.json",
    "lead-activity": "lead-event.schema.json",
    "decision": "decision.schema.json",
    "opportunity": "opportunity.schema.json",
}


@pytest.mark.parametrize("name", sorted(render_schemas()))
def test_schema_files_match_the_models(name: str) -> None:
    on_disk = (SCHEMAS / name).read_text(encoding="utf-8")
    assert on_disk == render_schemas()[name], f"schemas/{name} is stale: run 'leadflow schema --out schemas'"


def test_there_is_an_example_of_every_topic() -> None:
    assert {p.stem for p in EXAMPLES} >= set(SCHEMA_OF)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_validate_against_their_schema(path: Path) -> None:
    schema = json.loads((SCHEMAS / SCHEMA_OF[path.stem]).read_text(encoding="utf-8"))
    instance = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(instance)


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.stem.startswith("lead-")], ids=lambda p: p.stem)
def test_lead_examples_are_accepted_by_the_worker(path: Path) -> None:
    TypeAdapter(LeadEvent).validate_json(path.read_bytes())
