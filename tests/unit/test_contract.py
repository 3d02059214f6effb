"""schemas/ is generated from the pydantic models: it must not drift, and every example must validate."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import TypeAdapter

from worker.lead.events import LeadsRecord
from worker.routing import AccountIndex
from worker.routing.sla import accepted_notice
from worker.stream.accounts import decode_account
from worker.tools.schema import render_examples, render_schemas

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = sorted((SCHEMAS / "examples").glob("*.json"))
SCHEMA_OF = {
    "lead-upserted": "lead-event.schema.json",
    "lead-activity": "lead-event.schema.json",
    "lead-activity-demo-request": "lead-event.schema.json",
    "lead-erased": "lead-event.schema.json",
    "lead-erasure": "lead-erasure.schema.json",
    "lead-matched": "lead-event.schema.json",
    "lead-merged": "lead-merged.schema.json",
    "decision": "decision.schema.json",
    "decision-time": "decision.schema.json",
    "opportunity": "opportunity.schema.json",
    "opportunity-routed": "opportunity.schema.json",
    "routing-decision": "routing-decision.schema.json",
    "opportunity-accepted": "opportunity-accepted.schema.json",
    "opportunity-updated": "opportunity-updated.schema.json",
    "opportunity-closed": "opportunity-closed.schema.json",
    "account": "account.schema.json",
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


@pytest.mark.parametrize(
    "path", [p for p in EXAMPLES if SCHEMA_OF[p.stem] == "lead-event.schema.json"], ids=lambda p: p.stem
)
def test_lead_examples_are_accepted_by_the_worker(path: Path) -> None:
    TypeAdapter(LeadsRecord).validate_json(path.read_bytes())


def test_the_feedback_and_account_examples_are_accepted_by_the_worker() -> None:
    key, notice = accepted_notice(b"any", (SCHEMAS / "examples" / "opportunity-accepted.json").read_bytes())
    assert key == b"opp-c1432561a9c45cb5a55357ad09e6b5b6"
    assert json.loads(notice)["kind"] == "accepted"
    account_id, account = decode_account(b"001-NORTHWIND", (SCHEMAS / "examples" / "account.json").read_bytes())
    assert account is not None
    assert account["owner_id"] == "005-KIM"
    index = AccountIndex()
    index.put(account_id, account)
    match = index.match("kim@northwind-traders.example", None, None)
    assert match is not None
    assert match.owner_id == "005-KIM"


@pytest.mark.parametrize(
    "name", ["decision.json", "opportunity.json", "routing-decision.json", "opportunity-routed.json"]
)
def test_output_examples_are_what_the_core_makes_of_the_lead_examples(name: str) -> None:
    on_disk = (SCHEMAS / "examples" / name).read_text(encoding="utf-8")
    assert on_disk == render_examples(SCHEMAS / "examples")[name], "stale: run 'leadflow schema --out schemas'"


def test_the_readme_shows_the_current_examples() -> None:
    readme = (SCHEMAS.parent / "README.md").read_text(encoding="utf-8")
    decision = json.loads((SCHEMAS / "examples" / "decision.json").read_text(encoding="utf-8"))
    opportunity = json.loads((SCHEMAS / "examples" / "opportunity.json").read_text(encoding="utf-8"))
    for value in (decision["decision_id"], decision["ruleset_version"], decision["model_version"]):
        assert value in readme
    assert f'"stage_name": "{opportunity["stage_name"]}"' in readme
    assert f'"amount": {opportunity["amount"]}' in readme
    routed = json.loads((SCHEMAS / "examples" / "routing-decision.json").read_text(encoding="utf-8"))
    assert f'"routing_id": "{routed["routing_id"]}"' in readme
    for candidate in routed["candidates"]:
        shown = json.dumps(candidate)
        assert shown in readme, f"README: the routing decision's candidate {shown} is stale"
