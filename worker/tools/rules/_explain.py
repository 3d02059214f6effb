"""``leadflow rules explain``: one decision, rule by rule: what matched, what did not, and which test decided it.

The decision is made by the real core (:func:`worker.core.decide`); the facts it evaluated the rules on are
recorded and every test of every condition is evaluated again on them to show its actual value and result.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from worker.conditions import Source, read_yaml
from worker.core import Engine, decide
from worker.exceptions import ConfigError
from worker.lead.events import LeadActivity, LeadEvent, LeadUpserted
from worker.lead.state import LeadState
from worker.rules import QualificationRule, RuleOutcome, Ruleset, ScoringRule
from worker.tools.rules._lead import (
    DEFAULT_AT,
    EventDoc,
    GivenDoc,
    activities,
    build_event,
    build_state,
    check_fields,
    validate,
)
from worker.tools.rules._source import ParsedRuleset
from worker.tools.rules._symbolic import All, AnyOf, Leaf, Node, Not, describe_value

__all__ = ["explain", "format_explanation", "read_event", "read_lead", "to_json"]

_events: TypeAdapter[LeadUpserted | LeadActivity] = TypeAdapter(LeadEvent)
_LEAD_ID = "explained-lead"


@dataclass(frozen=True, slots=True, eq=False)
class _Recording(Ruleset):
    """The ruleset, remembering the facts it was evaluated on (those the core built for the decision)."""

    seen: list[dict[str, object]] = field(default_factory=list)

    def evaluate(self, facts: dict[str, object]) -> RuleOutcome:
        outcome = Ruleset.evaluate(self, facts)
        self.seen.append(dict(facts))
        return outcome


def _recording(ruleset: Ruleset) -> _Recording:
    given = {f.name: getattr(ruleset, f.name) for f in dataclasses.fields(Ruleset) if f.init}
    return _Recording(**given)


# --- reading the lead and the event -----------------------------------------------------------------------------


def _problems(src: Source, what: str) -> ConfigError:
    lines = "\n".join(f"  {p}" for p in src.problems)
    return ConfigError(f"{what} is not valid:\n{lines}")


def read_lead(path: Path) -> tuple[LeadState | None, list[LeadUpserted | LeadActivity]]:
    """A lead file: JSON lines of its events, a stored state (JSON), or a hand-written lead (YAML/JSON, the
    ``given`` form of test cases). Returns the state (None for events) and the events."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read the lead file {str(path)!r}: {getattr(exc, 'strerror', None) or exc}"
        raise ConfigError(msg) from exc
    lines = [line for line in text.splitlines() if line.strip()]
    if (len(lines) > 1 and all(line.lstrip().startswith("{") for line in lines)) or path.suffix == ".jsonl":
        return None, [_event_line(line, path, n) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    src = Source(str(path))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"the lead file {str(path)!r} is not YAML or JSON: {exc}"
        raise ConfigError(msg) from exc
    if data is not None:
        data = read_yaml(text, src)  # the same data, with the line of every key for the messages
    if isinstance(data, dict) and "event_type" in data:
        return None, [_event_line(text, path, 1)]
    if isinstance(data, dict) and "lead_id" in data and "v" in data:  # a state as the worker stores it
        return data, []
    given = validate(GivenDoc, data, (), src, "a lead")
    profile = check_fields(given.profile if given is not None else {}, ("profile",), src, nested=False)
    acts = None if given is None else activities(given, ("activity",), src)
    if src.problems or given is None or profile is None or acts is None:
        raise _problems(src, f"the lead file {str(path)!r}")
    return build_state(given, profile, acts, _LEAD_ID, DEFAULT_AT), []


def _event_line(line: str, path: Path, number: int) -> LeadUpserted | LeadActivity:
    try:
        return _events.validate_json(line)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = f"{path}:{number}: not a lead event: {where}: {first['msg']}"
        raise ConfigError(msg) from None


def read_event(text: str, lead_id: str) -> LeadUpserted | LeadActivity:
    """``--event``: a file or inline text, either a contract event (JSON) or the short test-case form."""
    candidate = Path(text)
    if len(text) < 1000 and "\n" not in text and candidate.is_file():
        text = candidate.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        msg = f"--event is not YAML or JSON: {exc}"
        raise ConfigError(msg) from exc
    if isinstance(data, dict) and "event_type" in data:
        try:
            return _events.validate_python({"lead_id": lead_id, **data})
        except ValidationError as exc:
            msg = f"--event is not a lead event: {exc.errors(include_url=False)[0]['msg']}"
            raise ConfigError(msg) from None
    src = Source("--event")
    doc = validate(EventDoc, data, (), src, "an event")
    upsert = None
    if doc is not None:
        if (doc.upsert is None) == (doc.activity is None):
            src.add((), "an event is either 'upsert: {fields...}' or 'activity: <type>', exactly one")
        elif doc.upsert is not None:
            upsert = check_fields(doc.upsert, ("upsert",), src, nested=True)
    if src.problems or doc is None:
        raise _problems(src, "--event")
    return build_event(doc, upsert, lead_id, "explained-event")


# --- explaining -------------------------------------------------------------------------------------------------


def _value(value: object) -> str:
    return "missing" if value is None else describe_value(value)


def _node(node: Node, facts: Mapping[str, object]) -> dict[str, Any]:
    if isinstance(node, Leaf):
        expected = None if node.value is None else node.value
        return {
            "field": node.field,
            "actual": facts.get(node.field),
            "op": node.op,
            "expected": expected,
            "result": bool(node.condition(facts)),
        }
    if isinstance(node, Not):
        inner = _node(node.inner, facts)
        return {"not": inner, "result": not inner["result"]}
    parts = [_node(p, facts) for p in node.parts]
    key, result = ("all", all(p["result"] for p in parts)) if isinstance(node, All) else ("any", False)
    if isinstance(node, AnyOf):
        result = any(p["result"] for p in parts)
    return {key: parts, "result": result}


def _scoring_points(ruleset: Ruleset, rule: ScoringRule, facts: Mapping[str, object]) -> float:
    """What ``rule`` alone adds for ``facts``: the ruleset evaluated with only that rule (per, max, decay...)."""
    alone = dataclasses.replace(ruleset, scoring_rules=(rule,), qualification_rules=())
    return alone.evaluate(dict(facts)).points


def explain(
    parsed: ParsedRuleset,
    engine: Engine,
    state: LeadState | None,
    history: list[LeadUpserted | LeadActivity],
    event: LeadUpserted | LeadActivity | None,
) -> dict[str, Any]:
    """The decision for ``event`` (default: the last of ``history``, or a profile update that changes nothing)
    after ``history``, starting from ``state``; with every rule's tests and results."""
    if event is None and history:
        history, event = history[:-1], history[-1]
    lead_id = (state or {}).get("lead_id") or (event.lead_id if event is not None else None) or _LEAD_ID
    for past in history:
        state, _ = decide(engine, state, past, past.occurred_at.timestamp())
    if event is None:
        at = (state or {}).get("updated_at")
        when = DEFAULT_AT if at is None else DEFAULT_AT.fromtimestamp(float(at), DEFAULT_AT.tzinfo)
        event = build_event(EventDoc(upsert={}, at=when), {}, lead_id, "explained-event")
    elif event.lead_id != lead_id and state is not None:
        event = event.model_copy(update={"lead_id": lead_id})
    recording = _recording(engine.ruleset)
    was_converted = bool(state and state.get("converted"))
    _, decided = decide(
        dataclasses.replace(engine, ruleset=recording), copy.deepcopy(state), event, event.occurred_at.timestamp()
    )
    decision = decided.decision
    facts: dict[str, object] = recording.seen[-1] if recording.seen else {}
    matched = set(decision["matched_rules"])
    scoring = [
        {
            "rule": view.id,
            "line": view.line,
            "matched": view.id in matched,
            "points": _scoring_points(engine.ruleset, view.rule, facts) if view.id in matched else 0.0,
            "per": getattr(view.rule, "per", None),
            "condition": None if view.when is None else _node(view.when, facts),
        }
        for view in parsed.scoring
        if isinstance(view.rule, ScoringRule)
    ]
    qualification: list[dict[str, Any]] = []
    decided_by = None
    for view in parsed.qualification:
        rule = view.rule
        if not isinstance(rule, QualificationRule):
            continue
        entry = {
            "rule": view.id,
            "line": view.line,
            "status": rule.status,
            "convert": rule.convert,
            "tried": decided_by is None,
            "matched": decided_by is None and view.id in matched,
            "condition": None if view.when is None or decided_by is not None else _node(view.when, facts),
        }
        if entry["matched"]:
            decided_by = view.id
        qualification.append(entry)
    return {
        "lead_id": decision["lead_id"],
        "event": _describe_event(event),
        "score": decision["score"],
        "points": decision["points"],
        "previous_status": decision["previous_status"],
        "status": decision["status"],
        "action": decision["action"],
        "matched_rules": decision["matched_rules"],
        "already_converted": was_converted,
        "scoring": scoring,
        "qualification": qualification,
        "routing": _routing(decided),
    }


def _routing(decided: Any) -> dict[str, Any] | None:
    """Where routing sends the lead or its new opportunity (without known accounts: none are loaded here)."""
    if decided.routed is not None:
        routed = decided.routed
        return {"subject": routed["subject"], "via": routed["via"], "ref": routed["ref"], "target": routed["target"]}
    if decided.route_request is not None:
        message = decided.route_request.message
        route = message["route"]
        subject = message.get("subject", "opportunity")
        return {"subject": subject, "via": route["via"], "ref": route["ref"], "target": route["target"]}
    return None


def _describe_event(event: LeadUpserted | LeadActivity) -> str:
    at = event.occurred_at.isoformat()
    if isinstance(event, LeadActivity):
        count = f" x{event.activity.count}" if event.activity.count != 1 else ""
        return f"activity {event.activity.type}{count} at {at}"
    changed = ", ".join(sorted(event.lead.model_fields_set)) or "nothing"
    return f"profile update ({changed}) at {at}"


# --- text ---------------------------------------------------------------------------------------------------------


def _mark(result: bool) -> str:
    return "yes" if result else "no "


def _tree_lines(node: Mapping[str, Any], depth: int) -> Iterator[str]:
    pad = "  " * depth
    mark = _mark(bool(node["result"]))
    if "field" in node:
        expected = "" if node["expected"] is None else f" {describe_value(node['expected'])}"
        actual = _value(node["actual"])
        yield f"        {mark} {pad}{node['field']} {node['op']}{expected}   (is {actual})"
        return
    for key in ("all", "any"):
        if key in node:
            yield f"        {mark} {pad}{key} of:"
            for part in node[key]:
                yield from _tree_lines(part, depth + 1)
            return
    yield f"        {mark} {pad}not:"
    yield from _tree_lines(node["not"], depth + 1)


def format_explanation(data: Mapping[str, Any]) -> str:
    """The explanation as text: the decision, then each scoring rule and each qualification rule tried."""
    out = [
        f"lead {data['lead_id']}: {data['event']}",
        f"score {data['score']:g}, points {data['points']:g}, status {data['previous_status']} -> "
        f"{data['status']} (action: {data['action']})",
        "",
        "scoring rules: every rule that matches adds its points",
    ]
    for entry in data["scoring"]:
        head = f"{entry['points']:+g}" if entry["matched"] else "-"
        per = f" (per {entry['per']})" if entry["per"] else ""
        out.append(f"  {head:>5}  {entry['rule']}{per}  line {entry['line']}")
        if entry["condition"] is not None:
            out.extend(_tree_lines(entry["condition"], 0))
    out += ["", "qualification rules: tried from the top, the first that matches decides"]
    for entry in data["qualification"]:
        outcome = f"-> {entry['status']}{', converts' if entry['convert'] else ''}"
        if not entry["tried"]:
            out.append(f"  skip   {entry['rule']} {outcome}  line {entry['line']} (not tried: an earlier rule matched)")
            continue
        out.append(f"  {'MATCH' if entry['matched'] else 'no   '}  {entry['rule']} {outcome}  line {entry['line']}")
        if entry["condition"] is not None:
            out.extend(_tree_lines(entry["condition"], 0))
    routing = data.get("routing")
    if routing is not None:
        ((kind, name),) = routing["target"].items()
        by = f"{routing['via']} {routing['ref']!r}" if routing["ref"] else routing["via"]
        then = " (a member is picked by the pool when it runs)" if kind == "pool" else ""
        out += ["", f"routing: the {routing['subject']} goes to {kind} {name!r}, by {by}{then}"]
    if data["already_converted"]:
        out += ["", "the lead was already converted: it keeps its status whatever the rules say"]
    elif not any(e["matched"] for e in data["qualification"]):
        out += ["", "no qualification rule matched: the status stays as it was"]
    return "\n".join(out)


def to_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
