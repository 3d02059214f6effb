"""Load the ruleset and the model named by the settings into an :class:`~worker.core.Engine`, and set up the garbage
collector for a process that decides many events (the worker, ``leadflow backtest``)."""

from __future__ import annotations

import gc

from worker.artifacts import check_servable
from worker.core import Engine
from worker.rules import default_ruleset_path, load_ruleset
from worker.scoring import default_model_path, load_model
from worker.settings import Settings

__all__ = ["load_engine", "tune_gc"]


def load_engine(settings: Settings) -> Engine:
    """Everything a decision depends on; raises RulesetError/ModelError/ConfigError with their messages."""
    ruleset = load_ruleset(settings.rules or default_ruleset_path())
    model_path = settings.model or default_model_path()
    model = check_servable(load_model(model_path), str(model_path))
    return Engine(
        ruleset=ruleset,
        model=model,
        dedupe_window=settings.dedupe_window,
        top_factors=settings.top_factors,
        max_event_bytes=settings.max_event_bytes,
    )


def tune_gc(threshold: int) -> None:
    """Collect garbage less often, and never rescan what start-up built.

    A worker allocates and frees millions of small dicts, lists and strings a second, nearly all freed by
    reference counting; Python's default (a young-generation pass every 700 allocations, full passes over
    every live object, the lead states included, as they age) cost about 9 % of a busy worker's CPU on the
    end-to-end benchmark, against under 1 % at 50,000. Modules, the ruleset and the model, built at start-up,
    are moved out of the collector's sight (``gc.freeze``). 0 leaves Python's settings alone.
    """
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(threshold, middle, old)
