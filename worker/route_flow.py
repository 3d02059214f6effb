"""Routing between the stages, as plain functions over plain data: requests, assignments, SLA clocks.

A converted lead's opportunity is routed in up to two steps:

1. The lead's worker (:func:`worker.core.decide`) asks the ruleset's routing where it goes
   (:meth:`worker.routing.Routing.route`). A user or a queue is final: the opportunity and its routing decision go
   out at once (:func:`route_opportunity`). A pool is not: a :class:`RouteRequest` goes to an internal topic keyed
   by the pool's name, so that every request of a pool reaches the one worker that owns the pool's state.
2. That worker assigns the requests in order (:func:`route_batch`): it picks a member with
   :func:`worker.routing.assign`, remembers the result under the request's id (a replayed request is answered
   from there and never advances a pointer twice), and emits the opportunity, the routing decision and, when the
   pool has an SLA, a notice for the SLA clock.

The SLA clock (:func:`sla_batch`, :func:`sla_breaches`) is keyed by opportunity id: it learns of assignments and
acceptances (``opportunity.accepted`` on the feedback topic, forwarded by :func:`accepted_notice`), and when an
opportunity is not accepted in time it asks the pool's worker to reassign it (a request with the next attempt
number) or to escalate it.

Every message is JSON; ids are deterministic, so what is re-sent after a crash is recognisably the same.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from worker import ids
from worker.exceptions import EventError
from worker.routing import Assignment, Pool, Route, Routing, Target, assign

__all__ = [
    "RouteBatch",
    "RouteRequest",
    "SlaBatch",
    "accepted_notice",
    "route_batch",
    "route_lead",
    "route_opportunity",
    "sla_batch",
    "sla_breaches",
    "sla_pending",
    "target_label",
]

Json = dict[str, Any]


class RouteRequest(NamedTuple):
    """An opportunity waiting for a pool's owner to assign it; ``message`` goes on the internal topic."""

    pool: str
    message: Json


def target_label(target: Mapping[str, str]) -> str:
    """``{"user": "005A"}`` → ``"user:005A"`` (a bounded metric label: targets come from the ruleset)."""
    ((kind, name),) = target.items()
    return f"{kind}:{name}"


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def _place(opportunity: Json, target: Target) -> None:
    """Set the opportunity's owner or queue from a routing target (a pool as a last resort is a queue)."""
    if target.kind == "user":
        opportunity["owner_id"], opportunity["queue"] = target.id, None
    else:
        opportunity["owner_id"], opportunity["queue"] = None, target.id


def _summary(decision: Json) -> Json:
    """What the opportunity carries of its routing decision (the whole decision is on its own topic)."""
    return {
        "routing_id": decision["routing_id"],
        "attempt": decision["attempt"],
        "reason": decision["reason"],
        "via": decision["via"],
        "ref": decision["ref"],
        "pool": decision["pool"],
        "member": decision["member"],
        "overflow": decision["overflow"],
        "candidates": decision["candidates"],
    }


def _decision(
    request_id: str,
    opportunity: Json,
    route: Mapping[str, Any],
    target: Target,
    decided_at: float,
    ruleset_version: str,
    *,
    attempt: int = 1,
    reason: str = "converted",
    assignment: Assignment | None = None,
) -> Json:
    candidates: list[Any] = []
    if assignment is not None:
        candidates = [c.as_dict() for c in assignment.candidates]
    return {
        "schema_version": 1,
        "event_type": "routing.decided",
        "routing_id": ids.routing_id(request_id if assignment is None else f"{request_id}@{assignment.pool}"),
        "request_id": request_id,
        "subject": "opportunity" if opportunity["opportunity_id"] is not None else "lead",
        "opportunity_id": opportunity["opportunity_id"],
        "lead_id": opportunity["lead_id"],
        "decided_at": _iso(decided_at),
        "attempt": attempt,
        "reason": reason,
        "via": route.get("via"),
        "ref": route.get("ref"),
        "matched_by": route.get("matched_by"),
        "target": target.as_dict(),
        "pool": None if assignment is None else assignment.pool,
        "member": None if assignment is None else assignment.member,
        "overflow": False if assignment is None else assignment.overflow,
        "candidates": candidates,
        "ruleset_version": ruleset_version,
    }


def route_lead(
    lead_id: str, status: str, route: Route, ruleset_version: str, decided_at: float
) -> tuple[Json | None, RouteRequest | None]:
    """Where a lead that entered one of the routing's ``lead_statuses`` goes: ``(routing decision, None)`` for a
    user or a queue, ``(None, request)`` for a pool. Once per lead and status: a replay is answered as before."""
    request_id = f"lead:{lead_id}:{status}#1"
    subject: Json = {"opportunity_id": None, "lead_id": lead_id, "status": status}
    if route.target.kind == "pool":
        message = {
            "kind": "route",
            "subject": "lead",
            "request_id": request_id,
            "attempt": 1,
            "pool": route.target.id,
            "route": route.as_dict(),
            "opportunity": subject,
            "requested_at": decided_at,
            "event_time": None,
            "exclude": [],
        }
        return None, RouteRequest(route.target.id, message)
    decision = _decision(request_id, subject, route.as_dict(), route.target, decided_at, ruleset_version)
    return decision, None


def route_opportunity(
    opportunity: Json, route: Route, ruleset_version: str, decided_at: float
) -> tuple[Json | None, Json | None, RouteRequest | None]:
    """Where a new opportunity goes: ``(opportunity, routing decision, None)`` for a user or a queue, or
    ``(None, None, request)`` for a pool, whose worker assigns it."""
    request_id = ids.route_request_id(opportunity["opportunity_id"], 1)
    target = route.target
    if target.kind == "pool":
        opportunity["owner_id"], opportunity["queue"] = None, None
        message = {
            "kind": "route",
            "request_id": request_id,
            "attempt": 1,
            "pool": target.id,
            "route": route.as_dict(),
            "opportunity": opportunity,
            "requested_at": decided_at,
            "event_time": None,
            "exclude": [],
        }
        return None, None, RouteRequest(target.id, message)
    _place(opportunity, target)
    decision = _decision(request_id, opportunity, route.as_dict(), target, decided_at, ruleset_version)
    opportunity["routing"] = _summary(decision)
    return opportunity, decision, None


# --- the pool's worker ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class RouteBatch:
    """What a batch of routing requests produced, ready to send and store, with the counts for metrics."""

    opportunities: list[tuple[bytes, bytes]] = field(default_factory=list)
    routing_decisions: list[tuple[bytes, bytes]] = field(default_factory=list)
    sla_notices: list[tuple[bytes, bytes]] = field(default_factory=list)  # key: opportunity id
    forwards: list[tuple[bytes, bytes]] = field(default_factory=list)  # requests handed on to another pool
    pool_states: dict[str, bytes] = field(default_factory=dict)  # pool name → state
    done: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (request id, pool) → what it produced
    dead_letters: list[tuple[Any, EventError]] = field(default_factory=list)
    assignments: Counter[tuple[str, str]] = field(default_factory=Counter)  # (pool, member or target label)
    skips: Counter[tuple[str, str]] = field(default_factory=Counter)  # (pool, reason)
    overflows: Counter[str] = field(default_factory=Counter)  # pool
    reassignments: Counter[tuple[str, str]] = field(default_factory=Counter)  # (pool, how)
    replayed: int = 0
    created: int = 0  # opportunities assigned for the first time (not replays, not reassignments)
    waits: list[float] = field(default_factory=list)  # seconds from the lead event to the assignment


def _request(value: bytes | None) -> Json:
    try:
        message = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        msg = f"a routing request is not JSON: {exc}"
        raise EventError(msg, reason="not_json") from exc
    required = ("kind", "request_id", "attempt", "pool", "opportunity", "requested_at")
    if not isinstance(message, dict) or any(k not in message for k in required):
        msg = f"a routing request needs {', '.join(required)}"
        raise EventError(msg, reason="schema_violation")
    return message


def route_batch(
    routing: Routing | None,
    records: Sequence[Any],
    load_pool: Callable[[str], bytes | None],
    load_done: Callable[[str, str], bytes | None],
    now: float,
    ruleset_version: str,
    fallback: Target,
) -> RouteBatch:
    """Assign a batch of routing requests (records of the internal topic, all of pools this worker owns).

    ``load_pool`` returns a pool's stored state, ``load_done(request_id, pool)`` what a request already produced
    (or None).
    ``routing`` is the ruleset's routing now (a pool removed by a reload sends its requests to the routing's
    default target, or to ``fallback`` when routing is gone altogether). ``now`` is the wall clock for
    ``decided_at``; availability and caps are judged at the request's own time, so a replay decides the same.
    """
    out = RouteBatch()
    states: dict[str, Json] = {}
    for record in records:
        try:
            request = _request(record.value)
        except EventError as exc:
            out.dead_letters.append((record, exc))
            continue
        request_id: str = request["request_id"]
        name: str = request["pool"]
        done = out.done.get((request_id, name)) or load_done(request_id, name)
        if done is not None:  # a replay: say the same again, advance nothing
            _emit(out, orjson.loads(done))
            out.replayed += 1
            continue
        pool = None if routing is None else routing.pools.get(name)
        if int(request.get("hops", 0)) >= _MAX_HOPS:  # a guard: the compiler refuses cycles of pools
            produced = _unpooled(request, None, fallback, now, ruleset_version)
        elif pool is None:
            produced = _unpooled(request, routing, fallback, now, ruleset_version)
        else:
            if name not in states:
                stored = load_pool(name)
                states[name] = orjson.loads(stored) if stored is not None else None  # type: ignore[assignment]
            produced = _assign(pool, states, request, now, ruleset_version, out)
        if produced["opportunity"] is not None and request["attempt"] == 1:
            out.created += 1
        done_bytes = orjson.dumps(produced)
        out.done[request_id, name] = done_bytes
        _emit(out, produced)
        event_time = request.get("event_time")
        if isinstance(event_time, int | float) and request["attempt"] == 1:
            out.waits.append(max(0.0, now - event_time))
    out.pool_states = {name: orjson.dumps(state) for name, state in states.items() if state is not None}
    return out


def _assign(pool: Pool, states: dict[str, Json], request: Json, now: float, version: str, out: RouteBatch) -> Json:
    attempt: int = request["attempt"]
    opportunity: Json = request["opportunity"]
    route: Json = request.get("route") or {}
    requested_at: float = request["requested_at"]
    reason = "converted" if request["kind"] == "route" else "sla_breach"
    sla = pool.sla
    if request["kind"] == "reassign" and sla is not None and sla.escalate is not None:
        target, assignment = sla.escalate, None
        out.reassignments[pool.name, "escalated"] += 1
    else:
        state, assignment = assign(pool, states.get(pool.name), request["request_id"], requested_at, request["exclude"])
        states[pool.name] = state
        target = assignment.target
        for candidate in assignment.candidates:
            if candidate.skipped is not None:
                out.skips[pool.name, candidate.skipped] += 1
        if assignment.overflow:
            out.overflows[pool.name] += 1
        if request["kind"] == "reassign":
            out.reassignments[pool.name, "overflow" if assignment.overflow else "next_member"] += 1
    _place(opportunity, target)
    decision = _decision(
        request["request_id"],
        opportunity,
        route,
        target,
        now,
        version,
        attempt=attempt,
        reason=reason,
        assignment=assignment,
    )
    if assignment is None:  # escalated: no member was picked, but the pool is still the one it came from
        decision["pool"] = pool.name
        decision["routing_id"] = ids.routing_id(f"{request['request_id']}@{pool.name}")
    member = decision["member"]
    out.assignments[pool.name, member if member is not None else target_label(target.as_dict())] += 1
    produced = _produced(request, target, decision)
    if produced["opportunity"] is not None and sla is not None and member is not None:
        tried = [*request["exclude"], member]
        produced["sla"] = {
            "kind": "assigned",
            "opportunity_id": opportunity["opportunity_id"],
            "pool": pool.name,
            "member": member,
            "attempt": attempt,
            "deadline": now + sla.accept_within_seconds,  # from the assignment: when the rep got it
            "tried": tried,
            "route": route,
            "opportunity": opportunity,
        }
    return produced


def _unpooled(request: Json, routing: Routing | None, fallback: Target, now: float, version: str) -> Json:
    """A request for a pool the routing no longer has: the routing's default target takes it."""
    opportunity: Json = request["opportunity"]
    target = routing.default if routing is not None else fallback
    _place(opportunity, target)
    route = {**(request.get("route") or {}), "via": "default", "ref": f"pool {request['pool']!r} is gone"}
    decision = _decision(
        request["request_id"],
        opportunity,
        route,
        target,
        now,
        version,
        attempt=request["attempt"],
        reason="converted" if request["kind"] == "route" else "sla_breach",
    )
    return _produced(request, target, decision)


def _produced(request: Json, target: Target, decision: Json) -> Json:
    """What a routing step sends: the routing decision, and the opportunity when it landed with a user or queue
    (a pool target hands the request on; a lead routed on its status has no opportunity)."""
    if target.kind == "pool":  # overflow or escalation to another pool: that pool's owner assigns it
        return _forward(request, target, decision)
    if request.get("subject") == "lead":  # a lead routed on its status: the decision is all there is to say
        return {"opportunity": None, "decision": decision, "sla": None}
    opportunity: Json = request["opportunity"]
    opportunity["event_type"] = "opportunity.created" if request["attempt"] == 1 else "opportunity.reassigned"
    opportunity["routing"] = _summary(decision)
    return {"opportunity": opportunity, "decision": decision, "sla": None}


_MAX_HOPS = 8
"""Pools a request may pass through (overflow to a pool, escalation to a pool); the compiler refuses cycles."""


def _forward(request: Json, target: Target, decision: Json) -> Json:
    """Hand a request on to another pool (its overflow or escalation target), keyed by that pool."""
    forward = {**request, "pool": target.id, "hops": int(request.get("hops", 0)) + 1}
    return {"opportunity": None, "decision": decision, "sla": None, "forward": forward}


def _emit(out: RouteBatch, produced: Json) -> None:
    opportunity, decision, notice = produced["opportunity"], produced["decision"], produced["sla"]
    key = (decision["opportunity_id"] or decision["lead_id"]).encode()
    if opportunity is not None:
        out.opportunities.append((key, orjson.dumps(opportunity)))
    out.routing_decisions.append((key, orjson.dumps(decision)))
    if notice is not None:
        out.sla_notices.append((key, orjson.dumps(notice)))
    forward = produced.get("forward")
    if forward is not None:
        out.forwards.append((forward["pool"].encode(), orjson.dumps(forward)))


# --- the SLA clock ----------------------------------------------------------------------------------------------


def accepted_notice(key: bytes | None, value: bytes | None) -> tuple[bytes, bytes]:
    """An ``opportunity.accepted`` feedback event as a notice for the SLA clock (keyed by opportunity id).

    The feedback topic is written by other systems with their own partitioner; the notice goes through leadflow's
    own producer, so it lands on the same partition as the opportunity's assignments. EventError says what is
    wrong with a bad event.
    """
    try:
        event = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        msg = f"a feedback event is not JSON: {exc}"
        raise EventError(msg, reason="not_json") from exc
    if not isinstance(event, dict):
        msg = f"a feedback event must be a JSON object, got {type(event).__name__}"
        raise EventError(msg, reason="not_an_object")
    if event.get("event_type") != "opportunity.accepted":
        msg = f"feedback event_type {event.get('event_type')!r} is not known; expected 'opportunity.accepted'"
        raise EventError(msg, reason="unknown_event_type")
    opportunity_id = event.get("opportunity_id")
    if not isinstance(opportunity_id, str) or not opportunity_id:
        msg = "an 'opportunity.accepted' event needs 'opportunity_id' as a string"
        raise EventError(msg, reason="schema_violation")
    notice = {
        "kind": "accepted",
        "opportunity_id": opportunity_id,
        "accepted_by": event.get("accepted_by"),
        "occurred_at": event.get("occurred_at"),
    }
    return opportunity_id.encode(), orjson.dumps(notice)


@dataclass(slots=True)
class SlaBatch:
    """The SLA states a batch of notices changed, by opportunity id."""

    states: dict[str, bytes] = field(default_factory=dict)
    accepted: int = 0
    dead_letters: list[tuple[Any, EventError]] = field(default_factory=list)


def sla_batch(records: Sequence[Any], load: Callable[[str], bytes | None]) -> tuple[SlaBatch, dict[str, Json]]:
    """Fold notices (assigned, accepted, breached) into each opportunity's SLA state.

    Returns the batch and the decoded new states (for the clock's in-memory list of pending deadlines).
    """
    out = SlaBatch()
    live: dict[str, Json] = {}
    for record in records:
        try:
            notice = orjson.loads(record.value or b"")
            opportunity_id = notice["opportunity_id"]
            kind = notice["kind"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            out.dead_letters.append((record, EventError(f"a bad SLA notice: {exc!r}", reason="schema_violation")))
            continue
        state = live.get(opportunity_id)
        if state is None:
            stored = load(opportunity_id)
            state = orjson.loads(stored) if stored is not None else {"attempt": 0, "accepted": False, "breached": 0}
        if kind == "assigned" and notice["attempt"] >= state["attempt"]:
            state.update({k: notice[k] for k in ("pool", "member", "attempt", "deadline", "tried", "route")})
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
    return out, live


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
        }
        notice = {"kind": "breached", "opportunity_id": opportunity_id, "attempt": state["attempt"]}
        due.append((state["pool"], request, notice))
    return due
