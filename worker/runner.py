"""Start one worker process: load and check everything first, then hand over to Faust."""

from __future__ import annotations

import dataclasses
import logging

from prometheus_client import CollectorRegistry

from worker.app import build_app
from worker.control import read_control
from worker.engine import load_engine
from worker.settings import Settings
from worker.topics import ensure_control_topic, ensure_topics

__all__ = ["run_worker"]

logger = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    """Run until stopped (SIGTERM/SIGINT). A bad ruleset or model stops start-up with its message."""
    import faust  # importing faust is slow; only the worker needs it

    engine = load_engine(settings)
    ensure_topics(settings)
    control = None
    refused: list[str] = []
    if settings.reload_from_control:
        ensure_control_topic(settings)
        control = read_control(settings)
        record, ruleset, refused = control.newest_valid_ruleset()
        for why in refused:
            logger.error("refused a ruleset on the control topic %r: %s", settings.topic_control, why)
        if record is not None and ruleset is not None:
            logger.info(
                "the control topic's ruleset %s (%s, offset %d) takes precedence over the rules file",
                ruleset.version,
                record.name,
                record.offset,
            )
            engine = dataclasses.replace(engine, ruleset=ruleset)
    logger.info("ruleset %s, model %s", engine.ruleset.version, engine.model.version)
    app = build_app(settings, engine, CollectorRegistry(), control)
    for _ in refused:
        app.leadflow_handler.metrics.ruleset_reloads.labels("control", "refused").inc()
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 1
    return 0
