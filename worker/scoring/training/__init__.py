"""Training the scoring model: from synthetic data (``leadflow train``) or a CRM export (``leadflow train --data``).

:func:`train_synthetic` and :func:`train_table` fit a logistic model over the serving features
(:mod:`worker.scoring`), compare it with baselines over repeated stratified splits (mean and spread; a model no
better than a baseline is said to be, and not written unless allowed), calibrate it, and write the model JSON and,
for a CRM export, a model card. scikit-learn and numpy are imported only when training runs.
"""

from worker.scoring.training._evaluation import calibration_bins, expected_calibration_error
from worker.scoring.training._figures import figure_png
from worker.scoring.training._mapping import DEFAULT_SPLITS, LEAD_FIELDS, ColumnMapping, load_mapping, parse_mapping
from worker.scoring.training._report import TableReport
from worker.scoring.training.synth import SynthData, generate
from worker.scoring.training.tabular import train_table
from worker.scoring.training.train import TrainReport, train_synthetic

__all__ = [
    "DEFAULT_SPLITS",
    "LEAD_FIELDS",
    "ColumnMapping",
    "SynthData",
    "TableReport",
    "TrainReport",
    "calibration_bins",
    "expected_calibration_error",
    "figure_png",
    "generate",
    "load_mapping",
    "parse_mapping",
    "train_synthetic",
    "train_table",
]
