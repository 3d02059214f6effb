"""What ``leadflow train --data`` measured and wrote: :class:`TableReport`, printed by the command and drawn in the
model card (:mod:`._card`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.scoring import Model
from worker.scoring.training._splits import Spread, Verdict, spread_table

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
    spread: dict[str, dict[str, Spread]] = field(default_factory=dict)  # scorer -> metric -> over the splits
    verdicts: list[Verdict] = field(default_factory=list)  # each baseline against the model
    regularisation: dict[str, Any] = field(default_factory=dict)  # C and how it was chosen
    withheld: bool = False  # a baseline does as well and no-better models were not allowed: no model.json
    splits: list[dict[str, Any]] = field(default_factory=list, repr=False)  # per split: seed, C, metrics by scorer

    @property
    def no_better(self) -> list[Verdict]:
        """The baselines that do as well as the model."""
        return [v for v in self.verdicts if v.as_good]

    def __str__(self) -> str:
        n = self.spread["model"]["roc_auc"].n if self.spread else 1
        lines = [
            f"model {self.version}: {self.n_rows:,} leads from {self.data} ({self.n_skipped:,} skipped: no outcome), "
            f"base rate {self.base_rate:.1%}",
            f"evaluated on {self.split}: {self.n_train:,} train / {self.n_test:,} held out each; "
            f"the model written is fitted on all {self.n_rows:,} leads",
        ]
        c = self.regularisation
        if "grid" in c:
            per_split = sorted(set(c["per_split"]))
            lines.append(
                f"C = {c['C']:g}, chosen by {c['chosen_by']} (grid {', '.join(f'{v:g}' for v in c['grid'])}; "
                f"on the splits: {', '.join(f'{v:g}' for v in per_split)})"
            )
        elif c:
            lines.append(f"C = {c['C']:g}, fixed by the mapping (model.C)")
        flagged = [f for f in self.leakage if f["flagged"]]
        for f in flagged:
            lines.append(
                f"LEAKAGE? column {f['column']!r} ({f['feature']}) alone reaches AUC {f['auc']:.3f} "
                f"(>= {self.calibration['max_auc']:.2f}); "
                + ("left out of the model" if not f["kept"] else "kept (leakage.drop_flagged: false)")
                + "; exclude it in the mapping if it is recorded after the outcome"
            )
        if self.spread:
            lines.append(f"held-out figures over {n} split{'s' if n > 1 else ''}: mean ± standard deviation [min, max]")
            lines.append(spread_table(self.spread))
        else:
            lines.append(_table(self.metrics))
        if self.other_variant is not None:
            lines.append(f"{self.other_variant['label']} (means over the splits):")
            lines.append(_table(self.other_variant["metrics"]))
        lines += [str(v) for v in self.verdicts]
        c = self.calibration
        if c.get("method") == "platt":
            lines.append(
                f"calibration (Platt, out-of-fold): mean ECE {c['ece_before']:.4f} -> {c['ece_after']:.4f} on the "
                f"held-out rows; final model: logit' = {c['a']:.3f} x logit {c['b']:+.3f}"
            )
        if self.no_better:
            names = " and ".join(v.baseline for v in self.no_better)
            lines.append(
                f"NOT BETTER: {names} {'does' if len(self.no_better) == 1 else 'do'} as well as the model; "
                + (
                    "model.json not written (pass --allow-no-better to write it anyway)"
                    if self.withheld
                    else "written anyway (no-better models allowed)"
                )
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
