"""A lead's facts as the worker builds them, from lead fields, events or a stored state; used by training and ``score``.

Everything goes through the worker's own code (``parse_event`` → ``apply_event`` → ``build_facts``), so that a
row of a CRM export is scored in training exactly as the same lead sent by a producer is scored in the stream.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from worker.exceptions import EventError, ModelError, StateError
from worker.lead.events import LeadErased, LeadMatched
from worker.lead.parse import parse_event
from worker.lead.state import apply_event, build_facts, event_digest, new_state, upgrade
from worker.scoring._model import load_model

__all__ = ["REFERENCE_TIME", "explain_lead", "facts_from_events", "facts_from_fields", "read_lead"]

REFERENCE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
"""The event time of a training row when the export has no date column."""
_WINDOW = 64


def facts_from_fields(fields: Mapping[str, Any], lead_id: str, when: dt.datetime = REFERENCE_TIME) -> dict[str, object]:
    """The facts of a lead whose only event is a ``lead.upserted`` with these fields; raises EventError if invalid."""
    event = {
        "schema_version": 1,
        "event_id": f"{lead_id}-fields",
        "occurred_at": when.isoformat(),
        "lead_id": lead_id,
        "event_type": "lead.upserted",
        "lead": dict(fields),
    }
    return facts_from_events([event])


def facts_from_events(events: Iterable[Mapping[str, Any]]) -> dict[str, object]:
    """The facts after the last of one lead's events, applied in order as the worker applies them."""
    state: dict[str, Any] | None = None
    facts: dict[str, object] = {}
    for raw in events:
        lead_id = str(raw.get("lead_id", ""))
        event = parse_event(lead_id.encode(), orjson.dumps(raw))
        if isinstance(event, LeadErased):  # the lead is forgotten: its next events start from nothing
            state, facts = None, {}
            continue
        if isinstance(event, LeadMatched):  # the match step's answer: changes none of the lead's facts
            continue
        now = event.occurred_at.timestamp()
        if state is None:
            state = new_state(event.lead_id, now)
        digest = event_digest(event.event_id)
        changed = apply_event(state, event, digest, now, _WINDOW)
        facts = build_facts(state, now, event, changed)
    return facts


def read_lead(path: Path) -> dict[str, object]:
    """A lead's facts from a file: JSON lines of events, one event, a stored state, or the lead's fields.

    A JSON object with ``event_type`` is an event; with ``v`` and ``lead_id`` a state as the worker stores it
    (in any layout version this leadflow reads); anything else is the ``lead`` part of a ``lead.upserted`` event
    (``{"lead_source": ..., "custom": {...}}``).
    """
    try:
        text = path.read_text(encoding="utf-8") if str(path) != "-" else _stdin()
    except FileNotFoundError:
        msg = f"{path}: lead file not found"
        raise ModelError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read the lead file: {exc}"
        raise ModelError(msg) from None
    try:
        items = _json_items(text)
    except orjson.JSONDecodeError as exc:
        msg = f"{path}: not JSON or JSON lines: {exc}"
        raise ModelError(msg) from None
    if not items or not all(isinstance(item, dict) for item in items):
        msg = f"{path}: expected a JSON object (a lead, an event or a state) or JSON lines of events"
        raise ModelError(msg)
    try:
        if all("event_type" in item for item in items):
            return facts_from_events(items)
        if len(items) == 1 and "v" in items[0] and "lead_id" in items[0]:
            return _facts_of_state(items[0])
        if len(items) == 1:
            return facts_from_fields(items[0], "lead")
    except (EventError, StateError) as exc:
        msg = f"{path}: {exc}"
        raise ModelError(msg) from None
    msg = f"{path}: several JSON lines must all be events (with 'event_type')"
    raise ModelError(msg)


def _json_items(text: str) -> list[Any]:
    stripped = text.strip()
    try:
        return [orjson.loads(stripped)]
    except orjson.JSONDecodeError:
        return [orjson.loads(line) for line in stripped.splitlines() if line.strip()]


def _facts_of_state(state: dict[str, Any]) -> dict[str, object]:
    raw_now = state.get("updated_at")
    now = float(raw_now) if isinstance(raw_now, int | float) else REFERENCE_TIME.timestamp()
    return build_facts({**new_state(str(state["lead_id"]), now), **upgrade(state)}, now, None)  # gaps: blank


def _stdin() -> str:
    import sys

    return sys.stdin.read()


def explain_lead(lead: Path, model_path: Path, *, top: int = 5) -> str:
    """What ``leadflow score`` prints: the probability, then the log-odds as baseline + factors, adding up exactly."""
    model = load_model(model_path)
    facts = read_lead(lead)
    score = model.score(facts)
    factors = model.factors(score, facts, top)
    shown = {f["feature"] for f in factors}
    rest = [c for name, c in score.contributions if name not in shown]
    lines = [
        f"score {score.probability:.3f}  (model {model.version})",
        f"log-odds {score.logit:+.3f} = baseline {score.baseline:+.3f} + the factors below",
    ]
    lines += [f"  {f['label']}" for f in factors]
    if rest:
        lines.append(f"  {len(rest)} other factor{'s' if len(rest) != 1 else ''} ({sum(rest):+.2f})")
    return "\n".join(lines)
