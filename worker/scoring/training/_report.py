"""What ``leadflow train --data`` measured and wrote: :class:`TableReport`, printed by the command and drawn in the
model card (:mod:`._card`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.scoring import Model

__all__ = ["TableReport"]


@dataclass(slots=True)
class TableReport:
    """What ``train`` measured and wrote; ``str()`` is what the command prints."""

    name: str
    version: str
    data: str
    n_rows: int
    n_skipped: int
    n_train: int
    n_test: int
    split: str
    base_rate: float
    metrics: dict[str, dict[str, Any]]
    leakage: list[dict[str, Any]]
    calibration: dict[str, Any]
    features: list[str]
    other_variant: dict[str, Any] | None
    model: Model | None = field(default=None, repr=False)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    curves: dict[str, Any] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        lines = [
            f"model {self.version}: {self.n_rows:,} leads from {self.data} ({self.n_skipped:,} skipped: no outcome), "
            f"{self.n_train:,} train / {self.n_test:,} held out ({self.split}), base rate {self.base_rate:.1%}",
        ]
        flagged = [f for f in self.leakage if f["flagged"]]
        for f in flagged:
            lines.append(
                f"LEAKAGE? column {f['column']!r} ({f['feature']}) alone reaches AUC {f['auc']:.3f} "
                f"(>= {self.calibration['max_auc']:.2f}); "
                + ("left out of the model" if not f["kept"] else "kept (leakage.drop_flagged: false)")
                + "; exclude it in the mapping if it is recorded after the outcome"
            )
        lines.append(_table(self.metrics))
        if self.other_variant is not None:
            lines.append(f"{self.other_variant['label']}:")
            lines.append(_table(self.other_variant["metrics"]))
        c = self.calibration
        if c.get("method") == "platt":
            lines.append(
                f"calibration (Platt, out-of-fold): ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f} on the held-out "
                f"rows; logit' = {c['a']:.3f} x logit {c['b']:+.3f}"
            )
        lines += [f"wrote {path}" for path in self.files]
        lines.append(f"took {self.seconds:.1f}s")
        return "\n".join(lines)


def _table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    head = f"  {'':<22}{'ROC AUC':>8}{'PR AUC':>8}{'log loss':>9}{'Brier':>8}{'ECE':>8}{'lift@10%':>9}"
    out = [head]
    for name, m in rows.items():
        out.append(
            f"  {name:<22}{m['roc_auc']:>8.4f}{m['pr_auc']:>8.4f}{m['log_loss']:>9.4f}{m['brier']:>8.4f}"
            f"{m['ece']:>8.4f}{m['lift'][0]:>9.2f}"
        )
    return "\n".join(out)
