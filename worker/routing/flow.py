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

The SLA clock is in :mod:`worker.routing.sla`: when an opportunity is not accepted in time it asks the pool's
worker to reassign it (a request with the next attempt number) or to escalate it.

A lead that is erased (docs/PRIVACY.md) sends an ``erased`` notice to every partition of the requests topic: each
pool's worker deletes the answers it keeps for the opportunity (found by the opportunity's index row) and drops
its requests that came from the lead's events before the erasure (each request carries ``origin``, where its lead
event was read), so a request still waiting at its pool is never assigned.

Every message is JSON; ids are deterministic, so what is re-sent after a crash is recognisably the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from worker.exceptions import EventError
from worker.lead import ids
from worker.lead.times import iso_utc
from worker.routing import Assignment, Pool, Route, Routing, Target, assign
from worker.routing._messages import Json, is_text, is_time, loads_object
from worker.routing.sla import is_position, later_than_erasure

__all__ = [
    "RouteBatch",
    "RouteRequest",
    "answer_keys",
    "route_batch",
    "route_lead",
    "route_opportunity",
    "target_label",
]


class RouteRequest(NamedTuple):
    """An opportunity waiting for a pool's owner to assign it; ``message`` goes on the internal topic."""

    pool: str
    message: Json


def target_label(target: Mapping[str, str]) -> str:
    """``{"user": "005A"}`` → ``"user:005A"`` (a bounded metric label: targets come from the ruleset)."""
    ((kind, name),) = target.items()
    return f"{kind}:{name}"


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


def _routing_decision(
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
        "decided_at": iso_utc(decided_at),
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
    decision = _routing_decision(request_id, subject, route.as_dict(), route.target, decided_at, ruleset_version)
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
    decision = _routing_decision(request_id, opportunity, route.as_dict(), target, decided_at, ruleset_version)
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
    indexes: dict[tuple[str, int], Json | None] = field(default_factory=dict)
    """(opportunity id, partition) → the opportunity's index row there: its answers' keys (None: delete it)."""
    forgotten: list[tuple[bytes, int]] = field(default_factory=list)  # answers of erased leads to delete
    erasures: dict[str, list[Any]] = field(default_factory=dict)  # opportunity id → its erasure's position
    retracted: list[tuple[str, list[Any] | None]] = field(default_factory=list)
    """Opportunities whose answers an erasure deleted here, with the erasure's position: what their answers sent
    (the opportunity, its SLA clock) may have come after the lead step's tombstones, so they are sent again."""
    dropped: int = 0  # requests of erased leads, not assigned
    created: Counter[str] = field(default_factory=Counter)  # stage → first assignments (not replays or reassignments)
    waits: list[float] = field(default_factory=list)  # seconds from the lead event to the assignment


_KINDS = ("route", "reassign")


def _request(value: bytes | None, message: Json | None = None) -> Json:
    """A routing request as leadflow writes it on its internal topic; anything else is refused, saying what."""
    if message is None:
        message = loads_object(value, "a routing request")
    problems = []
    if message.get("kind") not in _KINDS:
        problems.append(f"'kind' must be one of {', '.join(_KINDS)}")
    for name in ("request_id", "pool"):
        if not is_text(message.get(name)):
            problems.append(f"{name!r} must be a non-empty text of at most 1000 characters")
    attempt = message.get("attempt")
    if attempt.__class__ is not int or not 1 <= attempt <= 10_000:
        problems.append("'attempt' must be an integer from 1 to 10000")
    if not is_time(message.get("requested_at")):
        problems.append("'requested_at' must be epoch seconds within the years 1970 to 9999")
    event_time = message.get("event_time")
    if event_time is not None and not is_time(event_time):
        problems.append("'event_time' must be epoch seconds or null")
    exclude = message.get("exclude")
    if not isinstance(exclude, list) or not all(isinstance(m, str) for m in exclude):
        problems.append("'exclude' must be a list of member ids")
    route = message.get("route")
    if route is not None and not isinstance(route, dict):
        problems.append("'route' must be an object or null")
    hops = message.get("hops", 0)
    if hops.__class__ is not int or hops < 0:
        problems.append("'hops' must be a non-negative integer")
    origin = message.get("origin")
    if origin is not None and not is_position(origin):
        problems.append("'origin' must be [topic, partition, offset, timestamp] or null")
    subject = message.get("opportunity")
    if not isinstance(subject, dict) or not is_text(subject.get("lead_id")):
        problems.append("'opportunity' must be an object with a 'lead_id'")
    elif subject.get("opportunity_id") is not None and not is_text(subject.get("opportunity_id")):
        problems.append("'opportunity.opportunity_id' must be a text or null")
    if problems:
        msg = f"a routing request does not match what leadflow writes: {'; '.join(problems)}"
        raise EventError(msg, reason="schema_violation")
    return message


def _no_index(opportunity_id: str, partition: int) -> bytes | None:
    return None


def route_batch(
    routing: Routing | None,
    records: Sequence[Any],
    load_pool: Callable[[str], bytes | None],
    load_done: Callable[[str, str], bytes | None],
    now: float,
    ruleset_version: str,
    fallback: Target,
    load_index: Callable[[str, int], bytes | None] = _no_index,
    erased: Mapping[str, list[Any]] | None = None,
) -> RouteBatch:
    """Assign a batch of routing requests (records of the internal topic, all of pools this worker owns).

    ``load_pool`` returns a pool's stored state, ``load_done(request_id, pool)`` what a request already produced
    (or None), ``load_index(opportunity_id, partition)`` the opportunity's index row in that partition (the keys
    of its answers there, see :func:`answer_keys`).
    ``routing`` is the ruleset's routing now (a pool removed by a reload sends its requests to the routing's
    default target, or to ``fallback`` when routing is gone altogether). ``now`` is the wall clock for
    ``decided_at``; availability and caps are judged at the request's own time, so a replay decides the same.

    An ``erased`` notice (:func:`worker.routing.sla.erased_notice`) deletes the opportunity's answers in its
    partition, but those of requests from the lead's later events. A request that came from the lead's events at
    or before an erasure (one in ``erased``, the worker's memory of the erasures it saw, or one in this batch:
    then the request was waiting behind it) is dropped, counted in ``dropped``; ``erasures`` lists the batch's.
    """
    out = RouteBatch()
    states: dict[str, Json] = {}
    messages: list[Json | None] = []
    known = dict(erased or {})
    for record in records:
        try:
            message = _message(record.value)
        except EventError as exc:
            out.dead_letters.append((record, exc))
            messages.append(None)
            continue
        messages.append(message)
        if message["kind"] == "erased":  # first, so that a request waiting behind its erasure is dropped
            opportunity_id, position = message["opportunity_id"], message["position"]
            if opportunity_id not in known or later_than_erasure(position, known[opportunity_id]):
                known[opportunity_id] = out.erasures[opportunity_id] = position
    for record, request in zip(records, messages, strict=True):
        if request is None:
            continue
        if request["kind"] == "erased":
            try:
                _forget(request, record.partition, load_index, out)
            except Exception as exc:  # an index row that does not decode: the notice waits in the dead letters
                msg = f"erasing opportunity {request['opportunity_id']!r}: {type(exc).__name__}: {exc}"
                out.dead_letters.append((record, EventError(msg, reason="processing_error")))
            continue
        opportunity_id = request["opportunity"].get("opportunity_id")
        if opportunity_id in known and not later_than_erasure(request.get("origin"), known[opportunity_id]):
            out.dropped += 1  # its lead is erased: never assigned
            continue
        try:
            index = None if opportunity_id is None else _index_of(opportunity_id, record.partition, load_index, out)
            _route_one(routing, request, load_pool, load_done, now, ruleset_version, fallback, states, out)
            if index is not None:  # answered now or before: its key in the opportunity's index row
                _index(opportunity_id, record.partition, index, request, out)
        except Exception as exc:  # a bug or a request nobody foresaw: its dead letter, never the stream's end
            msg = f"routing request {request['request_id']!r} failed: {type(exc).__name__}: {exc}"
            out.dead_letters.append((record, EventError(msg, reason="processing_error")))
    out.pool_states = {name: orjson.dumps(state) for name, state in states.items() if state is not None}
    return out


def _message(value: bytes | None) -> Json:
    """A record of the requests topic: a routing request, or an ``erased`` notice."""
    message = loads_object(value, "a routing request")
    if message.get("kind") != "erased":
        return _request(value, message)
    position = message.get("position")
    if not is_text(message.get("opportunity_id")) or not (position is None or is_position(position)):
        msg = (
            "an 'erased' notice does not match what leadflow writes: 'opportunity_id' must be a non-empty text and"
            " 'position' [topic, partition, offset, timestamp] or null"
        )
        raise EventError(msg, reason="schema_violation")
    return message


def answer_keys(index: bytes | None) -> dict[str, Any]:
    """An opportunity's index row in the ``route-done`` table (keyed by the opportunity id, in each partition
    where a pool answered one of its requests): the keys of those answers, each with its request's ``origin``."""
    if index is None:
        return {}
    keys = orjson.loads(index)["keys"]
    if not isinstance(keys, dict):
        msg = f"stored answer index is not one: {index[:80]!r}"
        raise ValueError(msg)
    return keys


def _index_of(opportunity_id: str, partition: int, load: Callable[[str, int], bytes | None], out: RouteBatch) -> Json:
    if (opportunity_id, partition) in out.indexes:
        return out.indexes[opportunity_id, partition] or {"keys": {}}
    return {"keys": answer_keys(load(opportunity_id, partition))}


def _index(opportunity_id: str, partition: int, index: Json, request: Json, out: RouteBatch) -> None:
    """Note an answer's key in its opportunity's index row (an erasure finds it there)."""
    key = f"{request['request_id']}@{request['pool']}"
    if key not in index["keys"]:
        index["keys"][key] = request.get("origin")
        out.indexes[opportunity_id, partition] = index


def _forget(notice: Json, partition: int, load: Callable[[str, int], bytes | None], out: RouteBatch) -> None:
    """An erasure in this partition: delete the opportunity's answers here, but those of requests from the lead's
    events after it (a redelivered erasure leaves the lead's new answers alone), and retract what they sent."""
    opportunity_id: str = notice["opportunity_id"]
    keys: dict[str, Any] = _index_of(opportunity_id, partition, load, out)["keys"]
    kept = {k: origin for k, origin in keys.items() if later_than_erasure(origin, notice["position"])}
    if len(kept) < len(keys):
        out.forgotten += [(k.encode(), partition) for k in keys if k not in kept]
        out.indexes[opportunity_id, partition] = {"keys": kept} if kept else None
        out.retracted.append((opportunity_id, notice["position"]))


def _route_one(
    routing: Routing | None,
    request: Json,
    load_pool: Callable[[str], bytes | None],
    load_done: Callable[[str, str], bytes | None],
    now: float,
    ruleset_version: str,
    fallback: Target,
    states: dict[str, Json],
    out: RouteBatch,
) -> None:
    """Assign one request (or answer a replayed one as before), adding what it produced to ``out``.

    :func:`_request` has checked every field this reads, so what can still fail (a stored record that does not
    decode) fails before the pool's state changes.
    """
    request_id: str = request["request_id"]
    name: str = request["pool"]
    done = out.done.get((request_id, name)) or load_done(request_id, name)
    if done is not None:  # a replay: say the same again, advance nothing
        _emit(out, orjson.loads(done))
        out.replayed += 1
        return
    pool = None if routing is None else routing.pools.get(name)
    if request.get("hops", 0) >= _MAX_HOPS:  # a guard: the compiler refuses cycles of pools
        produced = _unpooled(request, None, fallback, now, ruleset_version)
    elif pool is None:
        produced = _unpooled(request, routing, fallback, now, ruleset_version)
    else:
        if name not in states:
            stored = load_pool(name)
            states[name] = orjson.loads(stored) if stored is not None else None  # type: ignore[assignment]
        produced = _assign(pool, states, request, now, ruleset_version, out)
    done_bytes = orjson.dumps(produced)
    if produced["opportunity"] is not None and request["attempt"] == 1:
        out.created[str(produced["opportunity"].get("stage_name") or "unknown")] += 1
    out.done[request_id, name] = done_bytes
    _emit(out, produced)
    event_time = request.get("event_time")
    if isinstance(event_time, int | float) and request["attempt"] == 1:
        out.waits.append(max(0.0, now - event_time))


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
    decision = _routing_decision(
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
            "origin": request.get("origin"),
        }
    return produced


def _unpooled(request: Json, routing: Routing | None, fallback: Target, now: float, version: str) -> Json:
    """A request for a pool the routing no longer has: the routing's default target takes it."""
    opportunity: Json = request["opportunity"]
    target = routing.default if routing is not None else fallback
    _place(opportunity, target)
    route = {**(request.get("route") or {}), "via": "default", "ref": f"pool {request['pool']!r} is gone"}
    decision = _routing_decision(
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
