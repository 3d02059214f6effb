"""Start one worker process: load and check everything first, then hand over to Faust."""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor

from aiokafka.errors import KafkaError as AioKafkaError
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from worker.artifacts import KINDS, ArtifactKind, swap
from worker.core import Engine
from worker.engine import load_engine, tune_gc
from worker.exceptions import ConfigError
from worker.settings import Settings
from worker.stream.accounts import AccountFeed
from worker.stream.app import LeadflowWorker, build_app
from worker.stream.control import ControlSnapshot, read_control
from worker.stream.topics import check_broker, ensure_accounts_topic, ensure_control_topic, ensure_topics

__all__ = ["run_worker"]

logger = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    """Run until stopped (SIGTERM/SIGINT). A bad ruleset or model stops start-up with its message."""
    from worker.stream import _fetch

    _fetch.install()  # records the client cannot read become dead letters, not a consumer that stops
    engine = load_engine(settings)
    check_broker(settings)
    ensure_topics(settings)
    # the accounts topic is read beside the control topic: each read ends with a quiet poll (tansu under-reports a
    # topic's end), so one after the other they cost a second of every start-up
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadflow-accounts") as pool:
        loading = pool.submit(_load_accounts, settings)
        engine, control, refused = _load_control(settings, engine)
        accounts = loading.result()
    engine = dataclasses.replace(engine, accounts=accounts.index)
    logger.info("ruleset %s, model %s", engine.ruleset.version, engine.model.version)
    app = build_app(settings, engine, CollectorRegistry(), control, accounts)
    if control is not None:  # what start-up refused counts like what the running worker refuses
        metrics = app.leadflow_handler.metrics
        for kind, n in refused.items():
            metrics.reloads.labels(kind, "control", "refused").inc(n)
        for error in control.undecodable:
            metrics.count_refused("control", error.reason)
    tune_gc(settings.gc_threshold)
    worker = LeadflowWorker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 1
    return 0


def _load_control(settings: Settings, engine: Engine) -> tuple[Engine, ControlSnapshot | None, dict[str, int]]:
    """The engine with the control topic's newest valid ruleset and model, the topic as read, and how many records
    of each kind start-up refused (nothing read when reloading from the control topic is off)."""
    if not settings.reload_from_control:
        return engine, None, {}
    try:
        ensure_control_topic(settings)
        control = read_control(settings)
    except (KafkaError, AioKafkaError) as exc:
        msg = (
            f"cannot use the control topic {settings.topic_control!r}: {exc!r}; create it (one partition,"
            " compacted) and let the worker read it, or set LEADFLOW_RELOAD_FROM_CONTROL=false"
        )
        raise ConfigError(msg) from exc
    refused: dict[str, int] = {}
    for artifact_kind in KINDS:
        engine, refused[artifact_kind] = _newest_from_control(settings, control, artifact_kind, engine)
    refused["unknown"] = len(control.undecodable)
    return engine, control, refused


def _load_accounts(settings: Settings) -> AccountFeed:
    """The accounts topic read to its end."""
    accounts = AccountFeed(settings)
    try:
        ensure_accounts_topic(settings)
        accounts.load()
    except (KafkaError, AioKafkaError) as exc:
        msg = f"cannot read the accounts topic {settings.topic_accounts!r}: {exc!r}; check LEADFLOW_TOPIC_ACCOUNTS"
        raise ConfigError(msg) from exc
    return accounts


def _newest_from_control(
    settings: Settings, control: ControlSnapshot, kind: ArtifactKind, engine: Engine
) -> tuple[Engine, int]:
    """The engine with the control topic's newest valid ruleset or model (it takes precedence over the file), and
    how many newer ones were refused."""
    record, artifact, refused = control.newest_valid(kind)
    for why in refused:
        logger.error("refused a %s on the control topic %r: %s", kind, settings.topic_control, why)
    if record is None or artifact is None:
        return engine, len(refused)
    logger.info(
        "the control topic's %s %s (%s, offset %d) takes precedence over the file",
        kind,
        artifact.version,
        record.name,
        record.offset,
    )
    return swap(engine, artifact), len(refused)
