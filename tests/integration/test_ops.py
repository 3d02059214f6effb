"""What an operator sees of a real worker: consumer lag and the oldest unprocessed record per partition while a
backlog drains, process CPU and memory, /healthz and /ready, and partitions leaving the page when a second worker
takes them over."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Flow, upsert
from worker.stream.topics import ensure_topics
from worker.tools.broker import free_port

pytestmark = pytest.mark.integration

BACKLOG = 1_500
HOUR = 3_600.0
NOT_READY_REASONS = {"joining the consumer group", "rebalancing", "recovering tables"}


def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a health page."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _partitions(flow: Flow, name: str, port: int) -> dict[tuple[str, int], float]:
    """Every sample of a per-partition metric: (topic, partition) → value."""
    return {
        (s.labels["topic"], int(s.labels["partition"])): s.value
        for family in text_string_to_metric_families(flow.metrics(port))
        for s in family.samples
        if s.name == name
    }


def _wait(what: str, done: Callable[[], object], flow: Flow, timeout: float = 60) -> None:
    """Wait until `done()` is true; on timeout say what it last returned (a mismatch it describes) and the log."""
    deadline = time.monotonic() + timeout
    while not (last := done()) or isinstance(last, str):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout}s: {last}\n--- worker log ---\n{flow.log()[-4000:]}")
        time.sleep(0.1)


def test_lag_and_age_show_a_backlog_draining_then_zero_and_revoked_partitions_leave_the_page(
    flow: Flow, rules_file: Path
) -> None:
    s = flow.settings
    topics = [s.topic_leads, s.topic_route_requests, s.topic_sla, s.topic_feedback, s.topic_pipeline, s.topic_match]
    every_partition = {(topic, p) for topic in topics for p in range(s.partitions)}
    # a backlog produced an hour ago (its record timestamps say so) before the worker starts
    ensure_topics(s)
    producer = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=5)
    an_hour_ago = int((time.time() - HOUR) * 1000)
    for n in range(BACKLOG):
        event = upsert(f"L-{n}", f"e-{n}", company=f"Company {n}")
        producer.send(s.topic_leads, key=event["lead_id"].encode(), value=orjson.dumps(event), timestamp_ms=an_hour_ago)
    producer.flush()
    producer.close()

    # one event per batch, so that the backlog takes a while to drain (a setting, not a pause)
    flow.start_worker(LEADFLOW_RULES=str(rules_file), LEADFLOW_BATCH_SIZE="1")
    port = flow.web_port
    ready_seen: list[tuple[int, dict[str, Any]]] = []
    lag_seen: dict[tuple[str, int], float] = {}
    age_seen: dict[tuple[str, int], float] = {}
    deadline = time.monotonic() + 90
    decided = 0
    while decided < BACKLOG:
        assert time.monotonic() < deadline, f"{decided} of {BACKLOG} decided\n{flow.log()[-4000:]}"
        try:
            ready_seen.append(_get(port, "/ready"))
            for key, value in _partitions(flow, "leadflow_consumer_lag_records", port).items():
                lag_seen[key] = max(value, lag_seen.get(key, 0))
            for key, value in _partitions(flow, "leadflow_oldest_unprocessed_seconds", port).items():
                age_seen[key] = max(value, age_seen.get(key, 0))
            decided = int(flow.metric("leadflow_events_consumed_total", event_type="lead.upserted") or 0)
        except OSError:  # the web server is not up yet
            pass
        time.sleep(0.05)
    flow.read(s.topic_decisions, BACKLOG)

    # while it drained: the backlog was counted, and the oldest record waiting was an hour old
    leads_lag = {p: v for (t, p), v in lag_seen.items() if t == s.topic_leads}
    assert max(leads_lag.values(), default=0) > 0, f"no lag seen while {BACKLOG} events drained: {lag_seen}"
    assert sum(leads_lag.values()) <= BACKLOG
    leads_age = [v for (t, _), v in age_seen.items() if t == s.topic_leads]
    assert max(leads_age, default=0) >= HOUR - 60, f"no hour-old record seen waiting: {age_seen}"
    assert max(leads_age) < HOUR + 600
    # before it was ready it said why (if the web server answered that early)
    for status, body in ready_seen:
        assert (status, body["ready"]) in {(200, True), (503, False)}
        if status == 503:
            assert body["reason"] in NOT_READY_REASONS, body

    # drained: every assigned partition of every topic it consumes has lag 0 and nothing waiting
    def drained() -> bool | str:
        lag = _partitions(flow, "leadflow_consumer_lag_records", port)
        age = _partitions(flow, "leadflow_oldest_unprocessed_seconds", port)
        zero = dict.fromkeys(every_partition, 0.0)
        return True if lag == zero and age == zero else f"lag {sorted(lag.items())}, age {sorted(age.items())}"

    _wait("lag and age not 0 on every partition", drained, flow, timeout=30)
    assert _get(port, "/ready") == (200, {"ready": True, "reason": f"consuming {len(every_partition)} partitions"})
    assert _get(port, "/healthz") == (200, {"alive": True, "reason": "running"})
    assert (flow.metric("process_resident_memory_bytes") or 0) > 0
    assert (flow.metric("process_cpu_seconds_total") or 0) > 0

    # a second worker joins: the partitions it takes leave the first one's page
    second_port = free_port()
    flow.start_worker(LEADFLOW_RULES=str(rules_file), LEADFLOW_WEB_PORT=str(second_port))

    def split() -> bool:
        try:
            mine = set(_partitions(flow, "leadflow_consumer_lag_records", port))
            theirs = set(_partitions(flow, "leadflow_consumer_lag_records", second_port))
        except OSError:
            return False
        return bool(mine) and bool(theirs) and not mine & theirs and mine | theirs == every_partition

    _wait("the partitions not split between the two workers' pages", split, flow, timeout=60)
    _wait("the first worker not ready again", lambda: _get(port, "/ready")[0] == 200, flow, timeout=30)
    _wait("the second worker not ready", lambda: _get(second_port, "/ready")[0] == 200, flow, timeout=30)
    first = _partitions(flow, "leadflow_oldest_unprocessed_seconds", port)
    second = _partitions(flow, "leadflow_oldest_unprocessed_seconds", second_port)
    assert set(first) | set(second) == every_partition
    assert not set(first) & set(second)

    # the second worker starts from the offsets the first one committed: nothing is behind on either page
    def caught_up() -> bool:
        lag = _partitions(flow, "leadflow_consumer_lag_records", port)
        lag.update(_partitions(flow, "leadflow_consumer_lag_records", second_port))
        return lag == dict.fromkeys(every_partition, 0)

    _wait("the two workers' lag not 0 on every partition", caught_up, flow, timeout=30)
