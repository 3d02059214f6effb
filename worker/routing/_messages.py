"""What the routing steps read from leadflow's internal topics: JSON objects, checked field by field."""

from __future__ import annotations

from typing import Any

import orjson

from worker.exceptions import EventError

__all__ = ["Json", "is_text", "is_time", "loads_object"]

Json = dict[str, Any]

_LATEST = 253_402_300_799.0  # 9999-12-31T23:59:59Z: a request's times must be dates the calendar has


def loads_object(value: bytes | None, what: str) -> Json:
    """A JSON object from an internal topic's record; EventError says why not (orjson: bounded depth, no NaN)."""
    if value is None:
        msg = f"{what} has no value (a tombstone)"
        raise EventError(msg, reason="tombstone")
    try:
        message = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            msg = f"{what} is not UTF-8: {exc}"
            raise EventError(msg, reason="not_utf8") from None
        msg = f"{what} is not JSON: {exc}"
        raise EventError(msg, reason="not_json") from None
    if not isinstance(message, dict):
        msg = f"{what} must be a JSON object, got {type(message).__name__}"
        raise EventError(msg, reason="not_an_object")
    return message


def is_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 1000


def is_time(value: object) -> bool:
    return value.__class__ in (int, float) and 0 <= value <= _LATEST
