"""The scoring model as served: plain-Python scoring with factors, its features, and drift measures.

Training (synthetic data, CRM exports, the model card) lives in :mod:`worker.scoring.training`, which builds on this
package; nothing here imports it. Importing this package is cheap: no numpy, no scikit-learn.
"""

from worker.scoring._drift import (
    IS_MISSING,
    IS_UNSEEN,
    MODERATE,
    STABLE,
    FeatureDrift,
    distributions,
    feature_checks,
    measure_drift,
    psi,
    training_distributions,
    verdict,
)
from worker.scoring._lead import explain_lead
from worker.scoring._model import Model, Score, default_model_path, load_model, model_from_text

__all__ = [
    "IS_MISSING",
    "IS_UNSEEN",
    "MODERATE",
    "STABLE",
    "FeatureDrift",
    "Model",
    "Score",
    "default_model_path",
    "distributions",
    "explain_lead",
    "feature_checks",
    "load_model",
    "measure_drift",
    "model_from_text",
    "psi",
    "training_distributions",
    "verdict",
]
