"""The pure core: one lead event and the lead's state in, a decision (and maybe an opportunity) out.

No broker, no Faust, no clock of its own: everything a decision depends on is an argument, so it can be tested,
replayed and benchmarked as plain function calls. Batches of raw records go through it in :mod:`worker.batch`;
the Faust shell (:mod:`worker.stream`) only moves bytes.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from worker.lead import ids
from worker.lead.events import LeadActivity, LeadErased, LeadMatched, LeadUpserted
from worker.lead.parse import DEFAULT_MAX_EVENT_BYTES
from worker.lead.state import (
    CHANGED_FACT,
    LeadState,
    Position,
    age_facts,
    apply_event,
    build_facts,
    event_digest,
    new_state,
    redelivered,
    remember,
    seen,
)
from worker.lead.times import iso_utc
from worker.routing import AccountIndex
from worker.routing.flow import RouteRequest, route_lead, route_opportunity
from worker.rules import QualificationRule, Ruleset, next_wake
from worker.rules.duplicates import DUPLICATE_OF, MATCH, apply_answer, claim_keys, held
from worker.scoring import Model

__all__ = ["Cause", "Decided", "Engine", "decide", "decide_time", "erase", "set_wake"]

_UTC = dt.UTC


@dataclass(frozen=True, slots=True)
class Engine:
    """Everything a decision depends on; swapped as a whole so every decision is made by one version."""

    ruleset: Ruleset
    model: Model
    dedupe_window: int = 64
    top_factors: int = 5
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    accounts: AccountIndex | None = None
    """Known accounts for routing (kept current by the worker's accounts feed; None: no account matching)."""


class Decided(NamedTuple):
    """The outcome of one event: the decision, and the opportunity when the lead converted.

    With routing configured, a converted lead also gets a routing decision (``routed``) when the route names a
    user or a queue; when it names a pool, the opportunity waits in a routing request (``route_request``) for the
    pool's owner to assign it (see :mod:`worker.routing.flow`), and ``opportunity`` is None.
    """

    decision: dict[str, Any]
    opportunity: dict[str, Any] | None
    facts: dict[str, object] | None = None  # what the model scored (None for a duplicate)
    routed: dict[str, Any] | None = None
    route_request: RouteRequest | None = None
    duplicate: bool = False
    """The event's id was already applied to the lead: nothing changed, and the worker sends nothing for it."""
    claims: Sequence[str] = ()
    """Match keys the lead has now and had not claimed before (the worker sends them to the match step)."""
    merged: dict[str, Any] | None = None
    """The ``lead.merged`` record when this event (the match step's answer) made the lead a duplicate."""
    left_status: tuple[str, float] | None = None
    """The status the lead left with this decision and the seconds it had spent in it (for the time-in-status
    metric); None when its status stays, or when the time it started is unknown (a state stored before it was kept)."""


class Cause(NamedTuple):
    """What a decision answers: an event (its id and time), or the time reaching a lead's wake-up time."""

    lead_id: str
    event_id: str
    occurred_at: dt.datetime
    trigger: str  # "event" or "time"


def _lead_created_at(first_seen: float | None) -> str | None:
    """The lead's first event's time (None for a state stored before it was kept, or past the calendar's end)."""
    if not first_seen:
        return None
    try:
        return _isoformat(dt.datetime.fromtimestamp(first_seen, _UTC))
    except (OverflowError, ValueError):  # 9999-12-31T23:59:59.999999 rounds, as a float, into the year 10000
        return None


@functools.lru_cache(maxsize=4)
def _decided_at_text(decided_at: float) -> str:
    """:func:`iso_utc`, remembered: a batch stamps every decision with the same time (about 1 µs an event)."""
    return iso_utc(decided_at)


def _isoformat(moment: dt.datetime) -> str:
    """``moment.isoformat()`` for an aware time, by orjson: the same text in a fifth of the time (per event)."""
    return orjson.dumps(moment)[1:-1].decode()


def decide(
    engine: Engine,
    state: LeadState | None,
    event: LeadUpserted | LeadActivity | LeadMatched,
    decided_at: float,
    position: Position | None = None,
    wake: bool = True,
) -> tuple[LeadState, Decided]:
    """Apply ``event`` to the lead's ``state`` (mutated, or created when None) and decide.

    ``decided_at`` is the wall-clock time of the decision (epoch seconds); everything else, including the
    opportunity's ``converted_at`` and ``close_date``, derives from the event so that a replay is identical.
    ``position`` is where the event's record was read (topic, partition, offset, timestamp), kept in the state:
    an event whose id the state holds, or whose record is at or before the last one applied in its partition, is
    a replay (``Decided.duplicate``) and changes nothing.

    With a ``duplicates:`` section the lead's new match keys are claimed (``Decided.claims``) and its conversion
    is held until the match step has answered them all (a ``lead.matched`` event, decided here too: the rules run
    again, and a lead that survives converts then); a duplicate never converts.

    ``wake`` False leaves the state's wake-up time as it was: a caller deciding several events of the lead in a row
    sets it once, after the last one, with :func:`set_wake` and that decision's facts (only the last one counts).
    """
    ruleset = engine.ruleset
    lead_id = event.lead_id
    now = event.occurred_at.timestamp()
    if state is None:
        state = new_state(lead_id, now)
    digest = event_digest(event.event_id)
    previous_status: str = state["status"] or ruleset.default_status
    if seen(state, digest) or redelivered(state, position):
        last_score = state["score"] if state["score"] is not None else 0.0
        cause = Cause(lead_id, event.event_id, event.occurred_at, "event")
        decision = _decision(
            engine, cause, decided_at, previous_status, previous_status, state["points"], last_score, [], [], "none"
        )
        decision["opportunity_id"] = state["opportunity_id"]
        return state, Decided(decision, None, duplicate=True)

    merged = None
    if isinstance(event, LeadMatched):
        became = apply_answer(state, event.match_key, event.survivor_id, event.survivor_partition)
        if became is None:  # no unanswered claim of this key (stale, or not the worker's): ignored like a replay
            cause = Cause(lead_id, event.event_id, event.occurred_at, "event")
            return state, Decided(_ignored(engine, state, cause, decided_at, previous_status), None, duplicate=True)
        remember(state, digest, now, engine.dedupe_window)
        changed: Collection[str] = frozenset()
        if became:
            merged = _merged(event, decided_at)
    else:
        changed = apply_event(state, event, digest, now, engine.dedupe_window)
    claims: Sequence[str] = ()
    if ruleset.duplicates is not None and (isinstance(event, LeadUpserted) or MATCH not in state):
        claims = claim_keys(ruleset.duplicates, state)  # only an upsert changes what the keys are made of
    if position is not None:
        state["source"] = list(position)  # as stored (JSON): the cached state equals the stored one
    facts = build_facts(state, now, event, changed)
    cause = Cause(lead_id, event.event_id, event.occurred_at, "event")
    decided = _decided(engine, state, facts, cause, decided_at, previous_status, wake)
    if merged is not None:
        decided.decision["action"] = "merged"
        return state, decided._replace(claims=claims, merged=merged)
    if claims:
        return state, decided._replace(claims=claims)
    return state, decided  # no claims, no merge: ``_replace`` would copy it unchanged (a few % of the core)


def decide_time(engine: Engine, state: LeadState, decided_at: float) -> tuple[LeadState, Decided]:
    """Decide the lead ``state`` (mutated) again at its wake-up time (``state["wake_at"]``, which must be set),
    with no event: what time alone changed (a status, a conversion, a routing), as a decision with ``trigger:
    "time"``.

    Everything derives from the state, so the same state gives the same decision (``decided_at`` aside): its id is
    from the lead id and the wake-up time. Nothing counts as engagement: the counters, the activity times, the
    event ids and the source position stay as they were; the state's next wake-up time is set.
    """
    at: float = state["wake_at"]
    previous_status: str = state["status"] or engine.ruleset.default_status
    facts = build_facts(state, at, None)
    when = dt.datetime.fromtimestamp(at, _UTC)
    cause = Cause(state["lead_id"], f"time:{at!r}", when, "time")
    return state, _decided(engine, state, facts, cause, decided_at, previous_status)


def _decided(
    engine: Engine,
    state: LeadState,
    facts: dict[str, object],
    cause: Cause,
    decided_at: float,
    previous_status: str,
    wake: bool = True,
) -> Decided:
    """Score and qualify the lead from ``facts``, change its ``state`` (status, conversion, next wake-up time unless
    ``wake`` is False) and build the decision with what comes with it."""
    ruleset, model = engine.ruleset, engine.model
    lead_id = cause.lead_id
    now: float = facts["now"]  # type: ignore[assignment]  # build_facts sets it to a float
    score = model.score(facts)
    probability = score.probability
    facts["score"] = probability
    outcome = ruleset.evaluate(facts)
    factors = model.factors(score, facts, engine.top_factors)
    state["points"] = points = outcome.points
    state["score"] = probability

    status: str = state["status"] or ruleset.default_status  # a producer may have set it
    rule = outcome.qualification
    if rule is not None and rule.convert and held(state):  # a duplicate, or its claims unanswered: not yet
        rule = None
    action = "none"
    opportunity: dict[str, Any] | None = None
    routed: dict[str, Any] | None = None
    request: RouteRequest | None = None
    if rule is not None and not state["converted"]:
        status = rule.status
        if rule.convert:
            action = "converted"
            opportunity = _convert(engine, state, cause, facts, rule, probability, factors, outcome)
            spec = rule.opportunity
            if ruleset.routing is not None and spec is not None and spec.owner_id is None and spec.queue is None:
                # the rule names no owner or queue itself: routing decides (before the lead's own owner_id)
                route = ruleset.routing.route(facts, state, engine.accounts)
                opportunity, routed, request = route_opportunity(opportunity, route, ruleset.version, decided_at)
        elif status != previous_status:
            status_def = ruleset.statuses.get(status)
            action = "disqualified" if status_def is not None and status_def.disqualified else "status_changed"
    elif status != previous_status:
        action = "status_changed"
    state["status"] = status
    left = _left_status(state, previous_status, status, now)
    routing = ruleset.routing
    if action == "status_changed" and routing is not None and status in routing.lead_statuses:
        route = routing.route(facts, state, engine.accounts)
        routed, request = route_lead(lead_id, status, route, ruleset.version, decided_at)
    decision = _decision(
        engine, cause, decided_at, status, previous_status, points, probability, factors, outcome.matched_rules, action
    )
    decision["opportunity_id"] = state["opportunity_id"]
    decision["duplicate_of"] = state.get(DUPLICATE_OF)
    if wake:
        set_wake(engine.ruleset, state, facts, now)
    return Decided(decision, opportunity, facts, routed, request, left_status=left)


def _left_status(state: LeadState, previous: str, status: str, now: float) -> tuple[str, float] | None:
    """The status the lead left and the seconds it spent in it (None when it stays, or when its start is unknown);
    the status starts its own clock."""
    if status == previous:
        return None
    since = state.get("status_since")
    state["status_since"] = now
    return None if since is None else (previous, max(0.0, now - since))


def set_wake(ruleset: Ruleset, state: LeadState, facts: dict[str, object], now: float) -> None:
    """The lead's next wake-up time, from the facts as they stand after the decision and with no event (what the
    next decision that time triggers would see); none once it converted (its status no longer changes).

    A test of time reads one fact (and ``now``): of what the decision changed, only ``status_since`` (the origin
    of ``days_in_status``) can matter to it, unless points decay (then every rule is evaluated again).

    The time is the state's last key, and absent when there is none: so a state is the same, byte for byte, whether
    it was set after each of a lead's events or once after the last of them (as a batch does)."""
    wake: float | None = None
    if not ruleset.clocks or state["converted"]:
        pass
    elif ruleset.decays:
        whole = facts.copy()
        whole.update(status=state["status"], status_since=state.get("status_since"))
        whole["event.type"] = whole["event.activity_type"] = None
        whole[CHANGED_FACT] = frozenset()
        age_facts(whole, now)
        ruleset.evaluate(whole)  # points without the event's own tests: the baseline of their decay
        wake = next_wake(ruleset, whole, now)
    else:
        since = state.get("status_since")
        moved = {"status_since": since} if since != facts.get("status_since") else None
        wake = next_wake(ruleset, facts, now, moved or _NO_CHANGE)
    state.pop("wake_at", None)
    if wake is not None:
        state["wake_at"] = wake


_NO_CHANGE: dict[str, object] = {}


def _ignored(engine: Engine, state: LeadState, event: Cause, decided_at: float, status: str) -> dict[str, Any]:
    """The (unsent) decision of an answer that answers no claim of the lead."""
    score = state["score"] if state["score"] is not None else 0.0
    decision = _decision(engine, event, decided_at, status, status, state["points"], score, [], [], "none")
    decision["opportunity_id"] = state["opportunity_id"]
    return decision


def _merged(event: LeadMatched, decided_at: float) -> dict[str, Any]:
    """The ``lead.merged`` record of a lead found a duplicate by the answer ``event`` (no personal data)."""
    return {
        "schema_version": 1,
        "event_type": "lead.merged",
        "lead_id": event.lead_id,
        "survivor_id": event.survivor_id,
        "event_id": event.event_id,
        "merged_at": iso_utc(decided_at),
    }


def erase(
    state: LeadState | None, event: LeadErased, decided_at: float, position: Position | None = None
) -> dict[str, Any] | None:
    """The audit record of erasing the lead ``state`` (its ``lead.erased`` record: no personal data), or None when
    the erase event is a redelivery of one already applied before the state's last event (a replay: the state,
    recreated by later events, stays). The caller deletes the state.

    An erase of a lead with no state (already erased, or never seen) still yields its record: erasing is idempotent.
    """
    if state is not None and redelivered(state, position):
        return None
    return {
        "schema_version": 1,
        "event_type": "lead.erased",
        "lead_id": event.lead_id,
        "event_id": event.event_id,
        "erased_at": iso_utc(decided_at),
    }


def _decision(
    engine: Engine,
    event: Cause,
    decided_at: float,
    status: str,
    previous_status: str,
    points: float,
    score: float,
    factors: list[dict[str, Any]],
    matched_rules: Sequence[str],
    action: str,
) -> dict[str, Any]:
    """A decision in the contract's key order (the caller sets its opportunity id)."""
    return {
        "schema_version": 1,
        "decision_id": ids.decision_id(event.lead_id, event.event_id),
        "event_id": event.event_id,
        "lead_id": event.lead_id,
        "decided_at": _decided_at_text(decided_at),
        "occurred_at": _isoformat(event.occurred_at),
        "ruleset_version": engine.ruleset.version,
        "model_version": engine.model.version,
        "status": status,
        "previous_status": previous_status,
        "points": points,
        "score": score,
        "factors": factors,
        "matched_rules": list(matched_rules),
        "action": action,
        "opportunity_id": None,
        "duplicate_of": None,
        "trigger": event.trigger,
    }


def _convert(
    engine: Engine,
    state: LeadState,
    event: Cause,
    facts: dict[str, object],
    rule: QualificationRule,
    score: float,
    factors: list[dict[str, Any]],
    outcome: Any,
) -> dict[str, Any]:
    spec = rule.opportunity
    if spec is None:  # the compiler resolves defaults for converting rules; this is a guard
        msg = f"qualification rule {rule.id!r} converts but has no opportunity spec"
        raise AssertionError(msg)
    lead_id = event.lead_id
    opp_id = ids.opportunity_id(lead_id)
    amount = spec.amount(facts)
    stage = spec.stage
    probability = stage.probability if spec.probability is None else spec.probability
    owner_id = spec.owner_id
    queue = spec.queue
    if owner_id is None and queue is None:
        owner_id = state.get("owner_id")
        if owner_id is None:
            queue = engine.ruleset.conversion.queue
    converted_at = event.occurred_at
    try:
        close_date = (converted_at.astimezone(_UTC) + dt.timedelta(days=spec.close_in_days)).date()
    except OverflowError:  # converted in the last days of year 9999: the calendar's last day
        close_date = dt.date.max
    state["converted"] = True
    state["opportunity_id"] = opp_id
    state["converted_at"] = converted_at.timestamp()
    company = state.get("company") or " ".join(p for p in (state.get("first_name"), state.get("last_name")) if p)
    return {
        "schema_version": 1,
        "event_type": "opportunity.created",
        "opportunity_id": opp_id,
        "lead_id": lead_id,
        "event_id": event.event_id,
        "name": spec.name(facts),
        "account": {
            "name": company or lead_id,
            "industry": state.get("industry"),
            "annual_revenue": state.get("annual_revenue"),
            "number_of_employees": state.get("number_of_employees"),
            "country": state.get("country"),
            "state": state.get("state"),
            "website": state.get("website"),
        },
        "contact": {
            "first_name": state.get("first_name"),
            "last_name": state.get("last_name"),
            "email": state.get("email"),
            "phone": state.get("phone"),
            "title": state.get("title"),
        },
        "stage_name": stage.name,
        "probability": probability,
        "forecast_category": spec.forecast_category or stage.forecast_category,
        "amount": amount,
        "expected_revenue": None if amount is None else round(amount * probability / 100, 2),
        "close_date": close_date.isoformat(),
        "lead_source": state.get("lead_source"),
        "owner_id": owner_id,
        "queue": queue,
        "score": score,
        "factors": factors,
        "matched_rules": list(outcome.matched_rules),
        "converted_by_rule": rule.id,
        "ruleset_version": engine.ruleset.version,
        "model_version": engine.model.version,
        "converted_at": _isoformat(converted_at),
        "lead_created_at": _lead_created_at(state.get("first_seen_at")),
    }
