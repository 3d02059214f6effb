"""The model card: one self-contained HTML page (charts embedded) plus the same charts as PNG files.

matplotlib is imported when a chart is drawn, and only its object API is used (no pyplot, no global state).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from worker.scoring._features import MISSING, OTHER, Categorical, Cross, Flag, Keyword, Numeric
from worker.scoring._model import Model
from worker.scoring.training._evaluation import calibration_bins, lift_by_decile
from worker.scoring.training._figures import figure_png
from worker.scoring.training._report import TableReport
from worker.scoring.training._splits import Spread

__all__ = ["strongest_factors", "write_card"]

_DPI = 100  # of the PNG figures

_COLOURS = {"model": "#2563eb", "naive Bayes (Odoo)": "#f59e0b", "points": "#6b7280"}
_CHARTS = ("roc", "calibration", "scores", "lift", "factors")


def strongest_factors(model: Model, rows: Sequence[Mapping[str, object]], top: int = 20) -> list[tuple[str, float]]:
    """The values that move a score most, as a factor reads: every learned level, numbers at 3 training quantiles."""
    found: dict[str, float] = {}
    for feature in model.features:
        probes: list[dict[str, object]] = []
        if isinstance(feature, Categorical):
            shown = feature.display or feature.levels
            probes = [{feature.path: s} for s in shown]
            probes += [{feature.path: "\x00" + OTHER}, {}]
        elif isinstance(feature, Flag | Keyword):
            probes = [{feature.path: level} for level in feature.all_levels if level not in (MISSING, OTHER)]
            probes.append({})
        elif isinstance(feature, Cross):  # one training lead per learned pair
            first: dict[str, Mapping[str, object]] = {}
            for r in rows:
                first.setdefault(feature.value(r), r)
            probes = [dict(r) for r in first.values()]
        elif isinstance(feature, Numeric):
            present = sorted(feature.clipped(r)[0] for r in rows if not feature.clipped(r)[1])
            probes = [{feature.path: present[len(present) * q // 10]} for q in (1, 5, 9)] if present else []
            probes.append({})
        for facts in probes:
            score = model.score(facts)
            contribution = dict(score.contributions)[feature.name]
            label = feature.describe(facts).replace("\x00", "")
            found[label] = contribution
    return sorted(found.items(), key=lambda kv: -abs(kv[1]))[:top]


def write_card(model: Model, report: TableReport, out: Path, train: Sequence[Mapping[str, object]]) -> list[Path]:
    """Write ``model-card.html`` and one PNG per chart into ``out``; return the paths written."""
    factors = strongest_factors(model, train)
    pngs = {
        "roc": _roc(report),
        "calibration": _calibration(report),
        "scores": _scores(report),
        "lift": _lift(report),
        "factors": _factors(factors),
    }
    written = []
    for name in _CHARTS:
        path = out / f"{name}.png"
        path.write_bytes(pngs[name])
        written.append(path)
    card = out / "model-card.html"
    card.write_text(_html(model, report, factors, pngs), encoding="utf-8")
    return [card, *written]


def _figure(width: float = 5.5, height: float = 4.0) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _roc(report: TableReport) -> bytes:
    from sklearn.metrics import roc_auc_score, roc_curve

    figure = _figure()
    ax = figure.add_subplot()
    y = report.curves["y"]
    for name, p in report.curves["scores"].items():
        fpr, tpr, _ = roc_curve(y, p)
        auc = roc_auc_score(y, p)  # on this split: the table gives the mean over the splits
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})", color=_COLOURS.get(name))
    ax.plot([0, 1], [0, 1], linestyle=":", color="#9ca3af")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=f"ROC, held-out leads ({report.curves.get('which', 'one split')})",
    )
    ax.legend(loc="lower right", fontsize=8)
    return figure_png(figure, _DPI)


def _calibration(report: TableReport) -> bytes:
    figure = _figure()
    ax = figure.add_subplot()
    y = report.curves["y"]
    for name, p, style in (
        ("before calibration", report.curves["uncalibrated"], "--"),
        ("model (calibrated)", report.curves["scores"]["model"], "-"),
    ):
        bins = calibration_bins(y, p)
        ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], style, marker="o", label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="#9ca3af", label="perfect")
    ax.set(xlabel="predicted probability", ylabel="observed conversion rate", title="Calibration, held-out leads")
    ax.legend(loc="upper left", fontsize=8)
    return figure_png(figure, _DPI)


def _scores(report: TableReport) -> bytes:
    figure = _figure()
    ax = figure.add_subplot()
    y, p = report.curves["y"], report.curves["scores"]["model"]
    edges = [k / 20 for k in range(21)]
    ax.hist([pi for pi, yi in zip(p, y, strict=True) if yi], bins=edges, alpha=0.6, label="converted", color="#16a34a")
    ax.hist([pi for pi, yi in zip(p, y, strict=True) if not yi], bins=edges, alpha=0.6, label="not converted")
    ax.set(xlabel="score (probability)", ylabel="held-out leads", title="Score distribution by outcome")
    ax.legend(fontsize=8)
    return figure_png(figure, _DPI)


def _lift(report: TableReport) -> bytes:
    figure = _figure()
    ax = figure.add_subplot()
    y = report.curves["y"]
    names = list(report.curves["scores"])
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        lift = lift_by_decile(y, report.curves["scores"][name])
        ax.bar([d + 1 + (k - 1) * width for d in range(10)], lift, width, label=name, color=_COLOURS.get(name))
    ax.axhline(1.0, linestyle=":", color="#9ca3af")
    ax.set(xlabel="decile (1 = highest scores)", ylabel="conversion rate / overall rate", title="Lift by decile")
    ax.set_xticks(range(1, 11))
    ax.legend(fontsize=8)
    return figure_png(figure, _DPI)


def _factors(factors: Sequence[tuple[str, float]]) -> bytes:
    figure = _figure(7.0, 0.3 * len(factors) + 1.0)
    ax = figure.add_subplot()
    shown = list(reversed(factors))
    ax.barh(
        [label for label, _ in shown],
        [c for _, c in shown],
        color=["#16a34a" if c > 0 else "#dc2626" for _, c in shown],
    )
    ax.axvline(0, color="#111827", linewidth=0.8)
    ax.set(xlabel="contribution to the log-odds", title="Strongest factors")
    ax.tick_params(axis="y", labelsize=8)
    return figure_png(figure, _DPI)


def _html(model: Model, report: TableReport, factors: Sequence[tuple[str, float]], pngs: Mapping[str, bytes]) -> str:
    esc = html.escape
    training = model.training

    def img(name: str, alt: str) -> str:
        data = base64.b64encode(pngs[name]).decode("ascii")
        caption = f"<figcaption>{esc(alt)}</figcaption>"
        return f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}">{caption}</figure>'

    def spread_table(rows: Mapping[str, Mapping[str, Spread]]) -> str:
        keys = (
            ("roc_auc", "ROC AUC"),
            ("pr_auc", "PR AUC"),
            ("log_loss", "log loss"),
            ("brier", "Brier"),
            ("ece", "ECE"),
            ("lift@10%", "lift, top 10 %"),
        )
        head = "<tr><th></th>" + "".join(f"<th>{label}</th>" for _, label in keys) + "</tr>"
        body = "".join(
            f"<tr><td>{esc(name)}</td>"
            + "".join(
                f"<td>{by[k].mean:.4f} ± {by[k].sd:.4f}<br><small>{by[k].min:.4f} – {by[k].max:.4f}</small></td>"
                for k, _ in keys
            )
            + "</tr>"
            for name, by in rows.items()
        )
        return f"<table>{head}{body}</table>"

    def table(rows: Mapping[str, Mapping[str, Any]]) -> str:
        names = ("", "ROC AUC", "PR AUC", "log loss", "Brier", "ECE", "lift, top 10 %")
        head = "<tr>" + "".join(f"<th>{n}</th>" for n in names) + "</tr>"
        body = "".join(
            f"<tr><td>{esc(name)}</td><td>{m['roc_auc']:.4f}</td><td>{m['pr_auc']:.4f}</td><td>{m['log_loss']:.4f}</td>"
            f"<td>{m['brier']:.4f}</td><td>{m['ece']:.4f}</td><td>{m['lift'][0]:.2f}</td></tr>"
            for name, m in rows.items()
        )
        return f"<table>{head}{body}</table>"

    leakage = "".join(
        f"<tr{' class=flag' if f['flagged'] else ''}><td>{esc(f['column'])}</td>"
        f"<td><code>{esc(f['feature'])}</code></td><td>{f['auc']:.3f}</td>"
        f"<td>{('flagged, kept' if f['kept'] else 'flagged, left out') if f['flagged'] else ''}</td></tr>"
        for f in report.leakage
    )
    min_count = esc(str(training["mapping"].get("rare", {}).get("min_count", 10)))
    made = f"scikit-learn {esc(str(training['sklearn_version']))}, trained at {esc(str(training['trained_at']))}"
    other = ""
    if report.other_variant is not None:
        v = report.other_variant
        other = f"<h3>{esc(v['label'])}: {esc(', '.join(v['columns']))}</h3>{table(v['metrics'])}"
    factor_rows = "".join(f"<tr><td>{esc(label)}</td><td>{c:+.2f}</td></tr>" for label, c in factors)
    cal = report.calibration
    cal_text = (
        f"Platt scaling fitted on out-of-fold log-odds of the training rows and folded into the weights "
        f"(logit′ = {cal['a']:.3f} × logit {cal['b']:+.3f} for the model written); expected calibration error on the "
        f"held-out rows, mean over the splits: {cal['ece_before']:.4f} before, {cal['ece_after']:.4f} after."
        if cal.get("method") == "platt"
        else "No calibration step (calibration: none)."
    )
    data = training["data"]
    lift = " ".join(f"{v:.2f}" for v in report.metrics["model"]["lift"])
    n_splits = training["split"]["splits"]
    metrics_table = spread_table(report.spread) if report.spread else table(report.metrics)
    verdicts = "".join(f"<li{' class=flag' if v.as_good else ''}>{esc(str(v))}.</li>" for v in report.verdicts)
    rule = (
        "A baseline does as well as the model when its mean ROC AUC is at least the model's mean minus one standard "
        "deviation of the paired differences (model − baseline, split by split)."
    )
    if report.no_better:
        names = " and ".join(v.baseline for v in report.no_better)
        shipped = (
            "so <code>model.json</code> was not written (<code>--allow-no-better</code> writes it anyway)"
            if report.withheld
            else "and the model was written anyway (no-better models allowed)"
        )
        verdict = (
            f'<p class="warn"><strong>Not better than a baseline: {esc(names)} '
            f"{'does' if len(report.no_better) == 1 else 'do'} as well as the model</strong>, {shipped}. "
            "A simpler scorer would rank these leads as well.</p>"
        )
    else:
        verdict = "<p>The model is better than every baseline by this rule.</p>"
    reg = report.regularisation
    if "grid" in reg:
        cells = "".join(
            f"<tr{' class=flag' if c == reg['C'] else ''}><td>{c:g}</td><td>{loss:.4f}</td></tr>"
            for c, loss in zip(reg["grid"], reg["log_loss"], strict=True)
        )
        per_split = ", ".join(f"{c:g}" for c in reg["per_split"])
        regularisation = (
            f"<p>C = <strong>{reg['C']:g}</strong> (the L2 strength of the logistic regression; smaller is stronger), "
            f"chosen by {esc(reg['chosen_by'])}, on all rows for this model; each split chose its own on its "
            f"training rows: {esc(per_split)}.</p>"
            f"<table><tr><th>C</th><th>mean cross-validated log loss</th></tr>{cells}</table>"
        )
    else:
        regularisation = f"<p>C = <strong>{reg.get('C', training['C']):g}</strong>, fixed by the mapping (model.C).</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Model card: {esc(model.version)}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #111827; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border-bottom: 1px solid #e5e7eb; padding: 0.25em 0.8em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
tr.flag td, li.flag {{ background: #fef3c7; }}
p.warn {{ background: #fee2e2; padding: 0.6em; border-left: 4px solid #dc2626; }}
figure {{ display: inline-block; margin: 0.5em; }} img {{ max-width: 520px; }}
</style></head><body>
<h1>Model card: <code>{esc(model.version)}</code></h1>
<p>A logistic regression over {len(model.features)} features, trained by <code>leadflow train</code> on
<code>{esc(data["file"])}</code> (sha256 <code>{esc(data["sha256"])}</code>): {report.n_rows:,} leads with an outcome,
base rate {report.base_rate:.1%}. Evaluated on {esc(report.split)}: each split learns everything on its
{report.n_train:,} training leads and scores its {report.n_test:,} held-out ones. The model in <code>model.json</code>
is then fitted the same way on all {report.n_rows:,} leads. {made}.</p>
<h2>Held-out metrics over {n_splits} split{"s" if n_splits > 1 else ""}, model against the baselines</h2>
<p>Mean ± standard deviation over the splits, and under it the lowest and highest.</p>
{metrics_table}
<h3>Is the model better than the baselines?</h3>
{verdict}
<ul>{verdicts}</ul>
<p>{esc(rule)}</p>
<h2>Regularisation</h2>
{regularisation}
<p>Naive Bayes: Odoo-style frequency tables of (field, value) with +0.1 smoothing. Points: each value seen at least
{min_count} times earns round(10 × its log-odds ratio) points; the total
is mapped to a probability by a logistic fit on the training rows. Lift by decile (model): {lift}.</p>
{other}
<h2>Calibration</h2><p>{esc(cal_text)}</p>
<p>The charts show the held-out leads of one split ({esc(report.curves.get("which", "one split"))}).</p>
{img("roc", "ROC curves")}{img("calibration", "Calibration: predicted against observed")}
{img("scores", "Score distribution by outcome")}{img("lift", "Lift by decile")}
<h2>Strongest factors</h2>
<p>How far a value moves a lead's log-odds from the baseline ({model.intercept:+.3f}, probability
{1 / (1 + math.exp(-model.intercept)):.1%}); a lead's factors add up to its log-odds exactly.</p>
{img("factors", "Strongest factors")}
<table><tr><th>factor</th><th>contribution</th></tr>{factor_rows}</table>
<h2>Leakage check</h2>
<p>Each feature's out-of-fold ROC AUC on its own; at or above {cal["max_auc"]:.2f} a column is suspected of being
recorded after the outcome.</p>
<table><tr><th>column</th><th>fact</th><th>AUC alone</th><th></th></tr>{leakage}</table>
</body></html>
"""
