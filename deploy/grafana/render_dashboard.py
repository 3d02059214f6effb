"""Draw deploy/grafana/leadflow.json's panels from a real Prometheus into a PNG, laid out as in Grafana.

Grafana cannot run on the build machines, so the README's picture of the dashboard is drawn here: every panel at its
``gridPos``, with its title and unit, from ``/api/v1/query_range`` over a time range. The expressions are the
dashboard's own, with its variables replaced as Grafana replaces them (``$job``, ``$instance``: the values as
regular expressions; ``$__rate_interval``: a window given here). tests/integration/test_prometheus.py calls it on the
Prometheus it runs against a real worker (``LEADFLOW_DASHBOARD_PNG=docs/img/dashboard.png`` keeps the picture).

    python deploy/grafana/render_dashboard.py --prometheus http://127.0.0.1:9090 --minutes 15 --out dashboard.png
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parent / "leadflow.json"
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_STYLES = ("-", "--", ":")


class PrometheusQueryError(Exception):
    """Prometheus refused a query (a syntax error, an unknown function...) or could not be reached."""


@dataclass(frozen=True)
class Target:
    """One query of a panel, with the dashboard's variables replaced."""

    panel: str
    ref: str
    legend: str
    expr: str


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def as_regex(value: str) -> str:
    """A variable's value as Grafana puts it into ``=~"$var"``: a regular expression inside a PromQL string."""
    return re.escape(value).replace("\\", "\\\\")


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """``expr`` with ``$name`` and ``${name}`` replaced; an unknown variable is an error, not left in the query."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            msg = f"the dashboard uses ${name}, which has no value here (known: {', '.join(sorted(variables))})"
            raise KeyError(msg)
        return variables[name]

    return _VARIABLE.sub(one, expr)


def variables(job: str, instance: str, rate_interval: str) -> dict[str, str]:
    return {"job": as_regex(job), "instance": as_regex(instance), "__rate_interval": rate_interval}


def targets(dashboard: Mapping[str, Any], values: Mapping[str, str]) -> list[Target]:
    """Every query of every panel, in the dashboard's order."""
    return [
        Target(panel["title"], target["refId"], target.get("legendFormat", ""), substitute(target["expr"], values))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def api(url: str, path: str, **params: str) -> Any:
    """GET ``url``/api/v1/``path``: the ``data`` of a successful answer, else :class:`PrometheusQueryError`."""
    query = urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(f"{url}/api/v1/{path}?{query}", timeout=30) as response:  # noqa: S310
            body = json.loads(response.read())
    except urllib.error.HTTPError as e:  # 400/422: Prometheus says why in the body
        body = json.loads(e.read() or b"{}")
    except OSError as e:
        msg = f"Prometheus at {url} did not answer: {e}"
        raise PrometheusQueryError(msg) from e
    if body.get("status") != "success":
        msg = f"{params.get('query', path)}: {body.get('errorType')}: {body.get('error')}"
        raise PrometheusQueryError(msg)
    return body["data"]


def query_range(url: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    data = api(url, "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}")
    return data["result"]  # type: ignore[no-any-return]


def legend(template: str, labels: Mapping[str, str]) -> str:
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), template) or ", ".join(
        f"{k}={v}" for k, v in labels.items()
    )


def _scaled(unit: str, value: float) -> str:
    """A value as Grafana shows it for the panel's unit."""
    if not math.isfinite(value):
        return "-"
    if unit == "s":
        for size, name in ((86_400, "day"), (3_600, "h"), (60, "min")):  # as Grafana: time in status is in days
            if abs(value) >= size:
                return f"{value / size:.3g} {name}"
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.1f} s"
    if unit == "bytes":
        return f"{value / 2**20:.0f} MiB"
    if unit == "percentunit":
        return f"{value * 100:.0f}%"
    if unit == "ops":
        return f"{value:g}/s" if value == 0 else f"{value:.3g}/s"
    return f"{value:.3g}"


def _span(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def render(
    url: str,
    start: float,
    end: float,
    out: Path,
    values: Mapping[str, str],
    *,
    step: float = 1.0,
    dashboard: Mapping[str, Any] | None = None,
) -> Path:
    """Draw every panel from ``start`` to ``end`` (Unix seconds) into ``out`` (PNG). Time series are drawn from
    ``query_range``; tables and stats show the value at ``end``, as Grafana's instant queries do."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch
    from matplotlib.ticker import FuncFormatter

    board = dashboard or load()
    panels = board["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    col_in, row_in, head_in = 0.95, 0.44, 0.6  # inches: one grid column, one grid row, the dashboard's title
    fig_w, fig_h = 24 * col_in, rows * row_in + head_in
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=80, facecolor="#f4f5f5")

    def box(x_in: float, top_in: float, w_in: float, h_in: float) -> tuple[float, float, float, float]:
        """Figure fractions of a box given in inches from the top left."""
        return x_in / fig_w, 1 - (top_in + h_in) / fig_h, w_in / fig_w, h_in / fig_h

    when = dt.datetime.fromtimestamp(end, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    fig.text(0.2 / fig_w, 1 - head_in / 2 / fig_h, f"{board['title']}   ·   {_span(end - start)} up to {when}",
             fontsize=17, weight="bold", va="center")  # fmt: skip
    for panel in panels:
        g = panel["gridPos"]
        x, top, w, h = (
            g["x"] * col_in + 0.06,
            head_in + g["y"] * row_in + 0.06,
            g["w"] * col_in - 0.12,
            g["h"] * row_in - 0.12,
        )
        card = FancyBboxPatch(box(x, top, w, h)[:2], box(x, top, w, h)[2], box(x, top, w, h)[3],
                              boxstyle="round,pad=0,rounding_size=0.004", transform=fig.transFigure,
                              facecolor="white", edgecolor="#d8d9da", linewidth=1, zorder=-1)  # fmt: skip
        fig.patches.append(card)
        fig.text((x + 0.12) / fig_w, 1 - (top + 0.2) / fig_h, panel["title"], fontsize=12.5, weight="bold", va="center")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        instant = panel["type"] in {"stat", "table"}
        lines: list[tuple[str, list[dt.datetime], list[float], dict[str, str]]] = []
        for target in panel["targets"]:
            expr = substitute(target["expr"], values)
            if instant:
                now = api(url, "query", query=expr, time=f"{end:.3f}")["result"]
                found = [{"metric": s["metric"], "values": [s["value"]]} for s in now]
            else:
                found = query_range(url, expr, start, end, step)
            for series in found:
                xs = [dt.datetime.fromtimestamp(float(t), dt.UTC) for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                lines.append((legend(target.get("legendFormat", ""), series["metric"]), xs, ys, series["metric"]))
        if panel["type"] == "stat":
            last = next((ys[-1] for _, _, ys, _ in lines if ys and math.isfinite(ys[-1])), math.nan)
            ax = fig.add_axes(box(x + 0.15, top + 0.45, w - 0.3, h - 0.6))
            ax.set_facecolor("#73bf69" if last >= 1 else "#f2495c")
            ax.text(0.5, 0.5, _scaled(unit, last), fontsize=48, color="white", weight="bold", ha="center",
                    va="center", transform=ax.transAxes)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        if panel["type"] == "table":
            ax = fig.add_axes(box(x + 0.15, top + 0.45, w - 0.3, h - 0.6))
            ax.axis("off")
            names = [k for k in lines[0][3] if k != "__name__"] if lines else []
            cells = [[series[3].get(k, "") for k in names] + [_scaled(unit, series[2][-1])] for series in lines]
            if cells:
                table = ax.table(cellText=cells, colLabels=[*names, "workers"], loc="upper left", cellLoc="left",
                                 colLoc="left", edges="horizontal")  # fmt: skip
                table.auto_set_font_size(False)
                table.set_fontsize(11)
                table.scale(1, 1.6)
            else:
                ax.text(0.5, 0.5, "No data", ha="center", va="center", fontsize=14, color="#888")
            continue
        widest = max((len(label) for label, *_ in lines), default=0) * 0.075 + 0.5  # inches, at font size 9
        ncol = max(1, min(len(lines), int((w - 0.3) / widest)))
        legend_in = 0.2 * math.ceil(len(lines) / ncol) if lines else 0
        ax = fig.add_axes(box(x + 0.85, top + 0.42, w - 1.0, h - 0.42 - 0.35 - legend_in))
        if not lines:
            ax.text(0.5, 0.5, "No data", ha="center", va="center", fontsize=14, color="#888", transform=ax.transAxes)
            ax.set_yticks([])
        for i, (label, xs, ys, _) in enumerate(lines):  # equal series would hide each other: styles tell them apart
            ax.plot(xs, ys, linewidth=2.0, linestyle=_STYLES[i % len(_STYLES)], label=label)
        ax.grid(True, color="#e9e9e9", linewidth=0.7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.set_xlim(dt.datetime.fromtimestamp(start, dt.UTC), dt.datetime.fromtimestamp(end, dt.UTC))
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=dt.UTC))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos, unit=unit: _scaled(unit, v)))
        ax.tick_params(labelsize=9)
        if lines:
            ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(0, -0.33 / (h - 0.77 - legend_in)), ncol=ncol,
                      frameon=False, borderaxespad=0, handlelength=1.5)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, facecolor=fig.get_facecolor())
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=15, help="time range: the last N minutes")
    parser.add_argument("--job", default="leadflow")
    parser.add_argument("--instance", default=".*", help="a worker's instance label (default: every one)")
    parser.add_argument("--rate-interval", default="1m", help="what $__rate_interval stands for")
    parser.add_argument("--step", type=float, default=15)
    parser.add_argument("--out", type=Path, default=Path("dashboard.png"))
    args = parser.parse_args(argv)
    end = time.time()
    values = variables(args.job, "", args.rate_interval)
    values["instance"] = args.instance if args.instance == ".*" else as_regex(args.instance)
    render(args.prometheus, end - args.minutes * 60, end, args.out, values, step=args.step)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
