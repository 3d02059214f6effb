"""Deterministic ids: the same input always yields the same id, so consumers can drop duplicates."""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["decision_id", "opportunity_id", "route_request_id", "routing_id"]

_NAMESPACE = uuid.UUID("6f1d8a52-5c3e-4d0b-9a51-3c1e4f0b7d21")
_DECISION_SHA1 = hashlib.sha1(_NAMESPACE.bytes + b"decision\x1f")  # noqa: S324  # UUID5 is SHA-1; copied per id
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def decision_id(lead_id: str, event_id: str) -> str:
    """One decision per (lead, event): a replayed event gets the same decision id.

    Exactly ``str(uuid.uuid5(_NAMESPACE, f"decision\\x1f{lead_id}\\x1f{event_id}"))``, computed without building
    UUID objects: this runs once per event.
    """
    h = _DECISION_SHA1.copy()  # the namespace and prefix hashed once: a copy costs less than hashing them again
    h.update(f"{lead_id}\x1f{event_id}".encode())
    x = h.hexdigest()
    # version 5 in the 13th hex digit, the RFC 4122 variant in the top bits of the 17th
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


def opportunity_id(lead_id: str) -> str:
    """A lead converts at most once, so its opportunity id depends on the lead alone."""
    return "opp-" + uuid.uuid5(_NAMESPACE, f"opportunity\x1f{lead_id}").hex


def routing_id(request_id: str) -> str:
    """One routing decision per routing request: a replayed request gets the same id."""
    return "rt-" + uuid.uuid5(_NAMESPACE, f"routing\x1f{request_id}").hex


def route_request_id(opportunity_id: str, attempt: int) -> str:
    """The id of an opportunity's ``attempt``-th routing (1: at conversion; 2, 3...: after SLA breaches)."""
    return f"{opportunity_id}#{attempt}"
