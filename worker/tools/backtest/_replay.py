"""Replay raw records through the real core, one fresh in-memory state per ruleset, and keep each lead's outcome.

The records go through :func:`worker.batch.process_batch` exactly as in the worker (same parsing, validation,
dead-letter reasons and replay detection); only the state store is a dict. ``decided_at`` is fixed, and every
other part of a decision derives from the events, so the same history gives the same result every time. With a
``routing:`` section, the opportunities routed to a pool are assigned in the same replay (see
:mod:`worker.tools.backtest._routing`), so they count as converted and their owner is the member who got them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from worker.batch import Record, RecordLike, process_batch, trim_cache
from worker.columnar import BatchEngine
from worker.core import Engine
from worker.lead.state import LeadState
from worker.tools.backtest._routing import RoutingTally

__all__ = ["DECIDED_AT", "BadEvent", "LeadResult", "Run", "replay"]

DECIDED_AT = 0.0
"""The wall-clock time stamped on every replayed decision (1970-01-01T00:00:00Z): nothing depends on it."""

_EXAMPLES = 20  # bad events kept per ruleset with their position and message


@dataclass(slots=True)
class LeadResult:
    """Where one lead ended up after the whole history, under one ruleset."""

    status: str
    points: float = 0.0
    score: float = 0.0
    decided_by: str | None = None  # the qualification rule behind the latest status change (None: no rule)
    scoring_rules: tuple[str, ...] = ()  # scoring rules matched by the lead's last decision
    converted_by: str | None = None
    stage: str | None = None
    queue: str | None = None
    owner_id: str | None = None
    amount: float | None = None

    @property
    def converted(self) -> bool:
        """Whether leadflow converted the lead into an opportunity."""
        return self.converted_by is not None


@dataclass(frozen=True, slots=True)
class BadEvent:
    """A record the core refused, with where it was and why."""

    where: str
    reason: str
    error: str


@dataclass(slots=True)
class Run:
    """The replay of one ruleset: every lead's outcome, and counts of what was read."""

    engine: Engine
    leads: dict[str, LeadResult] = field(default_factory=dict)
    events_by_type: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    bad_by_reason: Counter[str] = field(default_factory=Counter)
    bad_examples: list[BadEvent] = field(default_factory=list)
    routing: RoutingTally = field(default_factory=RoutingTally)
    decide: BatchEngine = process_batch
    """The batch engine (``LEADFLOW_ENGINE``): the reference or the columnar one, the same outputs either way."""
    cache_size: int | None = None
    """Decoded states kept between batches (``LEADFLOW_STATE_CACHE_SIZE``; None: every lead's, 0: none)."""
    _store: dict[str, bytes] = field(default_factory=dict, repr=False)
    _cache: dict[str, LeadState] = field(default_factory=dict, repr=False)

    @property
    def valid_events(self) -> int:
        """Events that passed validation and were decided."""
        return sum(self.events_by_type.values())

    def apply(self, records: list[Record], where: Callable[[RecordLike], str]) -> None:
        """Decide one batch and fold the decisions and opportunities into the leads' outcomes."""
        result = self.decide(self.engine, records, self._store.get, DECIDED_AT, self._bounded_cache())
        self._store.update(result.states)
        for lead_id in result.erased:
            self._store.pop(lead_id, None)
        self.events_by_type.update(result.events_by_type)
        self.duplicates += result.duplicates
        qualification = {rule.id for rule in self.engine.ruleset.qualification_rules}
        default_status = self.engine.ruleset.default_status
        leads = self.leads
        loads = orjson.loads
        erased_at: dict[str, int] = {}  # lead id -> the place of its last erasure among the batch's decisions
        decided_at: dict[tuple[str, str], int] = {}  # (lead id, event id) -> the place of its decision
        for place, (_, raw) in enumerate(result.decisions):
            decision: dict[str, Any] = loads(raw)
            if decision.get("event_type") == "lead.erased":  # an erasure's audit record: the lead is forgotten
                leads.pop(decision["lead_id"], None)
                erased_at[decision["lead_id"]] = place
                continue
            decided_at[decision["lead_id"], decision["event_id"]] = place
            lead = leads.get(decision["lead_id"])
            if lead is None:
                lead = leads[decision["lead_id"]] = LeadResult(default_status)
            matched: list[str] = decision["matched_rules"]
            rule = matched[-1] if matched and matched[-1] in qualification else None
            lead.status, lead.points, lead.score = decision["status"], decision["points"], decision["score"]
            lead.scoring_rules = tuple(matched[:-1] if rule is not None else matched)
            if decision["action"] != "none":
                lead.decided_by = rule
        placed = self.routing.assign(self.engine, result, DECIDED_AT)
        for raw in [*(value for _, value in result.opportunities), *placed]:
            opportunity: dict[str, Any] = loads(raw)
            lead_id = opportunity["lead_id"]
            if decided_at.get((lead_id, opportunity["event_id"]), -1) < erased_at.get(lead_id, -1):
                continue  # converted before an erasure later in the batch: forgotten
            lead = leads[lead_id]
            lead.converted_by = opportunity["converted_by_rule"]
            lead.stage, lead.amount = opportunity["stage_name"], opportunity["amount"]
            lead.queue, lead.owner_id = opportunity["queue"], opportunity["owner_id"]
        for record, error in result.dead_letters:
            self.bad_by_reason[error.reason] += 1
            if len(self.bad_examples) < _EXAMPLES:
                self.bad_examples.append(BadEvent(where(record), error.reason, str(error)))

    def _bounded_cache(self) -> dict[str, LeadState] | None:
        """The decoded states to decide the next batch with, at most ``cache_size`` of them before it.

        Over the bound, the oldest half goes, as in the worker's lead stage: their states stay in ``_store``, and
        a lead not in the cache is decoded from there, so the decisions are the same with any bound.
        """
        if self.cache_size is None:
            return self._cache
        if self.cache_size == 0:
            return None
        trim_cache(self._cache, self.cache_size)
        return self._cache


def replay(
    engines: Mapping[str, Engine],
    batches: Iterable[list[Record]],
    where: Callable[[RecordLike], str] = lambda record: f"offset {record.offset}",
    progress: Callable[[int], None] | None = None,
    decide: BatchEngine = process_batch,
    cache_size: int | None = None,
) -> dict[str, Run]:
    """Run every batch through every engine, each with its own state, by the batch engine ``decide``, keeping at
    most ``cache_size`` decoded states per engine between batches (None: no bound); ``progress`` is told how many
    were read."""
    runs = {label: Run(engine, decide=decide, cache_size=cache_size) for label, engine in engines.items()}
    for batch in batches:
        for run in runs.values():
            run.apply(batch, where)
        if progress is not None:
            progress(len(batch))
    return runs
