"""The columnar batch engine (issue #21), the default: :func:`worker.batch.process_batch`'s result, with a whole
batch decided in one block over columns where nothing the rules and model read is written by a decision and the
batch is large enough for that to pay, and by the per-event core otherwise; that core stays the reference it is
checked against.

``LEADFLOW_ENGINE`` picks the engine the worker, the backtest and the benchmarks run (:func:`batch_engine`).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import Literal, Protocol

from worker.batch import BatchResult, RecordLike, process_batch
from worker.columnar._engine import WHOLE_FROM, process_columnar
from worker.core import Engine
from worker.lead.state import LeadState

__all__ = ["ENGINES", "WHOLE_FROM", "BatchEngine", "EngineName", "batch_engine", "process_columnar"]

EngineName = Literal["reference", "columnar"]
ENGINES: tuple[EngineName, ...] = ("reference", "columnar")


class BatchEngine(Protocol):
    """What :func:`worker.batch.process_batch` and :func:`process_columnar` both are."""

    def __call__(
        self,
        engine: Engine,
        records: Sequence[RecordLike],
        load_state: Callable[[str], bytes | None],
        decided_at: float,
        cache: MutableMapping[str, LeadState] | None = None,
        drift_sample: int = 0,
    ) -> BatchResult: ...


def batch_engine(name: EngineName) -> BatchEngine:
    """The batch function of the engine named ``name``: both take and return the same things."""
    if name == "columnar":
        return process_columnar
    return process_batch
