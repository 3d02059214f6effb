"""``rules explain``: every rule with every test, the actual values, and the decision the core made."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from tests.builders import activity, upsert
from tests.unit.tools.rules.helpers import leaf, q, ruleset_text, scoring_rule
from worker.cli import main
from worker.core import Engine, decide
from worker.scoring import default_model_path, load_model
from worker.tools.rules import fixed_score, parse_for_tools

RULES = ruleset_text(
    [
        scoring_rule(leaf("number_of_employees", "gte", 1000), "big", 20),
        scoring_rule(leaf("activity.demo_request.count", "gte", 1), "demo", 40),
        {"id": "views", "per": "activity.page_view.count", "points": 2, "max": 6},
    ],
    [
        q("unsubscribed", leaf("activity.unsubscribe.count", "gte", 1), "Unqualified"),
        q(
            "hot",
            {"all": [leaf("points", "gte", 60), {"not": leaf("country", "in", ["US", "CA"])}]},
            "Qualified",
            convert=True,
        ),
        q("warm", leaf("points", "gte", 20)),
    ],
)
LEAD = """
profile: {company: Acme, number_of_employees: 1200, country: DE}
activity:
  page_view: {count: 5, days_ago: 1}
status: Open
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "lead.yaml").write_text(LEAD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _explain(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["rules", "explain", "--rules", "rules.yaml", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_shows_every_rule_and_test(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _explain(capsys, "--lead", "lead.yaml", "--event", "{activity: demo_request}", "--score", "0.5")
    assert code == 0
    assert out.splitlines() == [
        "lead explained-lead: activity demo_request at 2026-01-15T12:00:00+00:00",
        "score 0.5, points 66, status Open -> Qualified (action: converted)",
        "",
        "scoring rules: every rule that matches adds its points",
        "    +20  big  line 3",
        "        yes number_of_employees gte 1000   (is 1200)",
        "    +40  demo  line 9",
        "        yes activity.demo_request.count gte 1   (is 1)",
        "     +6  views (per activity.page_view.count)  line 15",
        "",
        "qualification rules: tried from the top, the first that matches decides",
        "  no     unsubscribed -> Unqualified  line 20",
        "        no  activity.unsubscribe.count gte 1   (is missing)",
        "  MATCH  hot -> Qualified, converts  line 26",
        "        yes all of:",
        "        yes   points gte 60   (is 66.0)",
        "        yes   not:",
        '        no      country in ["US", "CA"]   (is "DE")',
        "  skip   warm -> Contacted  line 40 (not tried: an earlier rule matched)",
    ]


def test_explain_json_agrees_with_the_core(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _explain(capsys, "--lead", "lead.yaml", "--score", "0.5", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["matched_rules"] == ["big", "views", "warm"]
    assert (data["points"], data["status"], data["action"]) == (26.0, "Contacted", "status_changed")
    assert [e["matched"] for e in data["scoring"]] == [True, False, True]
    assert [(e["tried"], e["matched"]) for e in data["qualification"]] == [(True, False), (True, False), (True, True)]
    hot = data["qualification"][1]["condition"]
    assert hot["result"] is False
    assert hot["all"][0] == {"field": "points", "actual": 26.0, "op": "gte", "expected": 60, "result": False}


def test_explain_replays_a_file_of_events(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = [
        upsert("e1", "2026-03-01T09:00:00Z", lead_id="L7", number_of_employees=5000, country="US"),
        activity("e2", "demo_request", "2026-03-02T09:00:00Z", lead_id="L7"),
    ]
    lines = b"\n".join(orjson.dumps(e.model_dump(mode="json")) for e in events)
    (files / "events.jsonl").write_bytes(lines + b"\n")
    code, out, _ = _explain(capsys, "--lead", "events.jsonl", "--score", "0.4")
    assert code == 0
    assert out.splitlines()[:2] == [
        "lead L7: activity demo_request at 2026-03-02T09:00:00+00:00",
        "score 0.4, points 60, status Contacted -> Contacted (action: none)",
    ]
    model = fixed_score(load_model(default_model_path()), 0.4)
    engine = Engine(parse_for_tools(RULES, "rules.yaml").ruleset, model)
    state, _ = decide(engine, None, events[0], 0.0)
    _, decided = decide(engine, state, events[1], 0.0)
    assert decided.decision["matched_rules"] == ["big", "demo", "warm"]
    assert '        yes     country in ["US", "CA"]   (is "US")' in out.splitlines()


def test_explain_a_stored_state_with_a_contract_event(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = Engine(parse_for_tools(RULES, "rules.yaml").ruleset, load_model(default_model_path()))
    state, _ = decide(engine, None, upsert("e1", lead_id="L9", number_of_employees=10), 0.0)
    (files / "state.json").write_bytes(orjson.dumps(state))
    event = activity("e2", "unsubscribe", lead_id="other").model_dump(mode="json")
    (files / "event.json").write_text(json.dumps(event), encoding="utf-8")
    code, out, _ = _explain(capsys, "--lead", "state.json", "--event", "event.json")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("lead L9: activity unsubscribe at ")
    assert "-> Unqualified (action: disqualified)" in lines[1]
    assert "  MATCH  unsubscribed -> Unqualified  line 20" in lines


def test_an_already_converted_lead_is_said_to_keep_its_status(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (files / "lead.yaml").write_text("status: Qualified\nconverted: true\n", encoding="utf-8")
    code, out, _ = _explain(capsys, "--lead", "lead.yaml", "--event", "{activity: unsubscribe}", "--score", "0.1")
    assert code == 0
    assert out.splitlines()[-1] == "the lead was already converted: it keeps its status whatever the rules say"
    (files / "lead.yaml").write_text("profile: {company: Acme}\n", encoding="utf-8")
    code, out, _ = _explain(capsys, "--lead", "lead.yaml", "--score", "0.1")
    assert out.splitlines()[0] == "lead explained-lead: profile update (nothing) at 2026-01-15T12:00:00+00:00"
    assert out.splitlines()[-1] == "no qualification rule matched: the status stays as it was"


@pytest.mark.parametrize(
    ("lead", "argv", "message"),
    [
        ("profile: {titel: CTO}\n", [], "lead.yaml:1: profile.titel: unknown lead field 'titel'"),
        ("activity: {page_view: 0}\n", [], "activity.page_view: an activity count is 1 or more"),
        ("- 1\n", [], "a lead must be a mapping of keys, got [1]"),
        ("{a: [}\n", [], "the lead file 'lead.yaml' is not YAML or JSON"),
        ('{"event_id": "e1"}\n{"event_id": "e2"}\n', [], "lead.yaml:1: not a lead event: "),
        ("{}\n", ["--event", "{activty: call}"], "--event: activty: unknown key 'activty' in an event"),
        ("{}\n", ["--event", "{}"], "--event: an event is either 'upsert: {fields...}' or 'activity: <type>'"),
        ("{}\n", ["--event", '{"event_type": "lead.activity"}'], "--event is not a lead event: Field required"),
        ("{}\n", ["--score", "7"], "--score needs a probability from 0 to 1, got 7.0"),
    ],
)
def test_explain_errors_name_the_input(
    files: Path, capsys: pytest.CaptureFixture[str], lead: str, argv: list[str], message: str
) -> None:
    (files / "lead.yaml").write_text(lead, encoding="utf-8")
    code, out, err = _explain(capsys, "--lead", "lead.yaml", *argv)
    assert code == 2
    assert out == ""
    assert message in err


def test_explain_a_missing_lead_file(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _explain(capsys, "--lead", "nope.yaml")
    assert code == 2
    assert "cannot read the lead file 'nope.yaml'" in err


def test_decayed_points_are_shown_as_added(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = ruleset_text(
        [scoring_rule(leaf("activity.demo_request.count", "gte", 1), "demo", 40)], decay={"percent": 50, "days": 30}
    )
    (files / "rules.yaml").write_text(rules, encoding="utf-8")
    (files / "lead.yaml").write_text("activity: {demo_request: {count: 1, days_ago: 30}}\n", encoding="utf-8")
    code, out, _ = _explain(capsys, "--lead", "lead.yaml", "--score", "0.1")
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "score 0.1, points 20, status Open -> Open (action: none)"
    assert lines[4] == "    +20  demo  line 6"


def test_explain_says_where_routing_sends_the_new_opportunity(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routing = """
routing:
  default: {queue: Inbound}
  territories:
    - id: germany
      country: [DE]
      to: {pool: dach}
  pools:
    - name: dach
      members: [{id: ann}]
"""
    (files / "rules.yaml").write_text(RULES + routing, encoding="utf-8")
    code, out, _ = _explain(capsys, "--lead", "lead.yaml", "--event", "{activity: demo_request}", "--score", "0.5")
    assert code == 0
    assert out.splitlines()[-1] == (
        "routing: the opportunity goes to pool 'dach', by territory 'germany' (a member is picked by the pool when "
        "it runs)"
    )
    code, out, _ = _explain(capsys, "--lead", "lead.yaml", "--score", "0.5")
    assert "routing:" not in out  # nothing converts, nothing is routed
