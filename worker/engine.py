"""Load the ruleset and the model named by the settings into an :class:`~worker.core.Engine`."""

from __future__ import annotations

from worker.artifacts import check_servable
from worker.core import Engine
from worker.rules import default_ruleset_path, load_ruleset
from worker.scoring import default_model_path, load_model
from worker.settings import Settings

__all__ = ["load_engine"]


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
