"""Hot reload: a running worker switches to a new ruleset without a restart, atomically.

Two sources offer rulesets: the rules file (checked every ``LEADFLOW_RELOAD_INTERVAL`` seconds, acted on only when
its content changes) and the control topic (see :mod:`worker.control`). Whichever changes last wins. A ruleset that
fails validation is refused: logged with every problem, counted, and the worker keeps the one it has.

The swap replaces the handler's whole :class:`~worker.core.Engine`; a batch reads the engine once, so every
decision is made entirely by one version and carries it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path
from typing import Literal, Protocol

from worker.control import ControlRecord
from worker.core import Engine
from worker.exceptions import ConfigError, RulesetError
from worker.metrics import Metrics
from worker.rules import parse_ruleset

__all__ = ["FileWatch", "Origin", "Reloader", "Result"]

logger = logging.getLogger(__name__)

Origin = Literal["file", "control"]
Result = Literal["applied", "unchanged", "refused"]


class HasEngine(Protocol):
    """What the reloader swaps the engine of (the worker's batch handler)."""

    engine: Engine


class Reloader:
    """Offers new rulesets to a running worker; counts and logs every outcome."""

    def __init__(self, target: HasEngine, metrics: Metrics) -> None:
        self.target = target
        self.metrics = metrics

    def offer(self, text: str, name: str, origin: Origin) -> Result:
        """Compile ``text`` and, if it is valid and new, make it the ruleset of every following decision."""
        try:
            ruleset = parse_ruleset(text, name)
        except RulesetError as exc:
            logger.error("refused the ruleset from the %s %s; keeping %s. %s", origin, name, self.version, exc)
            return self._count(origin, "refused")
        if ruleset.version == self.version:
            return self._count(origin, "unchanged")
        old = self.version
        self.target.engine = dataclasses.replace(self.target.engine, ruleset=ruleset)
        engine = self.target.engine
        self.metrics.set_versions(ruleset.version, engine.model.version, ruleset.statuses)
        logger.info("switched ruleset %s -> %s (from the %s %s)", old, ruleset.version, origin, name)
        return self._count(origin, "applied")

    def offer_record(self, record: ControlRecord | ConfigError) -> Result:
        """A control record: a ruleset to offer, or one that could not be decoded (refused)."""
        if isinstance(record, ConfigError):
            logger.error("refused a control record; keeping %s. %s", self.version, record)
            return self._count("control", "refused")
        return self.offer(record.text, f"{record.name} (control offset {record.offset})", "control")

    def refuse(self, origin: Origin, why: str) -> Result:
        """Count and log a ruleset that could not even be read."""
        logger.error("refused the ruleset from the %s; keeping %s. %s", origin, self.version, why)
        return self._count(origin, "refused")

    @property
    def version(self) -> str:
        return self.target.engine.ruleset.version

    def _count(self, origin: Origin, result: Result) -> Result:
        self.metrics.ruleset_reloads.labels(origin, result).inc()
        return result


class FileWatch:
    """Tells when a file's content changed since the last look (by stat first, then by content digest)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._stat()
        self._digest = self._read_digest()

    def changed(self) -> str | None:
        """The file's new text if its content changed since the last call, else None.

        An unreadable or missing file raises ConfigError once per change of its state, then None until it changes
        again, so a deleted file is reported once rather than every interval.
        """
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            data = self.path.read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self._digest = None
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            msg = f"cannot read the rules file {str(self.path)!r}: {reason}"
            raise ConfigError(msg) from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return None
        self._digest = digest
        return text

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None
