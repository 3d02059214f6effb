"""The SLA clock, as plain functions over plain data: notices in, reassignment requests out when time is up.

The clock (:func:`sla_batch`, :func:`sla_breaches`) is keyed by opportunity id: it learns of assignments (from
the pool's worker, :func:`worker.routing.flow.route_batch`) and acceptances (``opportunity.accepted`` on the
feedback topic, forwarded by :func:`accepted_notice`), and when an opportunity is not accepted in time it asks the
pool's worker to reassign it (a request with the next attempt number) or to escalate it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson

from worker.exceptions import EventError
from worker.lead import ids
from worker.routing._messages import Json, is_text, is_time, loads_object

__all__ = [
    "SlaBatch",
    "accepted_notice",
    "erased_notice",
    "is_position",
    "later_than_erasure",
    "sla_batch",
    "sla_breaches",
    "sla_pending",
]


def accepted_notice(key: bytes | None, value: bytes | None) -> tuple[bytes, bytes]:
    """An ``opportunity.accepted`` feedback event as a notice for the SLA clock (keyed by opportunity id).

    The feedback topic is written by other systems with their own partitioner; the notice goes through leadflow's
    own producer, so it lands on the same partition as the opportunity's assignments. EventError says what is
    wrong with a bad event.
    """
    event = loads_object(value, "a feedback event")
    if event.get("event_type") != "opportunity.accepted":
        shown = str(event.get("event_type"))[:80]
        msg = f"feedback event_type {shown!r} is not known; expected 'opportunity.accepted'"
        raise EventError(msg, reason="unknown_event_type")
    opportunity_id = event.get("opportunity_id")
    if not is_text(opportunity_id) or not _printable(opportunity_id):
        msg = "an 'opportunity.accepted' event needs 'opportunity_id' as a text of 1 to 1000 printable characters"
        raise EventError(msg, reason="schema_violation")
    accepted_by, occurred_at = event.get("accepted_by"), event.get("occurred_at")
    if accepted_by is not None and not is_text(accepted_by):
        msg = "'accepted_by' must be a text of 1 to 1000 characters or null"
        raise EventError(msg, reason="schema_violation")
    if occurred_at is not None and not (isinstance(occurred_at, str) and len(occurred_at) <= 64):
        msg = "'occurred_at' must be an RFC 3339 time or null"
        raise EventError(msg, reason="schema_violation")
    notice = {"kind": "accepted", "opportunity_id": opportunity_id, "accepted_by": accepted_by}
    notice["occurred_at"] = occurred_at
    return opportunity_id.encode(), orjson.dumps(notice)  # type: ignore[union-attr]  # checked by _is_text


def _printable(text: object) -> bool:
    return isinstance(text, str) and text.isprintable()


@dataclass(slots=True)
class SlaBatch:
    """The SLA states a batch of notices changed, by opportunity id."""

    states: dict[str, bytes | None] = field(default_factory=dict)
    """None: the state is deleted (its lead was erased)."""
    erased: set[str] = field(default_factory=set)
    accepted: int = 0
    dead_letters: list[tuple[Any, EventError]] = field(default_factory=list)


_NOTICE_KINDS = ("assigned", "accepted", "breached", "erased")


def erased_notice(opportunity_id: str, position: Sequence[Any] | None = None) -> tuple[bytes, bytes]:
    """The notice that the opportunity's lead was erased (docs/PRIVACY.md), keyed by the opportunity id, for every
    step that holds the opportunity: the SLA clock deletes its state and stops (no breach sends it again), the
    pipeline deletes its row, the pools' owners delete their answers and drop its waiting requests.

    ``position`` is where the ``lead.erased`` record was read on the leads topic: what came from the lead's events
    after it (the lead sent again and converted again: the same opportunity id) is not erased
    (:func:`later_than_erasure`).
    """
    notice = {"kind": "erased", "opportunity_id": opportunity_id, "position": None if position is None else [*position]}
    return opportunity_id.encode(), orjson.dumps(notice)


def is_position(value: object) -> TypeGuard[list[Any]]:
    """Whether ``value`` is a record position as the notices carry it: ``[topic, partition, offset, timestamp]``."""
    return (
        isinstance(value, list)
        and len(value) == 4
        and isinstance(value[0], str)
        and all(v.__class__ is int for v in value[1:3])
        and (value[3] is None or isinstance(value[3], int | float))
    )


def later_than_erasure(origin: object, erasure: object) -> bool:
    """Whether something that came from the lead event read at ``origin`` is newer than the erasure read at
    ``erasure`` (both leads-topic positions, as the notices and requests carry them): a state or request of the
    lead as it was sent again after the erasure, which the erasure must leave alone. Only a later offset in the
    same partition of the same topic is: without both positions (written before they were kept), or from another
    partition (the topic was made again), the order is unknown and erasing is the safe side. (Timestamps are not
    compared, unlike :func:`worker.lead.state.redelivered`: a producer's clock must not keep personal data.)
    """
    if not (is_position(origin) and is_position(erasure)):
        return False
    return bool(origin[0] == erasure[0] and origin[1] == erasure[1] and origin[2] > erasure[2])


def _notice(value: bytes | None) -> Json:
    """An SLA notice as leadflow writes it on its internal topic; anything else is refused, saying what."""
    notice = loads_object(value, "an SLA notice")
    kind = notice.get("kind")
    problems = []
    if kind not in _NOTICE_KINDS:
        problems.append(f"'kind' must be one of {', '.join(_NOTICE_KINDS)}")
    if not is_text(notice.get("opportunity_id")):
        problems.append("'opportunity_id' must be a non-empty text")
    if kind == "erased" and notice.get("position") is not None and not is_position(notice.get("position")):
        problems.append("'position' must be [topic, partition, offset, timestamp] or null")
    if kind in ("assigned", "breached"):
        attempt = notice.get("attempt")
        if attempt.__class__ is not int or not 1 <= attempt <= 10_000:
            problems.append("'attempt' must be an integer from 1 to 10000")
    if kind == "assigned":
        if not (is_text(notice.get("pool")) and is_text(notice.get("member"))):
            problems.append("'pool' and 'member' must be texts")
        if not is_time(notice.get("deadline")):
            problems.append("'deadline' must be epoch seconds within the years 1970 to 9999")
        tried = notice.get("tried")
        if not isinstance(tried, list) or not all(isinstance(m, str) for m in tried):
            problems.append("'tried' must be a list of member ids")
        if not isinstance(notice.get("opportunity"), dict) or not isinstance(notice.get("route", {}), dict | None):
            problems.append("'opportunity' must be an object and 'route' an object or null")
    if problems:
        msg = f"an SLA notice does not match what leadflow writes: {'; '.join(problems)}"
        raise EventError(msg, reason="schema_violation")
    return notice


def sla_batch(records: Sequence[Any], load: Callable[[str], bytes | None]) -> tuple[SlaBatch, dict[str, Json]]:
    """Fold notices (assigned, accepted, breached) into each opportunity's SLA state.

    Returns the batch and the decoded new states (for the clock's in-memory list of pending deadlines). A notice
    that is not one, or whose opportunity's stored state does not decode, is a dead letter.
    """
    out = SlaBatch()
    live: dict[str, Json] = {}
    for record in records:
        try:
            notice = _notice(record.value)
            opportunity_id: str = notice["opportunity_id"]
            state = live.get(opportunity_id)
            existed = state is not None
            if state is None:
                stored = None if opportunity_id in out.erased else load(opportunity_id)
                existed = stored is not None
                state = _sla_state(stored) if stored is not None else {"attempt": 0, "accepted": False, "breached": 0}
        except EventError as exc:
            out.dead_letters.append((record, exc))
            continue
        except Exception as exc:  # a stored state that does not decode: this notice waits in the dead letters
            msg = f"SLA notice: {type(exc).__name__}: {exc}"
            out.dead_letters.append((record, EventError(msg, reason="processing_error")))
            continue
        kind = notice["kind"]
        if kind == "erased" and not later_than_erasure(state.get("origin"), notice.get("position")):
            live.pop(opportunity_id, None)  # forgotten: the state is deleted, its clock stops
            if existed:  # (an opportunity that never had a clock has nothing to delete)
                out.erased.add(opportunity_id)
            continue
        if kind == "erased":  # a redelivered erasure: the lead was sent again and converted again since
            continue
        if kind == "assigned" and notice["attempt"] >= state["attempt"]:
            state.update({k: notice[k] for k in ("pool", "member", "attempt", "deadline", "tried")})
            state["origin"] = notice.get("origin")
            state["route"] = notice.get("route") or {}
            state["opportunity"] = notice["opportunity"]
        elif kind == "accepted" and not state["accepted"]:
            state["accepted"] = True
            state["accepted_by"] = notice.get("accepted_by")
            out.accepted += 1
        elif kind == "breached":
            state["breached"] = max(state["breached"], notice["attempt"])
        live[opportunity_id] = state
    for state in live.values():
        if not sla_pending(state):  # a stopped clock keeps only what stops it: the table stays small
            for key in ("opportunity", "route", "tried"):
                state.pop(key, None)
    out.states = {k: orjson.dumps(v) for k, v in live.items()}
    out.states.update((k, None) for k in out.erased if k not in live)  # None: delete (a changelog tombstone)
    return out, live


def _sla_state(stored: bytes) -> Json:
    state = orjson.loads(stored)
    if not isinstance(state, dict) or not all(isinstance(state.get(k), int) for k in ("attempt", "breached")):
        msg = f"stored SLA state is not one: {stored[:80]!r}"
        raise ValueError(msg)
    return state


def sla_pending(state: Mapping[str, Any]) -> bool:
    """Whether an SLA clock is running: assigned, not accepted, this attempt not yet breached."""
    return bool(state.get("deadline")) and not state["accepted"] and state["breached"] < state["attempt"]


def sla_breaches(states: Mapping[str, Mapping[str, Any]], now: float) -> list[tuple[str, Json, Json]]:
    """For every running clock past its deadline: ``(pool, reassign request, breached notice)``."""
    due = []
    for opportunity_id, state in states.items():
        if not sla_pending(state) or state["deadline"] > now:
            continue
        attempt = state["attempt"] + 1
        request = {
            "kind": "reassign",
            "request_id": ids.route_request_id(opportunity_id, attempt),
            "attempt": attempt,
            "pool": state["pool"],
            "route": state.get("route") or {},
            "opportunity": state["opportunity"],
            "requested_at": now,
            "event_time": None,
            "exclude": list(state["tried"]),
            "breached_member": state["member"],
            "origin": state.get("origin"),
        }
        notice = {"kind": "breached", "opportunity_id": opportunity_id, "attempt": state["attempt"]}
        due.append((state["pool"], request, notice))
    return due
