"""Hot reload: a running worker switches to a new ruleset or model without a restart, atomically.

Two sources offer them: the files (``LEADFLOW_RULES``, ``LEADFLOW_MODEL``, checked every
``LEADFLOW_RELOAD_INTERVAL`` seconds and acted on only when their content changes) and the control topic (see
:mod:`worker.stream.control`). Whichever changes last wins. What fails validation is refused: logged with every problem,
counted, and the worker keeps what it has.

The swap replaces the handler's whole :class:`~worker.core.Engine`; a batch reads the engine once, so every
decision is made entirely by one ruleset and one model, and carries both versions.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Literal, Protocol

from worker.artifacts import ArtifactKind, compile_artifact, swap, version_in
from worker.core import Engine
from worker.exceptions import ConfigError, EventError, ModelError, RulesetError
from worker.stream.control import ControlRecord
from worker.stream.metrics import Metrics

__all__ = ["FileWatch", "Origin", "Reloader", "Result"]

logger = logging.getLogger(__name__)

Origin = Literal["file", "control"]
Result = Literal["applied", "unchanged", "refused"]


class HasEngine(Protocol):
    """What the reloader swaps the engine of (the worker's batch handler)."""

    engine: Engine


class Reloader:
    """Offers new rulesets and models to a running worker; counts and logs every outcome."""

    def __init__(self, target: HasEngine, metrics: Metrics) -> None:
        self.target = target
        self.metrics = metrics

    def offer(self, kind: ArtifactKind, text: str, name: str, origin: Origin) -> Result:
        """Compile ``text`` and, if it is valid and new, use it for every following decision."""
        current = version_in(self.target.engine, kind)
        try:
            artifact = compile_artifact(kind, text, name)
        except (RulesetError, ModelError) as exc:
            logger.error("refused the %s from the %s %s; keeping %s. %s", kind, origin, name, current, exc)
            return self._count(kind, origin, "refused")
        except Exception:  # a compiler bug: the running worker keeps what it has, as for any refused artifact
            logger.exception(
                "refused the %s from the %s %s; keeping %s: compiling it failed", kind, origin, name, current
            )
            return self._count(kind, origin, "refused")
        if artifact.version == current:
            return self._count(kind, origin, "unchanged")
        engine = self.target.engine = swap(self.target.engine, artifact)
        self.metrics.set_versions(engine.ruleset.version, engine.model.version, engine.ruleset.statuses)
        logger.info("switched %s %s -> %s (from the %s %s)", kind, current, artifact.version, origin, name)
        return self._count(kind, origin, "applied")

    def offer_record(self, record: ControlRecord | EventError) -> Result:
        """A control record: a ruleset or model to offer, or one that could not be decoded (refused)."""
        if isinstance(record, EventError):
            logger.error("refused a control record. %s", record)
            self.metrics.count_refused("control", record.reason)
            return self._count("unknown", "control", "refused")
        return self.offer(record.kind, record.text, f"{record.name} (control offset {record.offset})", "control")

    def refuse(self, kind: ArtifactKind, origin: Origin, why: str) -> Result:
        """Count and log a ruleset or model that could not even be read."""
        current = version_in(self.target.engine, kind)
        logger.error("refused the %s from the %s; keeping %s. %s", kind, origin, current, why)
        return self._count(kind, origin, "refused")

    def _count(self, kind: str, origin: Origin, result: Result) -> Result:
        self.metrics.reloads.labels(kind, origin, result).inc()
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
            msg = f"cannot read {str(self.path)!r}: {reason}"
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
