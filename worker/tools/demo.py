"""``leadflow demo``: the embedded broker, a real worker process and a realistic sample, end to end.

It starts tansu, starts ``leadflow run`` as a child process (as in production), produces about 2,000 leads
with their activity over simulated weeks, waits until every event has its decision, then a real-time trickle
to measure latency, prints a summary and shuts everything down.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.exceptions import LeadflowError
from worker.scoring.training import generate
from worker.settings import Settings
from worker.stream.topics import ensure_accounts_topic, ensure_topics
from worker.tools._demo_intake import IntakeRun, demo_forms, post_forms, running_intake, web_summary
from worker.tools._demo_routing import SLA_SECONDS, accept_some, demo_ruleset, publish_accounts, routing_summary
from worker.tools._demo_sales import work_opportunities
from worker.tools.broker import free_port, running_broker
from worker.tools.forecast import forecast_report, print_forecast, write_html
from worker.tools.produce import make_producer

__all__ = ["collect", "run_demo", "start_worker_process"]

_TRICKLE = 60
_BAD_AT: dict[int, tuple[bytes, bytes]] = {
    100: (b"L000001", b"{not json"),
    5_000: (b"L000002", b'{"schema_version": 1, "event_type": "lead.activity", "lead_id": "L000002"}'),
    20_000: (b"L000003", b'{"schema_version": 1, "event_type": "lead.deleted", "lead_id": "L000003"}'),
    40_000: (
        b"someone-else",
        b'{"schema_version": 1, "event_id": "x", "event_type": "lead.activity", '
        b'"occurred_at": "2026-11-02T09:00:00Z", "lead_id": "L000004", "activity": {"type": "chat"}}',
    ),
}


def start_worker_process(settings_env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``leadflow run`` in a child process with the given ``LEADFLOW_*`` variables."""
    env = {**os.environ, **settings_env}
    with log.open("ab") as out:
        return subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", "worker", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it does not stop in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def _worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker_process(env, log)
    try:
        yield process
    finally:
        stop_process(process)


def collect(
    consumer: KafkaConsumer,
    want: int,
    timeout: float,
    progress: Progress | None = None,
    task: Any = None,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    on_rows: Callable[[str, list[dict[str, Any]]], object] | None = None,
    expected: Collection[str] | None = None,
) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """Read records until ``want`` distinct decisions arrived; returns (record, value) lists by topic.

    ``on_rows(topic, values)`` sees every poll's new values as they arrive (the demo's reps accept opportunities).
    With ``expected`` event ids, only decisions of those events count: the worker also decides events of its own
    (the match step's answers, a duplicate's engagement forwarded to its survivor).
    """
    seen: set[str] = set()
    out: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < want:
        if time.monotonic() > deadline:
            msg = f"only {len(seen):,} of {want:,} decisions arrived within {timeout:.0f}s"
            raise LeadflowError(msg + (f"; see the worker log {log}" if log else ""))
        if process is not None and process.poll() is not None:
            msg = f"the worker exited with code {process.returncode}" + (f"; see {log}" if log else "")
            raise LeadflowError(msg)
        for tp, records in consumer.poll(timeout_ms=200, max_records=5000).items():
            values = []
            for record in records:
                value = orjson.loads(record.value) if record.value is not None and tp.topic != "dlq" else {}
                values.append(value)
                out.setdefault(tp.topic, []).append((record, value))
                if "decision_id" in value and value["decision_id"] not in seen:
                    if expected is not None and value["event_id"] not in expected:
                        continue
                    seen.add(value["decision_id"])
                    if progress is not None:
                        progress.advance(task)
            if on_rows is not None:
                on_rows(tp.topic, values)
    return out


def run_demo(
    *, leads: int = 2000, seed: int = 42, weeks: int = 6, timeout: float = 300.0, forecast_html: Path | None = None
) -> int:
    """Run the demo end to end; returns 0 when every event got its decision (``forecast_html``: also write the
    forecast's HTML report there)."""
    console = Console(stderr=False)
    logging.getLogger("kafka").setLevel(logging.ERROR)  # kafka-python's event-loop timing warnings are noise here
    for name in ("worker.stream.topics", "worker.tools.broker"):  # the summary says what they would log
        logging.getLogger(name).setLevel(logging.WARNING)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(weeks=weeks)
    data = generate(leads, seed=seed, start=start, weeks=weeks)
    events = data.events
    console.print(f"[bold]leadflow demo[/]: {leads:,} leads, {len(events):,} events over {weeks} simulated weeks")
    with tempfile.TemporaryDirectory(prefix="leadflow-demo-") as tmp, running_broker() as broker:
        settings = Settings(broker_url=broker.url, app_id="leadflow-demo")
        web_port = free_port()
        env = {
            "LEADFLOW_BROKER_URL": broker.url,
            "LEADFLOW_APP_ID": settings.app_id,
            "LEADFLOW_STATE_DIR": str(Path(tmp) / "state"),
            "LEADFLOW_WEB_PORT": str(web_port),
            "LEADFLOW_WEB_HOST": "127.0.0.1",
            "LEADFLOW_SESSION_TIMEOUT": "2",
            "LEADFLOW_HEARTBEAT_INTERVAL": "0.5",
            "LEADFLOW_LOG_LEVEL": "WARNING",
        }
        log = Path(tmp) / "worker.log"
        console.print(f"embedded broker on {broker.bootstrap}; worker metrics on http://127.0.0.1:{web_port}/metrics")
        env["LEADFLOW_RULES"] = str(demo_ruleset(Path(tmp), dt.datetime.now(dt.UTC)))
        env["LEADFLOW_SLA_CHECK_INTERVAL"] = "0.5"
        ensure_topics(settings)
        ensure_accounts_topic(settings)
        producer = make_producer(settings)
        accounts = publish_accounts(
            producer, settings, (e["lead"] for e in events if e["event_type"] == "lead.upserted")
        )
        console.print(
            f"{accounts} known accounts published on {settings.topic_accounts!r}; routing: {env['LEADFLOW_RULES']}"
        )
        accepted_ids: set[str] = set()
        accepted = 0
        worked_ids: set[str] = set()
        sales: Counter[str] = Counter()

        def reps(topic: str, values: list[dict[str, Any]]) -> None:
            nonlocal accepted
            if topic == settings.topic_opportunities:
                values = [v for v in values if v]  # a tombstone (an erased lead's opportunity) has no value
                accepted += accept_some(producer, settings, values, accepted_ids)
                sales.update(work_opportunities(producer, settings, values, worked_ids))

        consumer = KafkaConsumer(
            settings.topic_decisions,
            settings.topic_opportunities,
            settings.topic_routing_decisions,
            bootstrap_servers=settings.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=1000,
            **settings.kafka_auth(),
        )
        with _worker(env, log) as process:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console) as progress:
                sent_task = progress.add_task("produced ", total=len(events))
                done_task = progress.add_task("decided  ", total=len(events) + _TRICKLE)
                t0 = time.time()
                for i, event in enumerate(events):
                    producer.send(settings.topic_leads, key=event["lead_id"].encode(), value=orjson.dumps(event))
                    progress.advance(sent_task)
                    if i in _BAD_AT:  # what a misbehaving producer sends: it must not stop anything
                        key, value = _BAD_AT[i]
                        producer.send(settings.topic_leads, key=key, value=value)
                producer.flush()
                produced = {e["event_id"] for e in events}
                got = collect(consumer, len(produced), timeout, progress, done_task, process, log, reps, produced)
                bulk_seconds = time.time() - t0
                web = post_forms_to_intake(env, Path(tmp) / "intake.log", events, seed)
                for topic, rows in _await_web_leads(consumer, web, progress, reps, timeout, process, log).items():
                    got.setdefault(topic, []).extend(rows)
                trickle = _trickle(producer, settings, data, consumer, progress, done_task, process, log, timeout)
                # the reps also work what arrived while nobody watched (the real-time phase reads without them),
                # while the SLA clock runs: the worker has applied it all by the time /metrics is read
                late = [v for rows in (got, trickle) for _, v in rows.get(settings.topic_opportunities, [])]
                sales.update(work_opportunities(producer, settings, late, worked_ids))
                # the opportunities nobody accepted breach their SLA and are reassigned: watch that happen
                settle = progress.add_task("SLA clock", total=int(SLA_SECONDS + 3))
                for _ in range(int(SLA_SECONDS + 3)):
                    for topic, rows in _poll_for(consumer, 1.0, reps).items():
                        trickle.setdefault(topic, []).extend(rows)
                    progress.advance(settle)
            producer.close()
            metrics = _scrape(web_port)
        consumer.close()
        # the pipeline and forecast as 'leadflow forecast' reads them from the topics
        forecast = forecast_report(settings.model_copy(update={"rules": Path(env["LEADFLOW_RULES"])}))
    for topic, rows in trickle.items():
        got.setdefault(topic, []).extend(rows)
    _summary(console, got, len(events), bulk_seconds, trickle, metrics)
    web_summary(console, web, (v for _, v in sorted(got.get(settings.topic_decisions, []), key=_when)))
    opportunities = {v["opportunity_id"]: v for _, v in got.get(settings.topic_opportunities, [])}
    routing = [v for _, v in got.get(settings.topic_routing_decisions, [])]
    routing_summary(console, opportunities, list({d["routing_id"]: d for d in routing}.values()), accepted)
    console.print(
        f"[bold]sales[/]: the demo's reps moved {sales['moved']:,} opportunities on, won {sales['won']:,} and lost "
        f"{sales['lost']:,} (opportunity.updated / .closed on {settings.topic_feedback!r}; {sales['resent']:,} "
        "closings sent twice). What 'leadflow forecast' reads from the topics:"
    )
    print_forecast(console, forecast)
    won, lost = (_total(metrics, f'leadflow_opportunities_closed_total{{outcome="{o}"}}') for o in ("won", "lost"))
    agree = (won, lost) == (forecast["pipeline"]["won"]["count"], forecast["pipeline"]["lost"]["count"])
    console.print(
        f"[bold]the worker's /metrics[/] (leadflow_opportunities_closed_total): won {won:,.0f}, lost {lost:,.0f}"
        + (" — the same as the report" if agree else " — not what the report says: see the worker log")
    )
    if forecast_html is not None:
        write_html(forecast, forecast_html)
        console.print(f"wrote {forecast_html}", markup=False)
    console.print("[green]demo complete[/]: every event has its decision; broker and worker stopped.")
    return 0


def post_forms_to_intake(env: dict[str, str], log: Path, events: list[dict[str, Any]], seed: int) -> IntakeRun:
    """The week's web forms posted to a real ``leadflow intake`` process on the demo's broker."""
    intake_env = {k: env[k] for k in ("LEADFLOW_BROKER_URL", "LEADFLOW_APP_ID", "LEADFLOW_LOG_LEVEL")}
    forms = demo_forms((e["lead"] for e in events if e["event_type"] == "lead.upserted"), seed)
    with running_intake(intake_env, log) as url:
        return post_forms(url, forms)


def _await_web_leads(
    consumer: KafkaConsumer,
    web: IntakeRun,
    progress: Progress,
    on_rows: Callable[[str, list[dict[str, Any]]], object],
    timeout: float,
    process: subprocess.Popen[bytes],
    log: Path,
) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """Everything read until each web lead has both decisions (its ``lead.upserted`` and its ``form_submit``), and
    each person the CRM already held is found a duplicate (the demo's ruleset has a ``duplicates:`` section)."""
    leads = web.accepted_leads()
    decided: dict[str, set[str]] = {lead_id: set() for lead_id in leads}
    merged: set[str] = set()  # the people already known: their web lead is found a duplicate

    def finished(lead_id: str) -> bool:
        return len(decided[lead_id]) >= 2 and (leads[lead_id] != "known" or lead_id in merged)

    task = progress.add_task("web forms", total=len(leads))
    out: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    deadline = time.monotonic() + timeout
    while (done := sum(map(finished, leads))) < len(leads):
        progress.update(task, completed=done)
        if time.monotonic() > deadline:
            msg = f"only {done} of {len(leads)} web leads were decided within {timeout:.0f}s; see the worker log {log}"
            raise LeadflowError(msg)
        if process.poll() is not None:
            msg = f"the worker exited with code {process.returncode}; see {log}"
            raise LeadflowError(msg)
        for topic, rows in _poll_for(consumer, 0.5, on_rows).items():
            out.setdefault(topic, []).extend(rows)
            for _, value in rows:
                if value.get("lead_id") in decided and "decision_id" in value:
                    decided[value["lead_id"]].add(value["event_id"])
                    if value.get("duplicate_of"):
                        merged.add(value["lead_id"])
    progress.update(task, completed=len(leads))
    return out


def _when(row: tuple[Any, dict[str, Any]]) -> int:
    """A record's broker timestamp, to put decisions in the order they were written."""
    stamp: int = row[0].timestamp
    return stamp


def _poll_for(
    consumer: KafkaConsumer, seconds: float, on_rows: Callable[[str, list[dict[str, Any]]], object]
) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """Everything that arrives within ``seconds``, by topic (``collect`` stops at a number of decisions)."""
    out: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        for tp, records in consumer.poll(timeout_ms=max(1, int(left * 1000)), max_records=5000).items():
            values = [orjson.loads(r.value) if r.value is not None else {} for r in records]
            out.setdefault(tp.topic, []).extend(zip(records, values, strict=True))
            on_rows(tp.topic, values)
    return out


def _trickle(
    producer: Any,
    settings: Settings,
    data: Any,
    consumer: KafkaConsumer,
    progress: Progress,
    task: Any,
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float,
) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """Real-time phase: one event every 50 ms, to measure latency on an idle stream."""
    out: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    lead_ids = sorted(data.outcomes)[:_TRICKLE]
    expected = {f"trickle-{i}" for i in range(len(lead_ids))}
    for i, lead_id in enumerate(lead_ids):
        event = {
            "schema_version": 1,
            "event_id": f"trickle-{i}",
            "event_type": "lead.activity",
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            "lead_id": lead_id,
            "activity": {"type": "page_view", "detail": "/pricing"},
        }
        producer.send(settings.topic_leads, key=lead_id.encode(), value=orjson.dumps(event))
        producer.flush()
        time.sleep(0.05)
        for topic, rows in collect(consumer, 0, timeout, expected=expected).items():
            out.setdefault(topic, []).extend(rows)
    rest = collect(
        consumer,
        _TRICKLE - sum(1 for r in out.get(settings.topic_decisions, []) if r[1]["event_id"].startswith("trickle-")),
        timeout,
        process=process,
        log=log,
        expected=expected,
    )
    for topic, rows in rest.items():
        out.setdefault(topic, []).extend(rows)
    progress.advance(task, _TRICKLE)
    return out


def _label(sample: str, name: str) -> str:
    """The value of label ``name`` in a sample name such as ``m{reason="not_json"}``."""
    return sample.split(f'{name}="', 1)[1].split('"', 1)[0]


def _scrape(port: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # our own worker on loopback
            text = response.read().decode()
    except OSError:
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("leadflow_") and not line.startswith("leadflow_faust"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                continue
    return values


def _total(metrics: dict[str, float], name: str) -> float:
    """A metric summed over its labels (the opportunities created are counted by stage)."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


def _worker_rate(got: dict[str, list[tuple[Any, dict[str, Any]]]]) -> float:
    """Decisions per second between the first and the last decision of the bulk phase (broker timestamps)."""
    stamps: list[int] = [
        r.timestamp
        for r, v in got.get("lead-decisions", [])
        if "decision_id" in v and not v["event_id"].startswith("trickle-")
    ]
    if len(stamps) < 2:
        return float("nan")
    return len(stamps) / max(1e-3, (max(stamps) - min(stamps)) / 1000)


def _summary(
    console: Console,
    got: dict[str, list[tuple[Any, dict[str, Any]]]],
    n_events: int,
    bulk_seconds: float,
    trickle: dict[str, list[tuple[Any, dict[str, Any]]]],
    metrics: dict[str, float],
) -> None:
    decisions = {v["decision_id"]: (r, v) for r, v in got.get("lead-decisions", []) if "decision_id" in v}
    opportunities = {v["opportunity_id"]: v for _, v in got.get("opportunities", [])}
    values = [v for _, v in decisions.values()]
    table = Table(title="decisions by status and action")
    table.add_column("status")
    table.add_column("action")
    table.add_column("decisions", justify="right")
    for (status, action), n in sorted(Counter((v["status"], v["action"]) for v in values).items()):
        table.add_row(status, action, f"{n:,}")
    console.print(table)

    final: dict[str, dict[str, Any]] = {}
    for _, v in sorted(decisions.values(), key=lambda rv: rv[0].timestamp):
        final[v["lead_id"]] = v
    leads = Table(title="leads by final status")
    leads.add_column("status")
    leads.add_column("leads", justify="right")
    for status, n in Counter(v["status"] for v in final.values()).most_common():
        leads.add_row(status, f"{n:,}")
    console.print(leads)

    stages = Table(title=f"opportunities by stage ({len(opportunities):,} in all)")
    for col in ("stage", "probability", "forecast category", "opportunities", "amount"):
        stages.add_column(col, justify="right" if col in ("probability", "opportunities", "amount") else "left")
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for opp in opportunities.values():
        by_stage.setdefault(opp["stage_name"], []).append(opp)
    for stage, opps in sorted(by_stage.items()):
        amount = sum(o["amount"] or 0 for o in opps)
        stages.add_row(
            stage,
            f"{opps[0]['probability']} %",
            opps[0]["forecast_category"],
            f"{len(opps):,}",
            f"{amount:,.0f}",
        )
    console.print(stages)

    rules = Table(title="rules that fired most")
    rules.add_column("rule")
    rules.add_column("decisions", justify="right")
    for rule, n in Counter(r for v in values for r in v["matched_rules"]).most_common(10):
        rules.add_row(rule, f"{n:,}")
    console.print(rules)

    scores = [v["score"] for v in final.values()]
    console.print("[bold]score distribution[/] (final score per lead)")
    buckets = Counter(min(int(s * 10), 9) for s in scores)
    top = max(buckets.values(), default=1)
    for b in range(10):
        n = buckets.get(b, 0)
        console.print(f"  {b / 10:.1f}–{(b + 1) / 10:.1f} {'█' * round(40 * n / top):<40} {n:,}")

    latencies = []
    for _record, value in trickle.get("lead-decisions", []):
        if value["event_id"].startswith("trickle-"):
            decided = dt.datetime.fromisoformat(value["decided_at"]).timestamp()
            occurred = dt.datetime.fromisoformat(value["occurred_at"]).timestamp()
            latencies.append(decided - occurred)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else float("nan")
    console.print(
        f"[bold]throughput[/]: {n_events:,} events produced and decided in {bulk_seconds:.1f}s, start-up "
        f"included; the worker wrote them at {_worker_rate(got):,.0f} events/s (first to last decision)"
    )
    console.print(
        f"[bold]latency[/] (one event every 50 ms, event time → decision): p50 {p50:.0f} ms, p99 {p99:.0f} ms"
    )
    dead = sum(v for k, v in metrics.items() if k.startswith("leadflow_dead_letters_total"))
    reasons = ", ".join(
        f"{_label(k, 'reason')} {v:,.0f}"
        for k, v in sorted(metrics.items())
        if k.startswith("leadflow_dead_letters_total{")
    )
    consumed = _total(metrics, "leadflow_events_consumed_total")
    console.print(
        f"[bold]/metrics[/]: events consumed {consumed:,.0f}, "
        f"opportunities {_total(metrics, 'leadflow_opportunities_created_total'):,.0f}, "
        f"dead letters {dead:,.0f} ({reasons or 'none'}: bad records sent on purpose, see topic leads-dlq)"
    )
