"""Backtesting a routing change: per-member load of a pool under two rulesets, judged at each lead's conversion."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.routed_rules import routed
from tests.unit.tools.backtest.conftest import act, engine, records, upsert, variant, write_lines
from worker.cli import main
from worker.tools.backtest import build_report, replay
from worker.tools.backtest._views import side_by_side_tables

ROUTED = routed(
    """\
        - {id: ann, weight: 200}
        - {id: bob, weight: 100}
        - id: cy
          weight: 100
          timezone: Europe/Berlin
          working_hours: {mon-fri: "09:00-17:00"}
"""
)

EVEN = variant(ROUTED, "{id: ann, weight: 200}", "{id: ann, weight: 100}").replace('version: "r-1"', 'version: "r-2"')


def _history() -> list[dict[str, Any]]:
    """12 leads converting on Monday 2 November 2026 at 10:xx UTC (everyone works), 3 on Saturday 7 November (cy
    does not), and one German lead that goes straight to the DACH queue."""
    events: list[dict[str, Any]] = []
    for i in range(15):
        lead, day = f"P{i:02d}", 2 if i < 12 else 7
        events += [upsert(lead, 0, day=day), act(lead, i + 1, "demo_request", day=day)]
    events += [upsert("G1", 0, country="Germany"), act("G1", 1, "demo_request")]
    return events


def _report(texts: dict[str, str]) -> dict[str, Any]:
    runs = replay({role: engine(text) for role, text in texts.items()}, [records(_history())])
    return build_report(
        source={"kind": "test", "name": "history", "records": 0},
        model={"path": "-", "version": "-"},
        runs=runs,
        paths={role: f"{role}.yaml" for role in texts},
    )


def _load(summary: dict[str, Any]) -> dict[str, int]:
    ((pool,),) = [summary["routing"]["pools"]]
    return {m["member"]: m["leads"] for m in pool["members"]}


def test_two_weightings_give_each_member_the_load_the_weights_say() -> None:
    new, old = _report({"new": EVEN, "old": ROUTED})["rulesets"]
    # Monday: 200/100/100 splits 12 leads 6/3/3, even weights 4/4/4; Saturday: cy is off, and ann and bob share
    # 3 leads 2/1 (200/100: ann's share; 100/100: the tie goes to the top of the pool)
    assert _load(old) == {"ann": 8, "bob": 4, "cy": 3}
    assert _load(new) == {"ann": 6, "bob": 5, "cy": 4}
    for summary in (new, old):
        routing = summary["routing"]
        (pool,) = routing["pools"]
        assert (routing["assigned"], routing["overflows"]) == (15, 0)
        assert pool["skips"] == {"outside_working_hours": 3}
        assert routing["direct"] == {"queue:DACH": 1}
        assert summary["converted"] == 16  # pooled conversions count: the replay assigned them
        assert summary["opportunities"]["by_owner"] == _load(summary)
        assert summary["opportunities"]["by_queue"] == {"DACH": 1}
    assert [m["weight"] for m in old["routing"]["pools"][0]["members"]] == [200, 100, 100]
    assert [m["share"] for m in old["routing"]["pools"][0]["members"]] == [0.5333, 0.2667, 0.2]


def test_the_comparison_table_shows_each_members_load_side_by_side_with_the_difference() -> None:
    tables = side_by_side_tables(_report({"new": EVEN, "old": ROUTED}))
    load = {row.label: list(row.values) for row in tables["load"].rows}
    assert load == {"ae / ann": [6, 8], "ae / bob": [5, 4], "ae / cy": [4, 3]}
    weights = {row.label: list(row.values) for row in tables["weights"].rows}
    assert weights["ae / ann"] == [100, 200]
    assert {row.label: list(row.values) for row in tables["skips"].rows} == {"ae / outside_working_hours": [3, 3]}
    assert {row.label: list(row.values) for row in tables["direct"].rows} == {"queue:DACH": [1, 1]}


def test_without_routing_the_report_has_no_routing_tables() -> None:
    from tests.unit.tools.backtest.conftest import HAND_HISTORY, RULES

    runs = replay({"new": engine(RULES)}, [records(HAND_HISTORY)])
    report = build_report(
        source={"kind": "test", "name": "h", "records": 0}, model={"path": "-", "version": "-"}, runs=runs,
        paths={"new": "new.yaml"},
    )  # fmt: skip
    assert report["rulesets"][0]["routing"] is None
    assert not {"load", "weights", "skips", "direct"} & set(side_by_side_tables(report))


def test_a_member_away_on_every_conversion_day_gets_nothing_and_the_pool_overflows_when_all_are() -> None:
    away = variant(ROUTED, "        - {id: ann, weight: 200}\n        - {id: bob, weight: 100}\n", "")
    (summary,) = _report({"new": away})["rulesets"]
    (pool,) = summary["routing"]["pools"]
    assert [(m["member"], m["leads"]) for m in pool["members"]] == [("cy", 12)]
    assert (pool["overflows"], pool["overflow_to"]) == (3, {"queue:AE-Overflow": 3})
    assert summary["opportunities"]["by_queue"] == {"AE-Overflow": 3, "DACH": 1}


def test_the_command_prints_the_load_table_and_writes_it_to_json_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    (tmp_path / "old.yaml").write_text(ROUTED, encoding="utf-8")
    (tmp_path / "new.yaml").write_text(EVEN, encoding="utf-8")
    events = write_lines(tmp_path / "events.jsonl", [orjson.dumps(e) for e in _history()])
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    args = ["--rules", str(tmp_path / "new.yaml"), "--against", str(tmp_path / "old.yaml"), "--events", str(events)]
    assert main(["backtest", *args, "--json", str(out_json), "--html", str(out_html)]) == 0
    printed = capsys.readouterr().out
    assert "routing: leads per pool member" in printed
    table = printed.split("routing: leads per pool member", 1)[1].split("routing: pool member weights", 1)[0]
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]] for line in table.splitlines()
            if line.startswith("│ ae / ")}  # fmt: skip
    assert rows["ae / ann"] == ["6", "8", "−2"]
    assert rows["ae / bob"] == ["5", "4", "+1"]
    assert rows["ae / cy"] == ["4", "3", "+1"]
    report = orjson.loads(out_json.read_bytes())
    assert [_load(s) for s in report["rulesets"]] == [{"ann": 6, "bob": 5, "cy": 4}, {"ann": 8, "bob": 4, "cy": 3}]
    html = out_html.read_text(encoding="utf-8")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html)
    assert [alt for alt, _ in images] == ["conversion funnel", "points histogram", "leads per pool member"]
    assert base64.b64decode(images[2][1]).startswith(b"\x89PNG")
    table = html.split("Routing: leads per pool member", 1)[1].split("</table>", 1)[0]
    assert (
        '<td>ae / ann</td><td class="n">6</td><td class="n">8</td><td class="n"><span class="down">−2</span>' in table
    )


def test_a_pool_overflowing_to_another_pool_hands_its_leads_on_within_the_replay() -> None:
    chained = variant(
        variant(ROUTED, "        - {id: ann, weight: 200}\n        - {id: bob, weight: 100}\n", ""),
        "      overflow: {queue: AE-Overflow}\n",
        "      overflow: {pool: night}\n",
    ) + (
        "    - name: night\n"
        "      strategy: round_robin\n"
        "      overflow: {queue: AE-Overflow}\n"
        "      members:\n"
        "        - {id: zed}\n"
    )
    (summary,) = _report({"new": chained})["rulesets"]
    pools = {pool["pool"]: pool for pool in summary["routing"]["pools"]}
    assert [(m["member"], m["leads"]) for m in pools["ae"]["members"]] == [("cy", 12)]
    assert pools["ae"]["overflow_to"] == {"pool:night": 3}  # Saturday: cy is off, the night pool takes them
    assert [(m["member"], m["leads"]) for m in pools["night"]["members"]] == [("zed", 3)]
    assert summary["opportunities"]["by_owner"] == {"cy": 12, "zed": 3}
    assert summary["converted"] == 16
