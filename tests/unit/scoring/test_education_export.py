"""An extra, on the real education export when it is there (../shared/data): the product never needs the file.

Every behaviour checked here is also tested on small generated exports (test_tabular.py); this only confirms
that the shipped mapping trains on the export it was written for and beats both baselines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.scoring.training import load_mapping, train_table

ROOT = Path(__file__).resolve().parents[3]
EXPORT = ROOT.parent / "shared" / "data" / "x-education-leads.csv"

pytestmark = pytest.mark.skipif(not EXPORT.exists(), reason=f"{EXPORT} is not on this machine (an optional extra)")


def test_the_shipped_mapping_trains_on_the_education_export_and_beats_both_baselines() -> None:
    mapping = load_mapping(ROOT / "examples" / "x-education" / "mapping.yaml")
    report = train_table(EXPORT, mapping, progress=False)
    m = report.metrics
    assert report.n_rows == 9240
    assert m["model"]["roc_auc"] > 0.89  # 0.8944 at seed 42: short of the 0.90 target (docs/MODEL.md)
    for baseline in ("naive Bayes (Odoo)", "points"):
        assert m["model"]["roc_auc"] > m[baseline]["roc_auc"]
        assert m["model"]["log_loss"] < m[baseline]["log_loss"]
    assert m["model"]["ece"] < 0.05
