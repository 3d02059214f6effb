"""Routing in the replay: the pool requests a batch produced are assigned at once, as the pools' worker would.

The core turns a conversion into a routing request when the route names a pool (see :mod:`worker.routing.flow`);
in the worker, the pool's owner assigns it a moment later. The replay does the same in memory: one pool state and
one table of answered requests per ruleset, and :func:`worker.routing.flow.route_batch` for the assignment. Each
request is judged at the time the lead converted (the opportunity's ``converted_at``; for a lead routed on its
status, the time of the event that changed it), never at the replay's fixed ``decided_at`` (1970, which would
put every member outside working hours). SLA reassignments are not replayed: a history of lead events says
nothing about acceptances.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from worker.batch import BatchResult, Record
from worker.core import Engine
from worker.routing.flow import route_batch

__all__ = ["RoutingTally"]


@dataclass(slots=True)
class RoutingTally:
    """What routing did over a replay of one ruleset: leads per pool member, direct routes, skips, overflows."""

    assignments: Counter[tuple[str, str]] = field(default_factory=Counter)  # (pool, member or overflow target)
    direct: Counter[str] = field(default_factory=Counter)  # target label ("queue:DACH") of user/queue routes
    skips: Counter[tuple[str, str]] = field(default_factory=Counter)  # (pool, reason)
    overflows: Counter[str] = field(default_factory=Counter)  # pool
    _pools: dict[str, bytes] = field(default_factory=dict, repr=False)
    _done: dict[tuple[str, str], bytes] = field(default_factory=dict, repr=False)

    def assign(self, engine: Engine, result: BatchResult, decided_at: float) -> list[bytes]:
        """Count the batch's direct routes, assign its pool requests; the opportunities the pools placed."""
        for (_, label), n in result.routed.items():
            self.direct[label] += n
        if not result.route_requests:
            return []
        routing = engine.ruleset.routing
        if routing is None:  # a core without routing makes no request; nothing to assign
            return []
        entered = _status_times(result)
        records = [
            Record(key, orjson.dumps(_at_conversion(orjson.loads(value), entered)), "route-requests", 0, i)
            for i, (key, value) in enumerate(result.route_requests)
        ]
        done = self._done

        def load_done(request_id: str, pool: str) -> bytes | None:
            return done.get((request_id, pool))

        placed: list[bytes] = []
        while records:  # a pool that overflows (or escalates) to another pool hands the request on
            out = route_batch(
                routing, records, self._pools.get, load_done, decided_at, engine.ruleset.version, routing.default
            )
            self._pools.update(out.pool_states)
            done.update(out.done)
            self.assignments.update(out.assignments)
            self.skips.update(out.skips)
            self.overflows.update(out.overflows)
            placed += [value for _, value in out.opportunities]
            records = [Record(key, value, "route-requests", 0, i) for i, (key, value) in enumerate(out.forwards)]
        return placed


def _status_times(result: BatchResult) -> dict[tuple[str, str], str]:
    """When each lead of the batch entered each status: ``(lead id, status)`` → the event's ``occurred_at``."""
    entered: dict[tuple[str, str], str] = {}
    for _, raw in result.decisions:
        decision: dict[str, Any] = orjson.loads(raw)
        if decision.get("event_type") is None and decision["status"] != decision["previous_status"]:  # no erasure
            entered.setdefault((decision["lead_id"], decision["status"]), decision["occurred_at"])
    return entered


def _at_conversion(message: dict[str, Any], entered: dict[tuple[str, str], str]) -> dict[str, Any]:
    """The request judged at the lead's conversion (or status change) instead of the replay's fixed clock."""
    subject: dict[str, Any] = message["opportunity"]
    when = subject.get("converted_at") or entered.get((str(subject.get("lead_id")), str(subject.get("status"))))
    if isinstance(when, str):
        message["requested_at"] = dt.datetime.fromisoformat(when).timestamp()
    return message
