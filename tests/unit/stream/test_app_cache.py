"""The worker's state cache: bounded, emptied on rebalance, and never dropping a state not yet stored."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from prometheus_client import CollectorRegistry

from worker.batch import BatchResult
from worker.settings import Settings
from worker.stream._lead_stage import LeadBatch as Prepared
from worker.stream._lead_stage import LeadStage as BatchHandler
from worker.stream.metrics import Metrics


def _handler(cache_size: int) -> tuple[BatchHandler, SimpleNamespace]:
    app = SimpleNamespace(consumer_generation_id=1)
    handler = BatchHandler(
        cast(Any, app),
        Settings(state_cache_size=cache_size),
        cast(Any, None),
        Metrics(CollectorRegistry()),
        cast(Any, None),
    )
    return handler, app


def _inflight(*lead_ids: str) -> Prepared:
    result = BatchResult()
    result.states = dict.fromkeys(lead_ids, b"{}")
    return Prepared(result, cast(Any, None), {})


def test_the_cache_is_bounded_oldest_first() -> None:
    handler, _ = _handler(cache_size=4)
    cache = handler._cache()
    for n in range(6):
        cache[f"L{n}"] = {"n": n}
    assert list(handler._cache()) == ["L3", "L4", "L5"]  # over the bound: the older half goes


def test_a_rebalance_empties_the_cache_but_keeps_states_being_committed() -> None:
    handler, app = _handler(cache_size=100)
    cache = handler._cache()
    cache.update({"L1": {}, "L2": {}, "L3": {}})
    handler._inflight.append(_inflight("L2"))
    app.consumer_generation_id = 2
    assert list(handler._cache()) == ["L2"]


def test_eviction_keeps_states_being_committed() -> None:
    handler, _ = _handler(cache_size=2)
    cache = handler._cache()
    cache.update({"L1": {}, "L2": {}, "L3": {}, "L4": {}})
    handler._inflight.append(_inflight("L1"))
    assert list(handler._cache()) == ["L1", "L3", "L4"]  # the older half goes, except L1: not stored yet
