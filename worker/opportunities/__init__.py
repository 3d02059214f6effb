"""Following opportunities after conversion: each one's current state and the pipeline they add up to.

Plain functions over plain data (no Kafka, no Faust): :func:`pipeline_batch` folds the worker's
``opportunity.created`` records and the sales side's ``opportunity.updated`` / ``opportunity.closed`` feedback
into each opportunity's state, :class:`Pipeline` keeps the sums the worker's gauges export, and :func:`summarize`
computes every figure of the pipeline from states.
"""

from __future__ import annotations

from worker.opportunities._pipeline import (
    CREATED_TYPES,
    OUTCOMES,
    Cell,
    Closing,
    Pipeline,
    PipelineBatch,
    PipelineRecord,
    SourceLabels,
    days_to_close,
    days_to_conversion,
    expected_revenue,
    pipeline_batch,
    score_band,
    summarize,
)
from worker.opportunities._state import (
    FEEDBACK_TYPES,
    RECENT,
    State,
    apply_feedback,
    closed_stage,
    parse_feedback,
    state_from_created,
)

__all__ = [
    "CREATED_TYPES",
    "FEEDBACK_TYPES",
    "OUTCOMES",
    "RECENT",
    "Cell",
    "Closing",
    "Pipeline",
    "PipelineBatch",
    "PipelineRecord",
    "SourceLabels",
    "State",
    "apply_feedback",
    "closed_stage",
    "days_to_close",
    "days_to_conversion",
    "expected_revenue",
    "parse_feedback",
    "pipeline_batch",
    "score_band",
    "state_from_created",
    "summarize",
]
