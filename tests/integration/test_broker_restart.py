"""The broker goes away and comes back: a running worker neither exits nor spins, and decides what comes after.

The broker keeps its data in a directory (``leadflow broker --data``) and comes back on the same port, as a
restarted Kafka broker would; the worker is the real process, as in production. The worker's Kafka clients
retry every 100 ms while the broker is away (about 5 % of a core on the 2-core build machine); a retry loop
without a pause would take a whole core.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import RULES, Flow, activity, upsert, write_rules
from worker.stream.control import publish
from worker.tools.broker import free_port, start_broker

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 8.0
MOST_CPU_DURING_OUTAGE = 0.3  # of one core, on average
MOST_LOG_LINES_DURING_OUTAGE = 40  # the first of each kind of error; about 1,200 lines when nothing is held back


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far, all its threads (utime + stime in /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _events(round_: str, leads: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in range(leads):
        lead = f"L-{round_}-{n}"
        out.append(upsert(lead, f"{lead}-u", title="VP Sales", number_of_employees=300))
        out.append(activity(lead, f"{lead}-a", "page_view", count=3))
    return out


def _wait_decided(flow: Flow, events: list[dict[str, Any]], timeout: float) -> None:
    """Until every event has its decision on the decisions topic."""
    want = {e["event_id"] for e in events}
    topic = flow.settings.topic_decisions
    deadline = time.monotonic() + timeout
    while True:
        decided = {o.json["event_id"] for o in flow.read(topic, 0)}
        missing = want - decided
        if not missing:
            return
        if time.monotonic() > deadline:
            msg = f"{len(missing)} of {len(want)} events not decided, e.g. {sorted(missing)[:5]}"
            raise AssertionError(f"{msg}\n--- worker log ---\n{flow.log()[-6000:]}")
        try:
            flow.read(topic, len(flow.read(topic, 0)) + 1, timeout=1.0)
        except AssertionError:
            continue  # nothing new within a second; the deadline above decides when to give up


def test_a_worker_rides_out_a_broker_restart(tmp_path: Path, rules_file: Path) -> None:
    port, data = free_port(), tmp_path / "broker-data"
    broker = start_broker(port, data_dir=data)
    flow = Flow(broker, tmp_path)
    try:
        worker = flow.start_worker(LEADFLOW_RULES=str(rules_file))
        before = _events("before", 20)
        flow.produce(before)
        _wait_decided(flow, before, timeout=90)
        in_flight = _events("in-flight", 150)  # some of these are still being decided or sent when the broker goes
        flow.produce(in_flight)
        flow.disconnect()

        lines = len(flow.log().splitlines())
        broker.stop()
        cpu, started = _cpu_seconds(worker.pid), time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        busy = (_cpu_seconds(worker.pid) - cpu) / (time.monotonic() - started)
        logged = flow.log().splitlines()[lines:]
        print(f"during the outage the worker used {busy:.1%} of a core and logged {len(logged)} lines")
        assert worker.poll() is None, f"the worker exited during the outage\n{flow.log()[-6000:]}"
        assert busy < MOST_CPU_DURING_OUTAGE, f"the worker used {busy:.0%} of a core while the broker was away"
        assert len(logged) <= MOST_LOG_LINES_DURING_OUTAGE, "\n".join(logged[:100])
        assert flow.metric("leadflow_worker_up") == 1  # /metrics answers meanwhile

        broker = flow.broker = start_broker(port, data_dir=data)
        after = _events("after", 20)
        flow.produce(after)
        _wait_decided(flow, in_flight + after, timeout=120)
        # the whole-topic followers read on too: a ruleset published now reaches the worker
        newer = write_rules(tmp_path, RULES.replace('version: "it-1"', 'version: "it-2"'), "newer.yaml")
        publish(flow.settings, "ruleset", newer)
        flow.wait_metric("leadflow_reloads_total", 1, kind="ruleset", origin="control", result="applied", timeout=60)
        assert worker.poll() is None, f"the worker exited after the broker came back\n{flow.log()[-6000:]}"
    finally:
        flow.close()
        broker.stop()
