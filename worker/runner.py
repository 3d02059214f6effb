"""Start one worker process: load and check everything first, then hand over to Faust."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from worker.app import build_app
from worker.engine import load_engine
from worker.settings import Settings
from worker.topics import ensure_topics

__all__ = ["run_worker"]

logger = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    """Run until stopped (SIGTERM/SIGINT). A bad ruleset or model stops start-up with its message."""
    import faust  # importing faust is slow; only the worker needs it

    engine = load_engine(settings)
    logger.info("ruleset %s, model %s", engine.ruleset.version, engine.model.version)
    ensure_topics(settings)
    app = build_app(settings, engine, CollectorRegistry())
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 1
    return 0
