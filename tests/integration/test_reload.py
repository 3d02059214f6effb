"""Hot reload on a real broker: a new ruleset from the file or the control topic, atomically; broken ones refused."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.integration.conftest import RULES, Flow, activity, write_rules
from worker.exceptions import ConfigError, ModelError
from worker.scoring import default_model_path, load_model
from worker.settings import Settings
from worker.stream.control import encode_record, publish
from worker.tools.broker import free_port

# Version 2 gives 10 points per page view instead of 1: every decision shows which version made it.
RULES_V2 = RULES.replace('version: "it-1"', 'version: "it-2"').replace(
    "    points: 1\n    per: activity.page_view.count", "    points: 10\n    per: activity.page_view.count"
)
RULES_V3 = (
    RULES_V2.replace('version: "it-2"', 'version: "it-3"')
    .replace("max: 20", "max: 30")
    .replace("points: 10\n", "points: 3\n")
)
BROKEN = RULES_V2.replace("op: gte", "op: greater_than_or_maybe", 1).replace('"it-2"', '"it-broken"')
POINTS = {"it-1": 1.0, "it-2": 10.0, "it-3": 3.0}


def _views(prefix: str, n: int) -> list[dict[str, object]]:
    return [activity(f"{prefix}-{i}", f"{prefix}-{i}-e1", "page_view") for i in range(n)]


def _version(decision: dict[str, object]) -> str:
    return str(decision["ruleset_version"]).split("+", 1)[0]


def test_a_changed_rules_file_switches_every_following_decision_atomically(flow: Flow, tmp_path: Path) -> None:
    assert "points: 10\n" in RULES_V2
    rules = write_rules(tmp_path, RULES)
    flow.start_worker(LEADFLOW_RULES=str(rules), LEADFLOW_RELOAD_INTERVAL="0.2")
    topic = flow.settings.topic_decisions
    flow.produce(_views("before", 20))
    before = [o.json for o in flow.read(topic, 20)]
    assert {_version(d) for d in before} == {"it-1"}
    assert {d["points"] for d in before} == {1.0}

    # the file changes while events stream in: each decision is made wholly by one version
    producing = threading.Thread(target=flow.produce, args=(_views("during", 400),))
    producing.start()
    write_rules(tmp_path, RULES_V2)
    producing.join()
    flow.wait_metric("leadflow_reloads_total", 1, kind="ruleset", origin="file", result="applied")
    flow.produce(_views("after", 20))
    decisions = [o.json for o in flow.read(topic, 440)]
    for d in decisions:
        assert d["points"] == POINTS[_version(d)], d
    # the events sent after the reload was applied: by their leads, not by where they come in the read (the topic's
    # four partitions are read in whatever order the fetches return, so the last 20 read may be any partition's)
    after = [d for d in decisions if str(d["lead_id"]).startswith("after-")]
    assert len(after) == 20
    assert {_version(d) for d in after} == {"it-2"}
    assert f'leadflow_ruleset_info{{version="{after[-1]["ruleset_version"]}"}} 1.0' in flow.metrics()
    # per partition, once version 2 decided, version 1 never decides again
    last_seen: dict[int, str] = {}
    for output in flow.read(topic, 440):
        version = _version(output.json)
        assert not (last_seen.get(output.partition) == "it-2" and version == "it-1")
        last_seen[output.partition] = version

    # a broken file is refused, counted, and changes nothing
    write_rules(tmp_path, BROKEN)
    flow.wait_metric("leadflow_reloads_total", 1, kind="ruleset", origin="file", result="refused")
    flow.produce(_views("broken", 5))
    after_broken = [o.json for o in flow.read(topic, 445)][-5:]
    assert {(_version(d), d["points"]) for d in after_broken} == {("it-2", 10.0)}
    assert "greater_than_or_maybe" in flow.log()  # the log says what was wrong
    assert flow.metric("leadflow_reloads_total", kind="ruleset", origin="file", result="applied") == 1

    # deleting the file is refused too, once, and the worker goes on
    rules.unlink()
    flow.wait_metric("leadflow_reloads_total", 2, kind="ruleset", origin="file", result="refused")
    flow.produce(_views("deleted", 3))
    assert {_version(o.json) for o in flow.read(topic, 448)[-3:]} == {"it-2"}


def test_every_worker_follows_the_control_topic_and_a_restarted_one_starts_with_it(flow: Flow, tmp_path: Path) -> None:
    rules = write_rules(tmp_path, RULES)
    second_port = free_port()
    flow.start_worker(LEADFLOW_RULES=str(rules))
    flow.start_worker(LEADFLOW_RULES=str(rules), LEADFLOW_WEB_PORT=str(second_port))
    ports = [flow.web_port, second_port]
    for port in ports:
        flow.wait_metric("leadflow_worker_up", 1, port=port, timeout=60)

    s = flow.settings
    publish = [sys.executable, "-m", "worker", "rules", "publish", "--broker", s.broker_url]
    publish += ["--control-topic", s.topic_control]
    broken = write_rules(tmp_path, BROKEN, "broken.yaml")
    refused = subprocess.run([*publish, str(broken)], capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2  # publish refuses what a worker would refuse
    assert "unknown op 'greater_than_or_maybe'" in refused.stderr
    v3 = write_rules(tmp_path, RULES_V3, "v3.yaml")
    done = subprocess.run([*publish, str(v3)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    version = done.stdout.split("published ruleset ", 1)[1].split()[0]
    assert version.startswith("it-3+")
    for port in ports:
        flow.wait_metric("leadflow_reloads_total", 1, port=port, kind="ruleset", origin="control", result="applied")
        assert f'leadflow_ruleset_info{{version="{version}"}} 1.0' in flow.metrics(port)
    flow.produce(_views("cluster", 40))  # spread over the partitions of both workers
    decided = [o.json for o in flow.read(flow.settings.topic_decisions, 40)]
    assert {(d["ruleset_version"], d["points"]) for d in decided} == {(version, 3.0)}

    # a broken ruleset on the control topic (not through `publish`, which refuses it) is refused by every worker
    producer = KafkaProducer(bootstrap_servers=flow.settings.bootstrap_servers, acks="all")
    producer.send(flow.settings.topic_control, key=b"ruleset", value=encode_record("ruleset", BROKEN, "broken.yaml"))
    producer.send(flow.settings.topic_control, key=b"ruleset", value=b"not json")
    producer.flush()
    producer.close()
    for port in ports:
        flow.wait_metric("leadflow_reloads_total", 1, port=port, kind="ruleset", origin="control", result="refused")
        flow.wait_metric("leadflow_reloads_total", 1, port=port, kind="unknown", origin="control", result="refused")
        assert f'leadflow_ruleset_info{{version="{version}"}} 1.0' in flow.metrics(port)

    # a worker that restarts takes the newest valid ruleset of the control topic over its rules file
    first = flow.workers[0]
    flow.stop_worker(first)
    flow.start_worker(LEADFLOW_RULES=str(rules))
    flow.wait_metric("leadflow_worker_up", 1, timeout=60)
    assert f'leadflow_ruleset_info{{version="{version}"}} 1.0' in flow.metrics()
    assert flow.metric("leadflow_reloads_total", kind="ruleset", origin="control", result="refused") == 1
    assert flow.metric("leadflow_reloads_total", kind="unknown", origin="control", result="refused") == 1
    flow.produce(_views("restarted", 40))
    decided = [o.json for o in flow.read(flow.settings.topic_decisions, 80)][40:]
    assert {d["ruleset_version"] for d in decided} == {version}


def test_publish_names_the_broker_it_cannot_reach(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, RULES)
    settings = Settings(broker_url=f"127.0.0.1:{free_port()}", topic_control="control-nowhere")
    with pytest.raises(
        ConfigError, match=r"cannot publish to the control topic 'control-nowhere' at kafka://127\.0\.0\.1"
    ):
        publish(settings, "ruleset", rules)


def test_a_new_model_from_the_file_or_the_control_topic_scores_every_following_decision(
    flow: Flow, tmp_path: Path
) -> None:
    shipped = json.loads(default_model_path().read_text())
    model = tmp_path / "model.json"
    model.write_text(json.dumps(shipped))
    flow.start_worker(LEADFLOW_RULES=str(write_rules(tmp_path, RULES)), LEADFLOW_MODEL=str(model))
    topic = flow.settings.topic_decisions
    flow.produce(_views("m1", 5))
    first = [o.json for o in flow.read(topic, 5)]
    assert {d["model_version"] for d in first} == {load_model(model).version}

    model.write_text(json.dumps({**shipped, "name": "shifted-up", "intercept": shipped["intercept"] + 3}))
    flow.wait_metric("leadflow_reloads_total", 1, kind="model", origin="file", result="applied")
    flow.produce(_views("m2", 5))
    second = [o.json for o in flow.read(topic, 10)][5:]
    assert {d["model_version"] for d in second} == {load_model(model).version}
    assert min(d["score"] for d in second) > max(d["score"] for d in first)  # same leads, a higher baseline

    # a model reading a column the stream does not have is refused by publish, and by the worker
    unfit = {**shipped, "name": "raw-columns", "features": [dict(shipped["features"][0], path="Lead Origin")]}
    unfit["features"][0]["name"] = "lead_origin"
    (tmp_path / "unfit.json").write_text(json.dumps(unfit))
    with pytest.raises(ModelError, match="feature reads 'Lead Origin'"):
        publish(flow.settings, "model", tmp_path / "unfit.json")
    model.write_text(json.dumps(unfit))
    flow.wait_metric("leadflow_reloads_total", 1, kind="model", origin="file", result="refused")

    down = tmp_path / "down.json"
    down.write_text(json.dumps({**shipped, "name": "shifted-down", "intercept": shipped["intercept"] - 3}))
    version = publish(flow.settings, "model", down)
    flow.wait_metric("leadflow_reloads_total", 1, kind="model", origin="control", result="applied")
    flow.produce(_views("m3", 5))
    third = [o.json for o in flow.read(topic, 15)][10:]
    assert {d["model_version"] for d in third} == {version}
    assert max(d["score"] for d in third) < min(d["score"] for d in first)


def test_an_illegal_control_topic_name_stops_start_up_with_its_variable(flow: Flow, tmp_path: Path) -> None:
    result = flow.run_worker_to_exit(
        timeout=60, LEADFLOW_RULES=str(write_rules(tmp_path, RULES)), LEADFLOW_TOPIC_CONTROL="no spaces allowed!"
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "LEADFLOW_TOPIC_CONTROL: Value error, 'no spaces allowed!' cannot name a Kafka topic" in result.stderr
    assert "Traceback" not in result.stderr
