"""Where a lead can go: a user, a queue or a pool (:class:`Target`), and the SLA of a pool (:class:`Sla`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Sla", "Target", "TargetKind"]

TargetKind = Literal["user", "queue", "pool"]


@dataclass(frozen=True, slots=True)
class Target:
    """A user (by id), a queue (by name) or a pool (by name)."""

    kind: TargetKind
    id: str

    def as_dict(self) -> dict[str, str]:
        """``{"user": id}``, ``{"queue": id}`` or ``{"pool": id}``: the shape of the YAML."""
        return {self.kind: self.id}

    def __str__(self) -> str:
        return f"{self.kind} {self.id!r}"


@dataclass(frozen=True, slots=True)
class Sla:
    """A pool's service level: a lead not accepted within ``accept_within_seconds`` is reassigned or escalated."""

    accept_within_seconds: float
    escalate: Target | None
    """Where the lead goes when the SLA is missed; None: to the next member of the pool."""
