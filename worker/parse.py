"""Turn a raw ``leads`` record into a validated event, or say precisely why it cannot be one.

The fast path is a single pydantic ``validate_json``; the slower diagnosis that picks a dead-letter reason runs
only for records that fail it.
"""

from __future__ import annotations

import json

from pydantic import TypeAdapter, ValidationError

from worker.events import LeadActivity, LeadEvent, LeadUpserted
from worker.exceptions import EventError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "parse_event"]

DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
_EVENT_TYPES = ("lead.upserted", "lead.activity")
_adapter: TypeAdapter[LeadUpserted | LeadActivity] = TypeAdapter(LeadEvent)
_validate_json = _adapter.validator.validate_json  # TypeAdapter.validate_json without its Python frame (per event)


def parse_event(
    key: bytes | None, value: bytes | None, max_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> LeadUpserted | LeadActivity:
    """Validate one record of the ``leads`` topic; raise :class:`EventError` with a bounded reason if bad.

    The record key must be the event's ``lead_id`` (UTF-8): it is what keeps one lead's events in order on
    one partition, next to that lead's state.
    """
    if value is None:
        msg = "record has no value (a tombstone); expected a JSON lead event"
        raise EventError(msg, reason="not_json")
    if len(value) > max_bytes:
        msg = f"record value is {len(value):,} bytes, over the limit of {max_bytes:,} (LEADFLOW_MAX_EVENT_BYTES)"
        raise EventError(msg, reason="too_large")
    try:
        event: LeadUpserted | LeadActivity = _validate_json(value)
    except ValidationError as exc:
        raise _diagnose(value, exc) from None
    if key is None or key != event.lead_id.encode():
        shown = key.decode("utf-8", "replace")[:80] if key is not None else None
        msg = (
            f"record key {shown!r} does not match lead_id {event.lead_id!r}; producers must key "
            "leads records by lead_id so that one lead's events stay in order on one partition"
        )
        raise EventError(msg, reason="key_mismatch")
    return event


def _diagnose(value: bytes, exc: ValidationError) -> EventError:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as err:
        return EventError(f"record value is not UTF-8: {err}", reason="not_utf8")
    try:
        data = json.loads(text)
    except ValueError as err:
        return EventError(f"record value is not JSON: {err}", reason="not_json")
    if not isinstance(data, dict):
        return EventError(f"expected a JSON object, got {type(data).__name__}", reason="not_an_object")
    if data.get("schema_version", 1) != 1:
        msg = f"schema_version {data.get('schema_version')!r} is not supported; this worker reads version 1"
        return EventError(msg, reason="unsupported_schema_version")
    if not isinstance(data.get("lead_id"), str) or not data["lead_id"]:
        return EventError(
            f"lead_id is missing or not a non-empty string: {data.get('lead_id')!r}", reason="missing_lead_id"
        )
    if data.get("event_type") not in _EVENT_TYPES:
        msg = f"unknown event_type {data.get('event_type')!r}; expected one of {', '.join(_EVENT_TYPES)}"
        return EventError(msg, reason="unknown_event_type")
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)[:5]
    )
    return EventError(f"event does not match the contract: {problems}", reason="schema_violation")
