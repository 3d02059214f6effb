"""The scoring model: a synthetic data generator, training and export, and plain-Python scoring with factors.

Importing this package is cheap: scikit-learn and numpy are imported only when training.
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
from worker.scoring._mapping import Mapping, load_mapping, parse_mapping
from worker.scoring._model import Model, Score, default_model_path, load_model
from worker.scoring.synth import SynthData, generate
from worker.scoring.tabular import TableReport, train_table
from worker.scoring.train import TrainReport, train_synthetic

__all__ = [
    "IS_MISSING",
    "IS_UNSEEN",
    "MODERATE",
    "STABLE",
    "FeatureDrift",
    "Mapping",
    "Model",
    "Score",
    "SynthData",
    "TableReport",
    "TrainReport",
    "default_model_path",
    "distributions",
    "explain_lead",
    "feature_checks",
    "generate",
    "load_mapping",
    "load_model",
    "measure_drift",
    "parse_mapping",
    "psi",
    "train_synthetic",
    "train_table",
    "training_distributions",
    "verdict",
]
