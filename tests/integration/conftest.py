"""Integration tests: the real worker process against a real Kafka-protocol broker (tansu, embedded).

The broker starts once per session on a port the OS picks; every test gets its own topics and consumer group.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from worker.settings import Settings
from worker.stream.topics import ensure_topics
from worker.tools.broker import EmbeddedBroker, free_port, running_broker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with running_broker() as b:
        yield b


@dataclass
class Output:
    """A record read back from an output topic."""

    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.value)  # type: ignore[no-any-return]


@dataclass
class Flow:
    """One test's private topics, consumer group, state directory and worker processes."""

    broker: EmbeddedBroker
    tmp: Path
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    web_port: int = field(default_factory=free_port)
    _producer: KafkaProducer | None = None
    _consumers: dict[str, KafkaConsumer] = field(default_factory=dict)
    _read: dict[str, list[Output]] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return Settings(
            broker_url=self.broker.url,
            app_id=f"lf-test-{self.suffix}",
            topic_leads=f"leads-{self.suffix}",
            topic_decisions=f"decisions-{self.suffix}",
            topic_opportunities=f"opportunities-{self.suffix}",
            topic_dlq=f"dlq-{self.suffix}",
            topic_control=f"control-{self.suffix}",
            topic_routing_decisions=f"routing-decisions-{self.suffix}",
            topic_accounts=f"accounts-{self.suffix}",
            topic_feedback=f"feedback-{self.suffix}",
        )

    def env(self) -> dict[str, str]:
        s = self.settings
        env = {
            "LEADFLOW_BROKER_URL": s.broker_url,
            "LEADFLOW_APP_ID": s.app_id,
            "LEADFLOW_TOPIC_LEADS": s.topic_leads,
            "LEADFLOW_TOPIC_DECISIONS": s.topic_decisions,
            "LEADFLOW_TOPIC_OPPORTUNITIES": s.topic_opportunities,
            "LEADFLOW_TOPIC_DLQ": s.topic_dlq,
            "LEADFLOW_TOPIC_CONTROL": s.topic_control,
            "LEADFLOW_TOPIC_ROUTING_DECISIONS": s.topic_routing_decisions,
            "LEADFLOW_TOPIC_ACCOUNTS": s.topic_accounts,
            "LEADFLOW_TOPIC_FEEDBACK": s.topic_feedback,
            "LEADFLOW_STATE_DIR": str(self.tmp / "state"),
            "LEADFLOW_WEB_PORT": str(self.web_port),
            "LEADFLOW_WEB_HOST": "127.0.0.1",
            "LEADFLOW_SESSION_TIMEOUT": "2",
            "LEADFLOW_HEARTBEAT_INTERVAL": "0.5",
            "LEADFLOW_LOG_LEVEL": "INFO",
        }
        env.update(self.extra_env)
        return env

    def log(self) -> str:
        path = self.tmp / "worker.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        ensure_topics(self.settings)
        full = {**os.environ, **self.env(), **env}
        with (self.tmp / "worker.log").open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "worker", "run"], env=full, stdout=out, stderr=subprocess.STDOUT
            )
        self.workers.append(process)
        return process

    def run_worker_to_exit(self, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        full = {**os.environ, **self.env(), **env}
        return subprocess.run(
            [sys.executable, "-m", "worker", "run"],
            env=full,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop_worker(self, process: subprocess.Popen[bytes], kill: bool = False) -> None:
        if process.poll() is None:
            if kill:
                process.kill()
            else:
                process.terminate()
            process.wait(timeout=30)

    def produce(self, events: list[dict[str, Any]] | list[tuple[bytes | None, bytes | None]]) -> None:
        settings = self.settings  # built once: a Settings reads the environment, ~5 ms of CPU each time
        if self._producer is None:
            self._producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5)
        for item in events:
            if isinstance(item, tuple):
                key, value = item
            else:
                key, value = item["lead_id"].encode(), orjson.dumps(item)
            self._producer.send(settings.topic_leads, key=key, value=value)
        self._producer.flush()

    def read(self, topic: str, at_least: int, timeout: float = 60.0) -> list[Output]:
        """Everything read so far from ``topic``, once it holds at least ``at_least`` records."""
        consumer = self._consumers.get(topic)
        if consumer is None:
            consumer = KafkaConsumer(
                topic,
                bootstrap_servers=self.settings.bootstrap_servers,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                group_id=None,
            )
            self._consumers[topic] = consumer
        got = self._read.setdefault(topic, [])
        deadline = time.monotonic() + timeout
        while len(got) < at_least:
            if time.monotonic() > deadline:
                log = self.log()[-4000:]
                msg = f"{topic}: {len(got)} of {at_least} records after {timeout}s\n--- worker log ---\n{log}"
                raise AssertionError(msg)
            for records in consumer.poll(timeout_ms=200).values():
                got.extend(Output(r.key, r.value, dict(r.headers), r.partition, r.offset) for r in records)
        return list(got)

    def quiet_read(self, topic: str, seconds: float) -> list[Output]:
        """Read for ``seconds`` more and return everything: used to show that nothing *else* arrives."""
        end = time.monotonic() + seconds
        got = self.read(topic, 0)
        while time.monotonic() < end:
            got = self.read(topic, len(got), timeout=seconds)
            time.sleep(0.1)
            consumer = self._consumers[topic]
            for records in consumer.poll(timeout_ms=200).values():
                self._read[topic].extend(
                    Output(r.key, r.value, dict(r.headers), r.partition, r.offset) for r in records
                )
        return list(self._read[topic])

    def metrics(self, port: int | None = None) -> str:
        url = f"http://127.0.0.1:{port or self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()  # type: ignore[no-any-return]

    def metric(self, name: str, port: int | None = None, **labels: str) -> float | None:
        """The value of one sample on a worker's /metrics page (default: the first worker's), or None."""
        for family in text_string_to_metric_families(self.metrics(port)):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    def wait_metric(self, name: str, value: float, port: int | None = None, timeout: float = 30, **labels: str) -> None:
        """Wait until a worker's metric sample reaches ``value``."""
        deadline = time.monotonic() + timeout
        seen: float | None = None
        while time.monotonic() < deadline:
            try:
                seen = self.metric(name, port, **labels)
            except OSError:  # the worker's web server is not up yet
                seen = None
            if seen is not None and seen >= value:
                return
            time.sleep(0.1)
        msg = f"{name}{labels} is {seen}, not {value}, after {timeout}s\n--- worker log ---\n{self.log()[-4000:]}"
        raise AssertionError(msg)

    def disconnect(self) -> None:
        """Close this test's own producer and readers; the next ``produce``/``read`` opens new ones (reading from the
        start again). For a broker that goes away: kafka-python leaks a socket for each reconnection it tries."""
        if self._producer is not None:
            self._producer.close()
            self._producer = None
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()
        self._read.clear()

    def close(self) -> None:
        for process in self.workers:
            self.stop_worker(process, kill=True)
        if self._producer is not None:
            self._producer.close()
        for consumer in self._consumers.values():
            consumer.close()


@pytest.fixture
def flow(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Flow]:
    f = Flow(broker, tmp_path)
    yield f
    f.close()


RULES = """
version: "it-1"
name: integration test rules
scoring:
  - id: demo-request
    when: {field: activity.demo_request.count, op: gte, value: 1}
    points: 50
  - id: page-views
    when: {field: activity.page_view.count, op: gte, value: 1}
    points: 1
    per: activity.page_view.count
    max: 20
qualification:
  - id: unsubscribed
    when: {field: activity.unsubscribe.count, op: gte, value: 1}
    status: Unqualified
  - id: hot
    when: {field: points, op: gte, value: 50}
    status: Qualified
    convert: true
    opportunity:
      stage: Needs Analysis
      amount: 12000
      close_in_days: 45
      queue: Enterprise AEs
  - id: warm
    when: {field: points, op: gte, value: 5}
    status: Contacted
"""


def write_rules(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    """A ruleset file for a worker under test."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    return write_rules(tmp_path, RULES)


def upsert(lead_id: str, event_id: str, occurred_at: str = "2026-11-02T09:00:00Z", **lead: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": event_id,
        "event_type": "lead.upserted",
        "occurred_at": occurred_at,
        "lead_id": lead_id,
        "lead": lead,
    }


def activity(
    lead_id: str, event_id: str, kind: str, occurred_at: str = "2026-11-03T10:00:00Z", count: int = 1
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": event_id,
        "event_type": "lead.activity",
        "occurred_at": occurred_at,
        "lead_id": lead_id,
        "activity": {"type": kind, "count": count},
    }


def consumer_groups(settings: Settings) -> set[str]:
    """The broker's consumer groups: a tool that reads without a group must leave this set as it was."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        return {group["group_id"] for group in admin.list_groups()}
    finally:
        admin.close()
