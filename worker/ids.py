"""Deterministic ids: the same input always yields the same id, so consumers can drop duplicates."""

from __future__ import annotations

import uuid

__all__ = ["decision_id", "opportunity_id"]

_NAMESPACE = uuid.UUID("6f1d8a52-5c3e-4d0b-9a51-3c1e4f0b7d21")


def decision_id(lead_id: str, event_id: str) -> str:
    """One decision per (lead, event): a replayed event gets the same decision id."""
    return str(uuid.uuid5(_NAMESPACE, f"decision\x1f{lead_id}\x1f{event_id}"))


def opportunity_id(lead_id: str) -> str:
    """A lead converts at most once, so its opportunity id depends on the lead alone."""
    return "opp-" + uuid.uuid5(_NAMESPACE, f"opportunity\x1f{lead_id}").hex
