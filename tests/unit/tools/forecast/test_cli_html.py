"""``leadflow forecast`` on files: the tables, ``--json``, and an HTML page whose tables hold the JSON's figures."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.unit.tools.forecast.conftest import FEEDBACK, jsonl, write_files
from worker.cli import main
from worker.tools.broker import free_port


class _Page(HTMLParser):
    """The page's tables (by the id of the heading before them) and its images, as they would be displayed."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[tuple[str, str]] = []
        self.external: list[str] = []
        self._heading = ""
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "link"):
            self.external.append(tag)
        if tag == "h2":
            self._heading = values.get("id") or ""
        elif tag == "table":
            self.tables[self._heading] = []
        elif tag == "tr":
            self.tables[self._heading].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append((values.get("alt") or "", values.get("src") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._heading][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _number(cell: str) -> float | None:
    if cell == "–":
        return None
    if cell.endswith("%"):
        return round(float(cell[:-1]) / 100, 4)
    return float(cell.replace(",", ""))


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    return write_files(tmp_path)


def test_the_html_report_has_every_chart_and_its_tables_hold_the_json_figures(
    files: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["forecast", *files, "--json"]) == 0
    report: dict[str, Any] = orjson.loads(capsys.readouterr().out)
    html = tmp_path / "forecast.html"
    assert main(["forecast", *files, "--html", str(html)]) == 0
    printed = capsys.readouterr().out
    assert "pipeline by stage" in printed
    assert "ECE 0.275)" in printed

    page = _Page()
    page.feed(html.read_text(encoding="utf-8"))
    assert not page.external
    assert [alt.split(" (")[0].split(":")[0] for alt, _ in page.images] == [
        "pipeline by stage",
        "forecast by close month",
        "funnel by lead source",
        "by score band",
        "converting rules, best win rate first",
    ]
    for _, src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")

    head, *rows = page.tables["stages"]
    assert head == ["stage", "opportunities", "amount", "expected revenue"]
    assert [r[0] for r in rows] == list(report["pipeline"]["by_stage"])  # the ruleset's order
    assert [r[0] for r in rows][-2:] == ["Closed Won", "Closed Lost"]
    assert {r[0]: [_number(c) for c in r[1:]] for r in rows} == {
        stage: [s["count"], s["amount"], s["expected_revenue"]] for stage, s in report["pipeline"]["by_stage"].items()
    }

    _, *rows = page.tables["categories"]
    categories, rolled = report["forecast"]["categories"], report["forecast"]["forecast"]
    labels = {"Commit": "Forecast", "Most Likely": "MostLikely", "Best Case": "BestCase"}
    assert {labels.get(r[0], r[0]): [_number(c) for c in r[1:]] for r in rows} == {
        name: [c["count"], c["amount"], rolled.get(name)] for name, c in categories.items()
    }
    assert [r[0] for r in rows] == ["Closed", "Commit", "Most Likely", "Best Case", "Pipeline", "Omitted"]
    assert [r[3] for r in rows] == ["15,000", "35,000", "35,000", "43,000", "47,000", "–"]

    _, *rows = page.tables["months"]
    assert {r[0]: [_number(c) for c in r[1:]] for r in rows} == {
        month: [*m["forecast"].values(), m["categories"]["Omitted"]["amount"]]
        for month, m in report["forecast"]["by_close_month"].items()
    }

    _, *rows = page.tables["funnel"]
    keys = ("leads", "opportunities", "won", "lost", "lead_to_opportunity", "opportunity_to_won", "win_rate_of_closed")
    funnel = {r[0]: [_number(c) for c in r[1:]] for r in rows}
    assert funnel == {
        source: [None if f[k] is None else round(f[k], 3) if isinstance(f[k], float) else f[k] for k in keys]
        for source, f in report["funnel"].items()
    }
    assert funnel["Web"] == [4, 3, 1, 0, 0.75, 0.333, 1.0]

    head, *rows = page.tables["calibration"]
    assert head == ["score band", "leads", "opportunities", "lead → opp", "closed", "mean score", "won of closed"]
    bands, bins = (
        report["pipeline"]["by_score_band"],
        {f"{b['lo']:.1f}-{b['hi']:.1f}": b for b in report["calibration"]["bins"]},
    )
    assert [r[0] for r in rows] == sorted(bands) == ["0.0-0.1", "0.2-0.3", "0.3-0.4", "0.5-0.6", "0.7-0.8", "0.8-0.9"]
    for band, *cells in rows:
        b, closed = bands[band], bins.get(band)
        lead_rate = b["lead_to_opportunity_rate"]
        assert [_number(c) for c in cells[:3]] == [
            b["leads"],
            b["opportunities"],
            None if lead_rate is None else round(lead_rate, 3),
        ]
        if closed is None:
            assert cells[3:] == ["0", "–", "–"]
        else:
            assert [_number(c) for c in cells[3:]] == [closed["n"], closed["predicted"], closed["observed"]]
    assert {r[0]: r[4:] for r in rows if r[4] != "0"} == {
        "0.3-0.4": ["1", "0.300", "0.0%"],
        "0.7-0.8": ["1", "0.750", "100.0%"],
    }

    _, *rows = page.tables["rules"]
    assert [[r[0], *(_number(c) for c in r[1:])] for r in rows] == [
        [
            r["rule"],
            r["opportunities"],
            r["open"],
            r["won"],
            r["lost"],
            r["win_rate_of_closed"],
            r["won_amount"],
            r["lost_amount"],
        ]
        for r in report["rules"]
    ]


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(["forecast", "--opportunities", str(missing)]) == 2
    assert f"cannot read {str(missing)!r}" in capsys.readouterr().err


def test_opportunities_with_no_conversion_is_an_error_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_bytes(jsonl(FEEDBACK))
    assert main(["forecast", "--opportunities", str(path)]) == 2
    assert "holds no opportunity.created record (7 records read)" in capsys.readouterr().err


def test_a_broker_that_is_not_there_is_an_error_naming_it_and_the_topic(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"127.0.0.1:{free_port()}"
    assert main(["forecast", "--broker", url]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the broker at 'kafka://{url}' to read topic 'opportunity-feedback'" in err
    assert "pass --broker URL" in err
