"""What forgetting a converted lead's opportunity sends (docs/PRIVACY.md), for the lead step and the pools' owners."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from worker.routing.sla import erased_notice
from worker.settings import Settings
from worker.stream._outbox import Message

__all__ = ["forget_opportunity"]


def forget_opportunity(
    s: Settings, opportunity_id: str, position: Sequence[Any] | None, *, pools: bool = True
) -> list[Message]:
    """Tombstones for the opportunity's key on the outputs that carry it (``opportunities``, ``routing-decisions``:
    a compacted copy then drops it, a consumer learns to delete its own), and its ``erased`` notice for the steps
    that hold it: the SLA clock, the pipeline and, with ``pools``, the pools' owners, on every partition of the
    requests topic (LEADFLOW_PARTITIONS, as the worker creates it: the pool is not known here)."""
    key, notice = erased_notice(opportunity_id, position)
    out = [Message(s.topic_opportunities, key, None), Message(s.topic_routing_decisions, key, None)]
    out += [Message(s.topic_sla, key, notice), Message(s.topic_pipeline, key, notice)]
    if pools:
        out += [Message(s.topic_route_requests, key, notice, partition) for partition in range(s.partitions)]
    return out
