"""``GET /healthz`` and ``GET /ready`` on the worker's web port: what an orchestrator asks before it restarts a
worker or sends it traffic.

Liveness says whether restarting the process would help: it answers while the event loop does (a blocked loop
does not answer at all, and the probe times out), and fails once the app crashed or is stopping, or one of its
agents stopped. Readiness says whether the worker is doing its share: in its consumer group, its tables recovered,
and not rebalancing (a spare worker with no partitions is ready: it stands by). Both answer a small JSON body with the
reason. The decisions are plain functions of a :class:`WorkerView`; :func:`observe` reads one from Faust.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

import faust
from faust import web

__all__ = ["Health", "WorkerView", "add_health_pages", "liveness", "observe", "readiness"]


class Health(NamedTuple):
    ok: bool
    reason: str


@dataclass(frozen=True)
class WorkerView:
    """What the health checks look at, read from the running app."""

    crashed: str | None = None
    """Why the app crashed, or None."""
    stopping: bool = False
    agents_down: tuple[str, ...] = ()
    """The agents that crashed or stopped."""
    rebalancing: bool = False
    recovering: bool = False
    """Tables are being restored from their changelogs."""
    recovered: bool = False
    """The first assignment's recovery has finished and the streams were resumed."""
    partitions: int = 0
    """Partitions of leadflow's topics assigned to this worker."""


def liveness(view: WorkerView) -> Health:
    """Alive unless the app crashed, is stopping, or an agent stopped: then only a restart helps."""
    if view.crashed is not None:
        return Health(False, f"crashed: {view.crashed}")
    if view.stopping:
        return Health(False, "stopping")
    if view.agents_down:
        return Health(False, f"agents stopped: {', '.join(view.agents_down)}")
    return Health(True, "running")


def readiness(view: WorkerView) -> Health:
    """Ready once in the consumer group with its tables recovered and not rebalancing; a spare stands by."""
    alive = liveness(view)
    if not alive.ok:
        return alive
    if view.rebalancing:
        return Health(False, "rebalancing")
    if view.recovering:
        return Health(False, "recovering tables")
    if not view.recovered:
        return Health(False, "joining the consumer group")
    if view.partitions == 0:
        # a spare worker (more workers than partitions) is in the group and takes over when one leaves; holding it
        # unready would stall a rolling update that waits for every pod to be ready
        return Health(True, "standing by: no partitions assigned (more workers than partitions)")
    return Health(True, f"consuming {view.partitions} partitions")


def observe(app: Any, topics: Collection[str]) -> WorkerView:
    """The view of a running :class:`~worker.stream.app.LeadflowApp`."""
    reason = app.crash_reason
    recovery = app.tables.recovery
    return WorkerView(
        crashed=(repr(reason) if reason is not None else "unknown") if app.crashed else None,
        stopping=bool(app.should_stop),
        agents_down=tuple(sorted(name for name, agent in app.agents.items() if agent.should_stop)),
        rebalancing=bool(app.rebalancing),
        recovering=bool(recovery.in_recovery),
        recovered=recovery.completed.is_set(),
        partitions=len(app.partition_states(topics)),
    )


def add_health_pages(app: faust.App, topics: Collection[str]) -> None:
    """Serve ``/healthz`` and ``/ready`` on the app's web server: 200 or 503, with ``{"alive"|"ready", "reason"}``."""

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> web.Response:
        alive, reason = liveness(observe(app, topics))
        return self.json({"alive": alive, "reason": reason}, status=200 if alive else 503)

    @app.page("/ready")
    async def ready(self: web.View, request: web.Request) -> web.Response:
        ok, reason = readiness(observe(app, topics))
        return self.json({"ready": ok, "reason": reason}, status=200 if ok else 503)
