"""The scoring model: a synthetic data generator, training and export, and plain-Python scoring with factors.

Importing this package is cheap: scikit-learn and numpy are imported only when training.
"""

from worker.scoring._model import Model, Score, default_model_path, load_model
from worker.scoring.synth import SynthData, generate
from worker.scoring.train import TrainReport, train_synthetic

__all__ = [
    "Model",
    "Score",
    "SynthData",
    "TrainReport",
    "default_model_path",
    "generate",
    "load_model",
    "train_synthetic",
]
