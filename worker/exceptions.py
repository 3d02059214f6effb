"""Every error leadflow raises on purpose derives from :class:`LeadflowError`.

Hierarchy::

    LeadflowError
    ├── ConfigError(ValueError)            settings that cannot work (bad URL, missing file)
    ├── RulesetError(ValueError)           a ruleset that cannot be loaded; ``.problems`` lists every one
    ├── ModelError(ValueError)             a model file that is not a valid leadflow model
    ├── TrainingError(ValueError)          training data or a column mapping that cannot be used; ``.source``
    │                                      names the file, ``.column`` and ``.key`` what in it
    ├── EventError(ValueError)             an input record that is not a valid lead event
    │                                      (``.reason`` is the bounded dead-letter reason)
    ├── StateError(ValueError)             a stored lead state this version cannot read (``.lead_id``)
    ├── BrokerError(RuntimeError)          the embedded broker could not be found or started
    ├── BacktestError(ValueError)          a backtest input that cannot be read (events file, topic, broker,
    │                                      ruleset, outcomes CSV); ``.source`` names it
    ├── DriftError(ValueError)             ``leadflow drift`` cannot compare: a model without training
    │                                      distributions, no events; ``.source`` names the model or history
    ├── ExportError(ValueError)            ``leadflow export-training`` cannot join or write: a missing input,
    │                                      a column name taken twice; ``.source`` names it
    └── ForecastError(ValueError)          ``leadflow forecast`` cannot read a file, or has no opportunities;
                                           ``.source`` names it

Errors in the stream are data, not exceptions that escape: the worker turns an :class:`EventError` into a
dead-letter record and goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "DEAD_LETTER_REASONS",
    "BacktestError",
    "BrokerError",
    "ConfigError",
    "DeadLetterReason",
    "DriftError",
    "EventError",
    "ExportError",
    "ForecastError",
    "LeadflowError",
    "ModelError",
    "Problem",
    "RulesetError",
    "StateError",
    "TrainingError",
]


DeadLetterReason = Literal[
    "too_large",
    "tombstone",
    "not_utf8",
    "not_json",
    "not_an_object",
    "missing_key",
    "missing_lead_id",
    "unknown_event_type",
    "unsupported_schema_version",
    "schema_violation",
    "key_mismatch",
    "unreadable",
    "state_too_large",
    "processing_error",
    "unknown_opportunity",
]
"""Why a record was refused: the ``leadflow.reason`` header of a dead letter and the ``reason`` label of the
metrics that count refusals. A bounded set; docs/RELIABILITY.md says what each means."""
DEAD_LETTER_REASONS: tuple[DeadLetterReason, ...] = get_args(DeadLetterReason)


class LeadflowError(Exception):
    """Base class of every error leadflow raises on purpose."""


class ConfigError(LeadflowError, ValueError):
    """A setting or file given to leadflow cannot work."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a ruleset, with where it is and how to fix it."""

    message: str
    path: str = "<ruleset>"
    line: int | None = None
    rule_id: str | None = None
    suggestion: str | None = None

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        rule = f" rule {self.rule_id!r}:" if self.rule_id else ""
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"{where}:{rule} {self.message}{hint}"


class RulesetError(LeadflowError, ValueError):
    """A ruleset failed validation; ``problems`` holds every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        n = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"ruleset has {n} problem{'s' if n != 1 else ''}:\n{lines}")


class ModelError(LeadflowError, ValueError):
    """A model file is not a valid leadflow model (wrong format, version or features)."""


class TrainingError(LeadflowError, ValueError):
    """Training data or its column mapping cannot be used; ``source``, ``column`` and ``key`` say where."""

    def __init__(self, message: str, *, source: str, column: str | None = None, key: str | None = None) -> None:
        self.source = source
        self.column = column
        self.key = key
        super().__init__(message)


class EventError(LeadflowError, ValueError):
    """An input record is not a valid lead event; ``reason`` is its bounded dead-letter reason."""

    def __init__(self, message: str, *, reason: DeadLetterReason) -> None:
        self.reason = reason
        super().__init__(message)


class StateError(LeadflowError, ValueError):
    """A stored lead state cannot be read by this version (a newer layout, or not a state at all)."""

    def __init__(self, message: str, *, lead_id: str | None = None) -> None:
        self.lead_id = lead_id
        super().__init__(message)


class BrokerError(LeadflowError, RuntimeError):
    """The embedded broker binary could not be found or did not start."""


class BacktestError(LeadflowError, ValueError):
    """An input of ``leadflow backtest`` cannot be used; ``source`` names it (a file, a topic, a broker URL)."""

    def __init__(self, message: str, *, source: str) -> None:
        self.source = source
        super().__init__(message)


class DriftError(LeadflowError, ValueError):
    """``leadflow drift`` cannot compare a window with the training data; ``source`` names the model or events."""

    def __init__(self, message: str, *, source: str) -> None:
        self.source = source
        super().__init__(message)


class ExportError(LeadflowError, ValueError):
    """``leadflow export-training`` cannot build the training CSV; ``source`` names the input or output at fault."""

    def __init__(self, message: str, *, source: str) -> None:
        self.source = source
        super().__init__(message)


class ForecastError(LeadflowError, ValueError):
    """``leadflow forecast`` cannot read an input or has nothing to report; ``source`` names the file or topic."""

    def __init__(self, message: str, *, source: str) -> None:
        self.source = source
        super().__init__(message)
