"""A real Prometheus (Debian's server) scraping a real worker that decides events: every panel of
deploy/grafana/leadflow.json shows data, and every alert of deploy/prometheus/alerts.yml is valid and reads data.

One worker and one Prometheus for the module. The worker gets a varied stream: leads that convert (routed to a
weighted pool with a 3-second SLA, so that opportunities are reassigned and at last overflow, or to a queue), leads
that stay open, warm up or are disqualified, opportunities moved on, won and lost by the sales side's feedback, leads
with missing fields and with values the model never saw (drift is sampled on every event), bad records (dead
letters), and three ruleset files (one applied, one refused).
Prometheus scrapes it every second and evaluates the alert rules every second.

What "returns data" means here: a panel's query is run over the whole run with ``/api/v1/query_range`` (what
Grafana does for the dashboard's time range), with ``$job`` and ``$instance`` set to this worker's labels as Grafana
sets them and ``$__rate_interval`` as 10s; it must succeed and give at least one series with at least one finite
value. A panel that would show "No data" fails.

Alerts: a healthy worker must not fire most of them, so "the alert returns data" would be a test that cannot pass
honestly. Each alert's expression is run as is (it must be valid, whatever it returns); then every comparison in
it is taken apart (``A > 5 and B > 2 * C`` into ``A``, ``5``, ``B``, ``2 * C``) and the left-hand side of each,
the measured signal, must return data as a panel does: that proves the alert reads series the worker really
exports under the names and labels it uses. Right-hand sides are thresholds or baselines (``... offset 1w``, which a
new Prometheus has no data for): they must only be valid. Prometheus' own evaluation of every rule must be healthy.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kafka import KafkaProducer

from tests.integration.conftest import RULES, Flow, activity, upsert, write_rules
from tests.routed_rules import CONVERTS_ON_DEMO, routed
from worker.tools.broker import EmbeddedBroker, free_port

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "grafana"))

from render_dashboard import PrometheusQueryError, api, load, query_range, render, targets, variables  # noqa: E402

pytestmark = pytest.mark.integration

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
RATE_INTERVAL = "10s"
DASHBOARD = load()
ALERT_RULES = [r for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"] for r in group["rules"]]


GONE_QUIET = """qualification:
  - id: gone-quiet
    when:
      all:
        - {field: company, op: eq, value: Sleepy Co}
        - {field: days_since_last_activity, op: gt, value: 1}
    status: Unqualified
"""
"""A rule on time that passes, for Sleepy Co's leads only (the other leads decide as the integration tests' do)."""
DUPLICATES = "duplicates:\n  match:\n    - [email]\n"


def _ruleset(version: str) -> str:
    """The routing tests' ruleset (a weighted pool ae with a 3-second SLA; Germany to a queue) deciding with the
    integration tests' scoring and qualification (leads open, warm, converted or unsubscribed), a rule on time that
    passes (Sleepy Co's leads quiet for a day are disqualified) and a duplicates: section (one lead per email)."""
    members = "        - {id: ann, weight: 200}\n        - {id: bob, weight: 100}"
    text = routed(members, version, "      sla: {accept_within_minutes: 0.05, then: next_member}\n")
    deciding = RULES[RULES.index("scoring:") :].replace("      queue: Enterprise AEs\n", "")  # routed instead
    deciding = deciding.replace("qualification:\n", GONE_QUIET)
    text = text.replace(CONVERTS_ON_DEMO.lstrip("\n"), deciding)
    assert deciding in text, "tests/routed_rules.py no longer holds CONVERTS_ON_DEMO as it is"
    assert GONE_QUIET in text, "the integration tests' RULES no longer have a qualification: section"
    return text + DUPLICATES


def _wave(n: int) -> list[dict[str, Any]]:
    """Wave ``n``: 4 leads that convert (3 routed to the pool ae, one to a queue), a warm one, a cold one; some
    fields missing, some values the model never saw; a warm lead whose events are a month old (time disqualifies it
    at once: a wake-up), two leads of one email (one merged into the other), and the warm one of the wave before
    erased."""
    events: list[dict[str, Any]] = []
    leads = [
        ("ae-a", {"company": "Acme", "industry": "Technology", "lead_source": "Web", "number_of_employees": 120}),
        ("ae-b", {"company": "Initech", "lead_source": "Carrier Pigeon", "number_of_employees": 90_000_000}),
        ("ae-c", {"company": "Lumière SA", "country": "France", "industry": "Retail"}),
        ("dach", {"company": "Globex GmbH", "country": "Germany", "lead_source": "Referral"}),
    ]
    for name, lead in leads:
        lead_id = f"{name}-{n}"
        events += [upsert(lead_id, f"{lead_id}-u", **lead), activity(lead_id, f"{lead_id}-d", "demo_request")]
    events += [
        upsert(f"warm-{n}", f"warm-{n}-u", company="Hooli", title="Engineer"),
        activity(f"warm-{n}", f"warm-{n}-p", "page_view", count=6),
        upsert(f"cold-{n}", f"cold-{n}-u", lead_source="Purchased List"),
        activity(f"cold-{n}", f"cold-{n}-x", "unsubscribe"),
        upsert(f"sleepy-{n}", f"sleepy-{n}-u", company="Sleepy Co"),
        activity(f"sleepy-{n}", f"sleepy-{n}-p", "page_view", count=6),  # dated 2026-11-03, then nothing
        upsert(f"ada-{n}", f"ada-{n}-u", email=f"ada.{n}@northwind.example", company="Northwind"),
        upsert(f"ada-again-{n}", f"ada-again-{n}-u", email=f" Ada.{n}@Northwind.example", company="Northwind"),
    ]
    if n:
        events.append(erased(f"warm-{n - 1}", f"warm-{n - 1}-e"))
    return events


def erased(lead_id: str, event_id: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": event_id,
        "event_type": "lead.erased",
        "occurred_at": "2026-11-20T09:00:00Z",
        "lead_id": lead_id,
    }


BAD = [(b"bad-1", b"{not json"), (b"bad-2", None), (b"bad-3", b'{"schema_version": 1, "lead_id": "bad-3"}')]


@dataclass
class Run:
    """The worker, the Prometheus scraping it, and the time range the worker was deciding in."""

    flow: Flow
    url: str
    start: float
    end: float

    @property
    def values(self) -> dict[str, str]:
        return variables("leadflow", f"127.0.0.1:{self.flow.web_port}", RATE_INTERVAL)

    def series(self, expr: str) -> list[dict[str, Any]]:
        return query_range(self.url, expr, self.start, self.end, 1.0)


def _prometheus(tmp: Path, worker_port: int) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the prometheus server is missing: run `make system-deps` (it installs Debian's prometheus package)"
        )
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "leadflow", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]}],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    with (tmp / "prometheus.log").open("ab") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return process, url
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            msg = f"prometheus did not start\n{(tmp / 'prometheus.log').read_text(errors='replace')[-3000:]}"
            raise AssertionError(msg)
        time.sleep(0.2)


def _scraped(url: str, expr: str, timeout: float = 30) -> None:
    """Wait until Prometheus has scraped samples for which ``expr`` is non-empty."""
    deadline = time.monotonic() + timeout
    while not api(url, "query", query=expr)["result"]:
        if time.monotonic() > deadline:
            msg = f"Prometheus has nothing for {expr} after {timeout}s"
            raise AssertionError(msg)
        time.sleep(0.5)


@pytest.fixture(scope="module")
def run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("prometheus")
    flow = Flow(broker, tmp)
    rules = write_rules(tmp, _ruleset("prom-1"))
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        flow.start_worker(
            LEADFLOW_RULES=str(rules),
            LEADFLOW_DRIFT_SAMPLE="1",
            LEADFLOW_RELOAD_INTERVAL="0.5",
            LEADFLOW_SLA_CHECK_INTERVAL="0.2",
            LEADFLOW_WAKEUP_INTERVAL="0.5",
        )
        prometheus, url = _prometheus(tmp, flow.web_port)
        flow.wait_metric("leadflow_worker_up", 1, timeout=60)
        start = time.time()
        decided = 0
        for n in range(4):
            flow.produce(_wave(n))
            flow.produce(BAD)
            decided += len(_wave(n))
            flow.read(flow.settings.topic_decisions, decided, timeout=60)
            if n == 1:
                write_rules(tmp, _ruleset("prom-2"))  # applied
                flow.wait_metric("leadflow_reloads_total", 1, kind="ruleset", origin="file", result="applied")
            time.sleep(2)
        _follow_some_opportunities(flow)
        write_rules(tmp, _ruleset("prom-3").replace("op: gte", "op: greater"))  # refused: kept prom-2
        flow.wait_metric("leadflow_reloads_total", 1, kind="ruleset", origin="file", result="refused")
        flow.wait_metric("leadflow_sla_breaches_total", 1, pool="ae")
        _scraped(url, 'leadflow_reloads_total{result="refused"}')
        _scraped(url, "leadflow_sla_breaches_total")
        _scraped(url, 'leadflow_opportunities_closed_total{outcome="lost"}')
        _scraped(url, "leadflow_time_decisions_total > 0")
        _scraped(url, "leadflow_leads_merged_total > 0")
        time.sleep(4)  # a few more scrapes and rule evaluations after the last change
        yield Run(flow, url, start - 2, time.time())
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=30)
        flow.close()


def _follow_some_opportunities(flow: Flow) -> None:
    """The sales side moves the first opportunity on, wins the second and loses the third (the pipeline panels)."""
    created: list[str] = []
    wanted = 3
    while len(created) < 3:  # the erased leads' tombstones (no value) are on the topic too
        read = flow.read(flow.settings.topic_opportunities, wanted, timeout=60)
        created = list(dict.fromkeys(o.json["opportunity_id"] for o in read if o.value is not None))
        wanted = len(read) + 1
    one, two, three = created[:3]
    at = "2026-11-20T09:00:00Z"
    feedback = [
        {"event_type": "opportunity.updated", "opportunity_id": one, "stage_name": "Value Proposition"},
        {"event_type": "opportunity.closed", "opportunity_id": two, "won": True, "amount": 30_000.0},
        {"event_type": "opportunity.closed", "opportunity_id": three, "won": False},
    ]
    producer = KafkaProducer(bootstrap_servers=flow.settings.bootstrap_servers, acks="all")
    for i, event in enumerate(feedback):
        value = orjson.dumps({**event, "event_id": f"crm-{i}", "occurred_at": at})
        producer.send(flow.settings.topic_feedback, key=b"crm", value=value)
    producer.flush()
    producer.close()
    flow.wait_metric("leadflow_opportunities_closed_total", 1, outcome="lost")


def _has_data(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(value)) for series in result for _, value in series["values"])


_PANEL_TARGETS = targets(DASHBOARD, variables("leadflow", "127.0.0.1:1", RATE_INTERVAL))


@pytest.mark.parametrize("index", range(len(_PANEL_TARGETS)), ids=[f"{t.panel} {t.ref}" for t in _PANEL_TARGETS])
def test_a_dashboard_panel_query_is_valid_and_shows_data(run: Run, index: int) -> None:
    target = targets(DASHBOARD, run.values)[index]
    result = run.series(target.expr)  # a query Prometheus refuses raises PrometheusQueryError with its message
    assert _has_data(result), f"panel {target.panel!r} ({target.ref}) shows no data: {target.expr}"


def test_the_dashboard_variables_list_this_worker(run: Run) -> None:
    jobs = api(run.url, "label/job/values", **{"match[]": "leadflow_worker_up"})
    instances = api(run.url, "label/instance/values", **{"match[]": 'leadflow_worker_up{job=~"leadflow"}'})
    assert jobs == ["leadflow"]
    assert instances == [f"127.0.0.1:{run.flow.web_port}"]
    queries = {v["name"]: v.get("definition") for v in DASHBOARD["templating"]["list"]}
    assert queries["job"] == "label_values(leadflow_worker_up, job)"
    assert queries["instance"] == 'label_values(leadflow_worker_up{job=~"$job"}, instance)'


_AND_OR = re.compile(r"(?<![\w])(and|or)(?![\w])")
_UNLESS = re.compile(r"(?<![\w])unless(?![\w])")
_COMPARE = re.compile(r">=|<=|==|!=|>|<")


def _top_level(expr: str, pattern: re.Pattern[str]) -> list[re.Match[str]]:
    """The matches of ``pattern`` outside brackets and strings (label matchers such as ``!=`` are inside ``{}``)."""
    depth, quote, found, i = 0, "", [], 0
    while i < len(expr):
        c = expr[i]
        if quote:
            quote = "" if c == quote else quote
            i += 2 if c == "\\" else 1
            continue
        if c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and (m := pattern.match(expr, i)):
            found.append(m)
            i = m.end()
            continue
        i += 1
    return found


def _split(expr: str, pattern: re.Pattern[str]) -> list[str]:
    parts, at = [], 0
    for m in _top_level(expr, pattern):
        parts.append(expr[at : m.start()])
        at = m.end()
    return [p.strip() for p in [*parts, expr[at:]]]


def _unwrap(expr: str) -> str:
    """``(x)`` without its outer parentheses (and ``(a) + (b)`` as it is)."""
    expr = expr.strip()
    while expr.startswith("(") and _closing(expr) == len(expr) - 1:
        expr = expr[1:-1].strip()
    return expr


def _closing(expr: str) -> int:
    """Where the parenthesis that opens ``expr`` closes (strings skipped)."""
    depth, quote = 0, ""
    for i, c in enumerate(expr):
        if quote:
            quote = "" if c == quote and expr[i - 1] != "\\" else quote
        elif c in "\"'`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def signals(expr: str) -> list[tuple[str, list[str]]]:
    """Each condition's measured side, with the expressions it is compared with or excluded by: ``A > 5 and B > 2 * C``
    gives ``[("A", ["5"]), ("B", ["2 * C"])]``, ``A > 0 unless B`` gives ``[("A", ["0", "B"])]``."""
    expr = _unwrap(expr)
    terms = _split(expr, _AND_OR)
    if len(terms) > 1:
        return [s for term in terms for s in signals(term)]
    kept, *excluded = _split(expr, _UNLESS)
    if excluded:
        return [(signal, [*others, *excluded]) for signal, others in signals(kept)]
    left, *rest = _split(expr, _COMPARE)
    return [(left, rest)]


def test_the_signals_of_an_alert_are_its_measured_sides() -> None:
    assert signals('up{job="x"} == 0 or w == 0') == [('up{job="x"}', ["0"]), ("w", ["0"])]
    assert signals('sum by (p) (rate(a{r!="x"}[1h])) > 5 and sum(b) > 2 * sum(b offset 1w)') == [
        ('sum by (p) (rate(a{r!="x"}[1h]))', ["5"]),
        ("sum(b)", ["2 * sum(b offset 1w)"]),
    ]
    assert signals("x / y > 0.5 and z >= 100") == [("x / y", ["0.5"]), ("z", ["100"])]
    assert signals("increase(a[1m]) > 0 or (a > 0 unless a offset 10m)") == [
        ("increase(a[1m])", ["0"]),
        ("a", ["0", "a offset 10m"]),
    ]
    assert signals("(a) + (b) > 1") == [("(a) + (b)", ["1"])]


@pytest.mark.parametrize("rule", ALERT_RULES, ids=[r["alert"] for r in ALERT_RULES])
def test_an_alert_is_valid_and_its_signals_read_data(run: Run, rule: dict[str, Any]) -> None:
    expr = str(rule["expr"])
    run.series(expr)  # valid as a whole: raises PrometheusQueryError otherwise
    for signal, others in signals(expr):
        for other in others:
            run.series(other)
        assert _has_data(run.series(signal)), f"{rule['alert']}: {signal} reads no data from a working worker"


def test_prometheus_evaluates_every_alert_rule_without_an_error(run: Run) -> None:
    groups = api(run.url, "rules")["groups"]
    evaluated = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(evaluated) == {rule["alert"] for rule in ALERT_RULES}
    health = {name: (rule["health"], rule.get("lastError", "")) for name, rule in evaluated.items()}
    assert health == dict.fromkeys(evaluated, ("ok", ""))


def test_a_query_prometheus_refuses_is_an_error_with_its_reason(run: Run) -> None:
    with pytest.raises(PrometheusQueryError, match="parse error"):
        run.series("sum(rate(leadflow_events_consumed_total[10s])")


def test_the_dashboard_is_drawn_from_this_run(run: Run, tmp_path: Path) -> None:
    """Set LEADFLOW_DASHBOARD_PNG=docs/img/dashboard.png to keep the picture (the README shows it)."""
    out = Path(os.environ.get("LEADFLOW_DASHBOARD_PNG") or tmp_path / "dashboard.png")
    render(run.url, run.start, run.end, out, run.values)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
