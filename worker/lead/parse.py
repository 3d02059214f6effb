"""Turn a raw ``leads`` record into a validated event, or say precisely why it cannot be one.

The fast path is a single pydantic ``validate_json`` in strict mode: nothing is coerced (a count sent as ``"3"`` or
``true``, a Unix integer for a time, are refused, not converted). The diagnosis that picks a dead-letter reason
runs only for records that fail it, and is total: whatever the bytes, it returns an :class:`EventError` and never
raises (no recursion, no conversion of huge numbers, no decoding that can fail).
"""

from __future__ import annotations

import orjson
from pydantic import TypeAdapter, ValidationError

from worker.exceptions import EventError
from worker.lead.events import LeadActivity, LeadErased, LeadMatched, LeadsRecord, LeadUpserted

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "parse_event"]

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
_EVENT_TYPES = ("lead.upserted", "lead.activity", "lead.erased", "lead.matched")
_adapter: TypeAdapter[LeadUpserted | LeadActivity | LeadErased | LeadMatched] = TypeAdapter(LeadsRecord)
_validate_json = _adapter.validator.validate_json  # TypeAdapter.validate_json without its Python frame (per event)
_SHOWN = 80  # characters of a producer's value shown in a message


def parse_event(
    key: bytes | None, value: bytes | None, max_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> LeadUpserted | LeadActivity | LeadErased | LeadMatched:
    """Validate one record of the ``leads`` topic; raise :class:`EventError` with a bounded reason if bad.

    The record key must be the event's ``lead_id`` (UTF-8): it is what keeps one lead's events in order on
    one partition, next to that lead's state.
    """
    if value is None:
        msg = "record has no value (a tombstone); expected a JSON lead event"
        raise EventError(msg, reason="tombstone")
    if len(value) > max_bytes:
        msg = f"record value is {len(value):,} bytes, over the limit of {max_bytes:,} (LEADFLOW_MAX_EVENT_BYTES)"
        raise EventError(msg, reason="too_large")
    try:
        event: LeadUpserted | LeadActivity | LeadErased | LeadMatched = _validate_json(value, strict=True)
    except ValidationError as exc:
        raise _diagnose(value, exc) from None
    if key is None or key != event.lead_id.encode():
        shown = key.decode("utf-8", "replace")[:_SHOWN] if key is not None else None
        msg = (
            f"record key {shown!r} does not match lead_id {event.lead_id!r}; producers must key "
            "leads records by lead_id so that one lead's events stay in order on one partition"
        )
        raise EventError(msg, reason="key_mismatch")
    return event


def _diagnose(value: bytes, exc: ValidationError) -> EventError:
    """The most precise reason a record failed validation (the checks run in the order a producer would fix them)."""
    errors = exc.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as err:
            return EventError(f"record value is not UTF-8: {err}", reason="not_utf8")
        return EventError(f"record value is not JSON: {errors[0]['msg']}", reason="not_json")
    try:
        data: object = orjson.loads(value)
    except orjson.JSONDecodeError:  # read by pydantic but not by orjson (an integer beyond 64 bits): no envelope
        data = None
    if data is not None and not isinstance(data, dict):
        return EventError(f"expected a JSON object, got {type(data).__name__}", reason="not_an_object")
    if isinstance(data, dict):
        envelope = _envelope_problem(data)
        if envelope is not None:
            return envelope
    problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])[:200]}: {err['msg']}" for err in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return EventError(f"event does not match the contract: {problems}{more}", reason="schema_violation")


def _envelope_problem(data: dict[str, object]) -> EventError | None:
    """What is wrong with the envelope (version, lead id, event type), or None when it is fine."""
    version = data.get("schema_version", 1)
    if version != 1 or version.__class__ is not int:
        msg = f"schema_version {_shown(version)} is not supported; this worker reads version 1"
        return EventError(msg, reason="unsupported_schema_version")
    lead_id = data.get("lead_id")
    if not isinstance(lead_id, str) or not lead_id:
        return EventError(f"lead_id is missing or not a non-empty string: {_shown(lead_id)}", reason="missing_lead_id")
    event_type = data.get("event_type")
    if event_type not in _EVENT_TYPES:
        msg = f"unknown event_type {_shown(event_type)}; expected one of {', '.join(_EVENT_TYPES)}"
        return EventError(msg, reason="unknown_event_type")
    return None


def _shown(value: object) -> str:
    """A producer's value as a message shows it: ``repr``, cut short (a value may be 1 MB of nested lists)."""
    if isinstance(value, dict | list):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "...'"
