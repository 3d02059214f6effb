"""``leadflow drift``: compare the facts of the most recent decisions with the model's training data, per feature.

The history (a JSON-lines file or a topic read without a consumer group, as ``leadflow backtest`` reads it) is
replayed through the worker's batch engine (``LEADFLOW_ENGINE``: the reference :func:`worker.batch.process_batch` or
the columnar one, the same facts either way), so that the facts are exactly those the worker scores; the last
``last`` decided events form the window. See docs/MODEL.md, "Drift".
"""

from __future__ import annotations

import html
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from worker.batch import trim_cache
from worker.columnar import batch_engine
from worker.engine import load_engine
from worker.exceptions import DriftError
from worker.lead.state import LeadState
from worker.scoring import MODERATE, STABLE, FeatureDrift, default_model_path, measure_drift, training_distributions
from worker.settings import Settings
from worker.tools.backtest import open_events_file, open_topic

__all__ = ["DEFAULT_WINDOW", "run_drift"]

DEFAULT_WINDOW = 10_000
THRESHOLDS = f"PSI < {STABLE} stable, {STABLE} to {MODERATE} moderate shift, > {MODERATE} significant"


def run_drift(
    settings: Settings,
    *,
    events: Path | None = None,
    topic: str | None = None,
    last: int = DEFAULT_WINDOW,
    json_out: Path | None = None,
    html_out: Path | None = None,
    fail_on_drift: bool = False,
    out: TextIO | None = None,
) -> int:
    """Print the drift table; write JSON/HTML if asked; 1 when ``fail_on_drift`` and a feature moved significantly."""
    if last < 1:
        msg = f"--last must be at least 1, got {last}"
        raise DriftError(msg, source="--last")
    model_source = str(settings.model or default_model_path())
    engine = load_engine(settings)
    training_distributions(engine.model, model_source)  # fail before reading a history the model cannot use
    window: deque[dict[str, object]] = deque(maxlen=last)
    decided = 0
    store: dict[str, bytes] = {}
    cache: dict[str, LeadState] | None = {} if settings.state_cache_size else None  # 0: none kept, as in the worker
    decide = batch_engine(settings.engine)
    source = open_events_file(events, settings.batch_size) if events else open_topic(settings, topic or "")
    with source as history:
        name = history.name
        for batch in history.batches:
            if cache is not None:
                trim_cache(cache, settings.state_cache_size)  # bounded as in the worker
            result = decide(engine, batch, store.get, 0.0, cache, drift_sample=1)
            store.update(result.states)
            for lead_id in result.erased:
                store.pop(lead_id, None)
            window.extend(result.sampled_facts)
            decided += len(result.sampled_facts)
    if not window:
        msg = f"{name} holds no valid lead event: nothing to compare with the training data"
        raise DriftError(msg, source=name)
    drifts = measure_drift(engine.model, list(window), model_source)
    stored = engine.model.training["distributions"]
    summary: dict[str, Any] = {
        "model": engine.model.version,
        "source": name,
        "window": len(window),
        "decided": decided,
        "training_rows": stored.get("rows"),
        "thresholds": {"stable_below": STABLE, "significant_above": MODERATE},
        "features": [d.to_dict() for d in drifts],
        "moved": [d.feature for d in drifts if d.verdict != "stable"],
    }
    (out or sys.stdout).write(render_text(summary, drifts))
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    if html_out is not None:
        html_out.write_text(render_html(summary, drifts), encoding="utf-8")
    significant = any(d.verdict == "significant" for d in drifts)
    return 1 if fail_on_drift and significant else 0


def _moved(drift: FeatureDrift) -> str:
    return ", ".join(f"{level} {e:.0%} -> {a:.0%}" for level, e, a in drift.moved())


def render_text(summary: dict[str, Any], drifts: Sequence[FeatureDrift]) -> str:
    """The drift table as printed: features by PSI, largest first, with the verdict and what moved most."""
    lines = [
        f"drift of model {summary['model']}: the last {summary['window']:,} of {summary['decided']:,} decided events "
        f"of {summary['source']} against {summary['training_rows']:,} training rows",
        THRESHOLDS,
        "",
        f"{'feature':<32} {'PSI':>7}  {'verdict':<15} {'missing':>7} {'unseen':>7}  levels that moved most",
    ]
    lines += [
        f"{d.feature:<32} {d.psi:>7.3f}  {d.verdict:<15} {d.missing:>7.1%} {d.unseen:>7.1%}  {_moved(d)}"
        for d in drifts
    ]
    moved = [d for d in drifts if d.verdict != "stable"]
    lines.append("")
    if moved:
        lines.append("moved: " + ", ".join(f"{d.feature} ({d.verdict}, PSI {d.psi:.2f})" for d in moved))
    else:
        lines.append("no feature moved: every PSI is below 0.1")
    return "\n".join(lines) + "\n"


def render_html(summary: dict[str, Any], drifts: Sequence[FeatureDrift]) -> str:
    """A self-contained HTML page with the same table."""
    esc = html.escape
    rows = "".join(
        f"<tr class='{esc(d.verdict.split()[0])}'><td>{esc(d.feature)}</td><td>{d.psi:.3f}</td>"
        f"<td>{esc(d.verdict)}</td><td>{d.missing:.1%}</td><td>{d.unseen:.1%}</td><td>{esc(_moved(d))}</td></tr>"
        for d in drifts
    )
    title = f"leadflow drift: {summary['model']}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:left}"
        "tr.moderate{background:#fff3cd}tr.significant{background:#f8d7da}</style></head><body>"
        f"<h1>{esc(title)}</h1><p>The last {summary['window']:,} of {summary['decided']:,} decided events of "
        f"{esc(summary['source'])} against {summary['training_rows']:,} training rows. {esc(THRESHOLDS)}.</p>"
        "<table><tr><th>feature</th><th>PSI</th><th>verdict</th><th>missing</th><th>unseen</th>"
        f"<th>levels that moved most</th></tr>{rows}</table></body></html>\n"
    )
