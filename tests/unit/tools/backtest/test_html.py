"""The HTML report: one self-contained file with the charts embedded and the tables of the report."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from tests.unit.tools.backtest.conftest import HAND_HISTORY, RULES, RULES_NEW, engine, records
from worker.tools.backtest import build_report, diff_rules, parse_outcomes, replay, write_html


def test_the_report_embeds_both_charts_and_lists_the_changed_leads(hand_files: dict[str, Path], tmp_path: Path) -> None:
    runs = replay({"new": engine(RULES_NEW), "old": engine(RULES)}, [records(HAND_HISTORY)])
    report = build_report(
        source={"kind": "file", "name": "events file 'events.jsonl'", "records": len(HAND_HISTORY)},
        model={"path": "model.json", "version": "m-1"},
        runs=runs,
        paths={"new": "new.yaml", "old": "old.yaml"},
        rule_changes=diff_rules(hand_files["new"], hand_files["old"]),
        outcomes=parse_outcomes("lead_id,won\nL1,yes\nL2,no\nL4,yes\n", "won.csv"),
    )
    path = tmp_path / "report.html"
    write_html(report, path)
    html = path.read_text(encoding="utf-8")

    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html)
    assert [alt for alt, _ in images] == ["conversion funnel", "points histogram"]
    for _, data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    assert not re.search(r'(?:src|href)="(?!data:)', html), "no external asset"
    assert "<link" not in html
    assert "<script" not in html

    changed = html.split("Leads whose outcome changed", 1)[1]
    order = list(re.findall(r"<td>(L\d)</td>", changed))
    assert order == ["L4", "L3", "L5", "L1"]
    assert '<td>Contacted → Qualified</td><td class="n">1</td>' in changed
    assert "<td>~page-views</td>" in changed
    assert "<td>+form</td>" in changed
    assert "<td>-chat</td>" in changed
    assert "Rules, new vs old: added: form; removed: chat; changed: page-views." in html

    outcomes = html.split("against known outcomes", 1)[1].split("<h2>", 1)[0]
    # new converts L1 (won) and L2 (not won), misses L4 (won): precision 50 %, recall 50 %
    assert '<tr><td>precision</td><td class="n">50.0%</td>' in outcomes
    assert '<tr><td>leads with a known outcome</td><td class="n">3</td><td class="n">3</td>' in outcomes
