"""deploy/: compose.yaml, the Kubernetes manifests and the Grafana provisioning agree with the code, and validate.

Nothing here needs a network or a container engine (neither can run here). What validates what:

- The Kubernetes objects (StatefulSet, ConfigMaps, Secret, Service, PodDisruptionBudget) against the Kubernetes
  API's JSON schemas that the ``kubernetes-validate`` package bundles (Kubernetes 1.25 to 1.37 in 1.37.0), in its
  strict form (an unknown or misspelt field is refused), for the oldest and the newest version it carries.
- compose.yaml and the ServiceMonitor by structural checks written here, not against a schema: no package on
  PyPI carries the Compose Specification's JSON schema or prometheus-operator's CRD schema, and nothing copied from
  another repository goes into this one. The checks are allow-lists of real field names (a subset of the Compose
  Specification's service keys and of the ServiceMonitor's ``spec`` and endpoint fields, the ones a deployment like
  this would use), so a misspelt key such as ``enviroment`` or ``intervall`` is refused; a test proves it on
  misspelt copies. compose.yaml: top-level keys, every service has an image or a build, ``depends_on`` names
  services, the named volumes used are declared, healthcheck keys. The ServiceMonitor: apiVersion and kind, its
  selector matches the Service's labels and each endpoint names a Service port. Extend an allow-list (with a real
  field of the specification) when a deployment needs a field it lacks.
- kustomization.yaml has no schema here: its ``resources`` are checked against the files.

Then consistency with the code: every ``LEADFLOW_*`` variable set is a setting and the set of them is one the
worker accepts, ports are LEADFLOW_WEB_PORT, the topics created are those the worker reads and writes (taken from
the app itself, changelogs included) with its partitions and cleanup policies, Prometheus scrapes every worker,
and every file mounted or referenced exists.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions
from prometheus_client import CollectorRegistry

from tests.unit.test_alerts import promtool
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = "deploy/Dockerfile"

Doc = dict[str, Any]


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _settings(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a worker started with exactly ``env`` (plus no other LEADFLOW_* variable) would use."""
    for name in list(os.environ):
        if name.startswith("LEADFLOW_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return Settings()


def _unknown_settings(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if n.removeprefix("LEADFLOW_").lower() not in Settings.model_fields)


def _dockerfile_env() -> dict[str, str]:
    """The ``ENV`` of deploy/Dockerfile's image (the base of every worker's environment)."""
    text = (ROOT / DOCKERFILE).read_text(encoding="utf-8").replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(pair.split("=", 1) for pair in line.removeprefix("ENV ").split()))
    return env


# --- compose.yaml -------------------------------------------------------------------------------------------------


def _compose() -> Doc:
    compose = _yaml(DEPLOY / "compose.yaml")
    assert isinstance(compose, dict)
    return compose


def _workers() -> dict[str, Doc]:
    """The services built from deploy/Dockerfile: the leadflow workers."""
    return {
        name: service
        for name, service in _compose()["services"].items()
        if isinstance(service.get("build"), dict) and service["build"].get("dockerfile") == DOCKERFILE
    }


def _worker_env(service: Doc) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "write a worker's environment as a mapping"
    return {**_dockerfile_env(), **{k: str(v) for k, v in environment.items()}}


def _mounts(service: Doc) -> dict[str, Path]:
    """A service's bind mounts: target in the container -> file or directory in the repository."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


def _created_topics() -> dict[str, tuple[int, str]]:
    """What the topics service creates: topic -> (partitions, cleanup.policy)."""
    script = "\n".join(_compose()["services"]["topics"]["command"]).replace("$$", "$")
    created = re.findall(r"^\s*create (\S+) (\d+) (delete|compact)\s*$", script, flags=re.MULTILINE)
    assert created, "no `create TOPIC PARTITIONS POLICY` line in the topics service"
    topics = {name: (int(partitions), policy) for name, partitions, policy in created}
    assert len(topics) == len(created), "a topic is created twice"
    return topics


# Top-level keys of the Compose Specification this file may use; ``x-*`` extension fields (the anchors) are allowed.
COMPOSE_TOP_LEVEL = {"services", "volumes", "networks", "configs", "secrets", "name"}
# Service keys of the Compose Specification (https://compose-spec.io, "Services top-level elements") that a
# deployment like this one uses: a real key missing here may be added, a misspelt one must be refused.
COMPOSE_SERVICE_KEYS = {
    "build", "cap_add", "cap_drop", "command", "configs", "container_name", "depends_on", "deploy", "entrypoint",
    "env_file", "environment", "expose", "extra_hosts", "healthcheck", "hostname", "image", "init", "labels",
    "logging", "networks", "platform", "ports", "profiles", "pull_policy", "read_only", "restart", "secrets",
    "security_opt", "stop_grace_period", "stop_signal", "tmpfs", "ulimits", "user", "volumes", "working_dir",
}  # fmt: skip
COMPOSE_BUILD_KEYS = {"context", "dockerfile", "args", "target", "labels", "cache_from", "platforms", "tags"}
COMPOSE_HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
COMPOSE_DEPENDS_ON_KEYS = {"condition", "restart", "required"}
COMPOSE_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
COMPOSE_RESTART = {"no", "always", "on-failure", "unless-stopped"}


def _unknown(where: str, keys: Iterable[str], allowed: set[str]) -> list[str]:
    return [f"{where}: unknown key {key!r}" for key in keys if key not in allowed and not key.startswith("x-")]


def _compose_problems(compose: Doc) -> list[str]:
    """What in ``compose`` breaks the structure checked here (module docstring); [] when nothing does."""
    problems = _unknown("top level", compose, COMPOSE_TOP_LEVEL)
    services: Doc = compose.get("services") or {}
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        if not isinstance(service, dict):
            problems.append(f"{name}: a service is a mapping, got {service!r}")
            continue
        problems += _unknown(name, service, COMPOSE_SERVICE_KEYS)
        if "image" not in service and "build" not in service:
            problems.append(f"{name}: neither image nor build")
        build = service.get("build")
        if isinstance(build, dict):
            problems += _unknown(f"{name}.build", build, COMPOSE_BUILD_KEYS)
        elif build is not None and not isinstance(build, str):
            problems.append(f"{name}.build: a path or a mapping, got {build!r}")
        depends_on = service.get("depends_on", [])
        for target in depends_on:
            if target not in services:
                problems.append(f"{name}.depends_on: no service {target!r}")
        if isinstance(depends_on, dict):
            for target, condition in depends_on.items():
                problems += _unknown(f"{name}.depends_on.{target}", condition, COMPOSE_DEPENDS_ON_KEYS)
                if condition.get("condition", "service_started") not in COMPOSE_CONDITIONS:
                    problems.append(f"{name}.depends_on.{target}: condition {condition['condition']!r}")
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):  # long syntax
                source = volume.get("source", "") if volume.get("type") == "volume" else ""
            else:  # SOURCE:TARGET[:MODE], or TARGET alone (an anonymous volume)
                source = volume.split(":")[0] if ":" in volume else ""
            if source and not source.startswith((".", "/", "~", "$")) and source not in declared:
                problems.append(f"{name}.volumes: the named volume {source!r} is not declared under volumes")
        healthcheck = service.get("healthcheck", {})
        problems += _unknown(f"{name}.healthcheck", healthcheck, COMPOSE_HEALTHCHECK_KEYS)
        test = healthcheck.get("test")
        if test is not None and not (isinstance(test, str) or test[:1] in (["CMD"], ["CMD-SHELL"], ["NONE"])):
            problems.append(f"{name}.healthcheck.test: a string or a list starting CMD, CMD-SHELL or NONE")
        if str(service.get("restart", "no")) not in COMPOSE_RESTART:
            problems.append(f"{name}.restart: {service['restart']!r} is not one of {sorted(COMPOSE_RESTART)}")
        for key, types in (("environment", (dict, list)), ("ports", list), ("volumes", list), ("image", str)):
            if key in service and not isinstance(service[key], types):
                problems.append(f"{name}.{key}: wrong type {type(service[key]).__name__}")
    return problems


def test_compose_yaml_has_the_compose_specifications_structure() -> None:
    compose = _compose()
    assert _compose_problems(compose) == []
    assert {"kafka", "topics", "prometheus", "grafana"} <= set(compose["services"])


def _misspell(doc: Doc, path: tuple[str | int, ...], correct: str, misspelt: str) -> Doc:
    """A deep copy of ``doc`` with the key ``correct`` of the mapping at ``path`` renamed ``misspelt``."""
    copied = copy.deepcopy(doc)
    node = copied
    for key in path:
        node = node[key]
    node[misspelt] = node.pop(correct)
    return copied


@pytest.mark.parametrize(
    ("path", "correct", "misspelt", "where"),
    [
        (("services", "worker-1"), "environment", "enviroment", "worker-1"),
        (("services", "kafka", "healthcheck"), "start_period", "start_perod", "kafka.healthcheck"),
        (("services", "worker-1", "build"), "dockerfile", "dockerfil", "worker-1.build"),
        ((), "volumes", "volume", "top level"),
    ],
)
def test_the_compose_checks_refuse_a_misspelt_key(
    path: tuple[str, ...], correct: str, misspelt: str, where: str
) -> None:
    """The same compose.yaml with one key misspelt is refused, and the problem names the key."""
    problems = _compose_problems(_misspell(_compose(), path, correct, misspelt))
    assert f"{where}: unknown key {misspelt!r}" in problems


def test_the_compose_checks_refuse_a_missing_service_or_volume() -> None:
    compose = copy.deepcopy(_compose())
    compose["services"]["prometheus"]["depends_on"] = ["worker-1", "worker-3"]
    del compose["volumes"]["grafana-data"]
    del compose["services"]["grafana"]["image"]
    assert _compose_problems(compose) == [
        "prometheus.depends_on: no service 'worker-3'",
        "grafana: neither image nor build",
        "grafana.volumes: the named volume 'grafana-data' is not declared under volumes",
    ]


def test_compose_runs_two_workers_of_one_group() -> None:
    workers = _workers()
    assert len(workers) == 2
    app_ids = {_worker_env(service).get("LEADFLOW_APP_ID", "leadflow") for service in workers.values()}
    assert len(app_ids) == 1, f"the workers must share LEADFLOW_APP_ID (one consumer group), not {app_ids}"


def test_every_leadflow_variable_compose_sets_is_a_setting_the_worker_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, service in _workers().items():
        env = _worker_env(service)
        assert _unknown_settings(list(env)) == [], f"{name}: not in worker/settings.py"
        assert _unknown_settings(list(_dockerfile_env())) == [], "deploy/Dockerfile: not in worker/settings.py"
        _settings(env, monkeypatch)  # raises on a value or a combination the worker would refuse


def test_compose_ports_are_the_web_port(monkeypatch: pytest.MonkeyPatch) -> None:
    exposed = re.findall(r"^EXPOSE (\d+)$", (ROOT / DOCKERFILE).read_text(encoding="utf-8"), flags=re.MULTILINE)
    host_ports = []
    for name, service in _workers().items():
        port = _settings(_worker_env(service), monkeypatch).web_port
        assert exposed == [str(port)], f"deploy/Dockerfile exposes {exposed}, the worker serves on {port}"
        published = [str(mapping).split(":") for mapping in service["ports"]]
        assert [container for _host, container in published] == [str(port)], name
        host_ports += [host for host, _container in published]
        check = " ".join(service["healthcheck"]["test"])
        assert f"http://localhost:{port}/ready" in check, f"{name}: the healthcheck asks /ready on the web port"
    assert len(set(host_ports)) == len(host_ports), f"two workers publish the same host port: {host_ports}"


def test_the_topics_service_creates_every_topic_the_worker_uses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The names, partitions and cleanup policies of the app the workers run, changelogs included, from its code."""
    from worker.core import Engine
    from worker.rules import default_ruleset_path, load_ruleset
    from worker.scoring import default_model_path, load_model
    from worker.stream.app import build_app
    from worker.stream.topics import topic_names

    settings = {_settings(_worker_env(service), monkeypatch) for service in _workers().values()}
    assert len(settings) == 1, "both workers run with the same settings"
    s = settings.pop().model_copy(update={"state_dir": tmp_path})
    wanted = dict.fromkeys(topic_names(s), (s.partitions, "delete"))
    wanted[s.topic_accounts] = (s.partitions, "compact")
    wanted[s.topic_control] = (1, "compact")
    engine = Engine(load_ruleset(default_ruleset_path()), load_model(default_model_path()))
    app = build_app(s, engine, CollectorRegistry())
    changelogs = [table.changelog_topic for table in app.tables.values()]
    assert len(changelogs) == 6
    for topic in changelogs:
        wanted[topic.get_topic_name()] = (topic.partitions, "compact" if topic.compacting else "delete")
    assert _created_topics() == wanted

    command = "\n".join(_compose()["services"]["topics"]["command"])
    assert f"--bootstrap-server {s.bootstrap_servers[0]} " in command, "the topics go to the workers' broker"
    kafka = _compose()["services"]["kafka"]["environment"]
    assert f"INTERNAL://{s.bootstrap_servers[0]}" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")


def test_prometheus_scrapes_every_worker_under_the_job_the_alerts_select(monkeypatch: pytest.MonkeyPatch) -> None:
    prometheus = _compose()["services"]["prometheus"]
    mounts = _mounts(prometheus)
    config = _yaml(mounts["/etc/prometheus/prometheus.yml"])
    for rules in config["rule_files"]:  # relative to the config file, in the container and in the repository
        assert mounts[str(PurePosixPath("/etc/prometheus") / rules)] == (
            mounts["/etc/prometheus/prometheus.yml"].parent / rules
        )
    alerts = (DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8")
    jobs = set(re.findall(r'job="([^"]+)"', alerts))
    (scrape,) = [job for job in config["scrape_configs"] if job["job_name"] in jobs]
    targets = {target for group in scrape["static_configs"] for target in group["targets"]}
    expected = {
        f"{service.get('hostname', name)}:{_settings(_worker_env(service), monkeypatch).web_port}"
        for name, service in _workers().items()
    }
    assert targets == expected
    assert scrape.get("metrics_path", "/metrics") == "/metrics"


def test_promtool_accepts_the_compose_prometheus_config() -> None:
    config = _mounts(_compose()["services"]["prometheus"])["/etc/prometheus/prometheus.yml"]
    done = subprocess.run([promtool(), "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_file_compose_mounts_or_builds_from_exists() -> None:
    missing = []
    for name, service in _compose()["services"].items():
        missing += [f"{name}: {path}" for path in _mounts(service).values() if not path.exists()]
        if isinstance(service.get("build"), dict):
            context = (DEPLOY / service["build"]["context"]).resolve()
            if not (context / service["build"]["dockerfile"]).is_file():
                missing.append(f"{name}: build {context / service['build']['dockerfile']}")
    assert missing == []


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboards_directory() -> None:
    compose = _compose()
    grafana = compose["services"]["grafana"]
    mounts = _mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = _yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    assert (datasource["uid"], datasource["type"], datasource["isDefault"]) == ("prometheus", "prometheus", True)
    host, port = datasource["url"].removeprefix("http://").split(":")
    assert host in compose["services"], f"{host}: no such service"
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose["services"][host]["command"]
    assert any(str(mapping).endswith(f":{port}") for mapping in compose["services"][host]["ports"])
    (provider,) = _yaml(provisioning / "dashboards" / "leadflow.yaml")["providers"]
    assert mounts[provider["options"]["path"]] == DEPLOY / "grafana"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert PurePosixPath(home).parent == PurePosixPath(provider["options"]["path"])
    assert PurePosixPath(home).name == "leadflow.json"


def _datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            else:
                yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


def test_the_dashboards_use_the_provisioned_datasource() -> None:
    """Every panel's and query's datasource is the provisioned uid or a datasource variable of type prometheus."""
    dashboards = sorted((DEPLOY / "grafana").glob("*.json"))
    assert [p.name for p in dashboards] == ["leadflow.json"]
    for path in dashboards:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        variables = {
            v["name"]
            for v in dashboard.get("templating", {}).get("list", [])
            if v.get("type") == "datasource" and v.get("query") == "prometheus"
        }
        allowed = {"prometheus"} | {f"${name}" for name in variables} | {f"${{{name}}}" for name in variables}
        uids = set()
        for ref in _datasource_refs({k: v for k, v in dashboard.items() if k != "templating"}):
            uid = ref.get("uid") if isinstance(ref, dict) else ref
            if uid not in (None, "-- Grafana --", "grafana"):
                uids.add(uid)
        assert uids <= allowed, f"{path.name}: datasources {uids - allowed} are not provisioned"


# --- deploy/k8s ---------------------------------------------------------------------------------------------------


def _kustomized() -> list[Path]:
    kustomization = _yaml(K8S / "kustomization.yaml")
    return [K8S / name for name in kustomization["resources"]]


def _manifests() -> list[Doc]:
    """Every object kustomization.yaml applies, and the example Secret the StatefulSet needs."""
    paths = [*_kustomized(), K8S / "kafka-secret.example.yaml"]
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _one(kind: str, name: str = "leadflow") -> Doc:
    (found,) = [d for d in _manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _container() -> Doc:
    (container,) = _one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    return container


def _secret_mount() -> tuple[str, str]:
    """(path in the container, Secret name) of the Kafka secrets volume."""
    volumes = {v["name"]: v for v in _one("StatefulSet")["spec"]["template"]["spec"]["volumes"]}
    mounts = [
        (m["mountPath"], volumes[m["name"]]["secret"]["secretName"])
        for m in _container()["volumeMounts"]
        if "secret" in volumes.get(m["name"], {})
    ]
    (mount,) = mounts
    return mount


def _k8s_env() -> dict[str, str]:
    """The worker's environment: the image's ENV, the ConfigMaps of envFrom, then env (a secretKeyRef as its key)."""
    env = dict(_dockerfile_env())
    container = _container()
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "secrets are mounted as files, not spread into the environment"
        env.update(_one("ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        env[var["name"]] = f"<secret {ref['name']}/{ref['key']}>" if ref else var["value"]
    return env


def test_kustomization_applies_every_manifest() -> None:
    listed = _kustomized()
    assert all(path.is_file() for path in listed), listed
    manifests = {p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml" and ".example." not in p.name}
    assert set(listed) == manifests


# the oldest Kubernetes the package carries (not exported: its utils module lists them) and the newest
@pytest.mark.parametrize("version", sorted({all_versions()[0], kubernetes_validate.latest_version()}))
def test_the_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    kinds = []
    for doc in _manifests():
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no schema here, see the ServiceMonitor's structural checks
        kubernetes_validate.validate(doc, version, strict=True)
        kinds.append(doc["kind"])
    assert sorted(set(kinds)) == ["ConfigMap", "PodDisruptionBudget", "Secret", "Service", "StatefulSet"]


# Fields of prometheus-operator's ServiceMonitor (monitoring.coreos.com/v1, its API reference) that a deployment
# like this one uses: a real field missing here may be added, a misspelt one must be refused.
SERVICEMONITOR_SPEC_KEYS = {
    "endpoints", "selector", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels", "sampleLimit",
    "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit", "attachMetadata", "scrapeClass",
}  # fmt: skip
SERVICEMONITOR_ENDPOINT_KEYS = {
    "port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout", "honorLabels", "honorTimestamps",
    "relabelings", "metricRelabelings", "tlsConfig", "authorization", "basicAuth", "bearerTokenSecret",
    "followRedirects", "enableHttp2", "filterRunning",
}  # fmt: skip
LABEL_SELECTOR_KEYS = {"matchLabels", "matchExpressions"}
# Prometheus' duration: units from years down to milliseconds, largest first, each at most once
DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
DURATION_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def _seconds(duration: str) -> float | None:
    match = DURATION.fullmatch(duration)
    if duration == "0":
        return 0
    if duration == "" or match is None:
        return None
    return sum(int(n) * unit for n, unit in zip(match.groups(), DURATION_SECONDS, strict=True) if n)


def _servicemonitor_problems(monitor: Doc) -> list[str]:
    """What in ``monitor`` breaks the structure checked here (module docstring); [] when nothing does."""
    problems = []
    if (monitor.get("apiVersion"), monitor.get("kind")) != ("monitoring.coreos.com/v1", "ServiceMonitor"):
        problems.append(f"not a monitoring.coreos.com/v1 ServiceMonitor: {monitor.get('apiVersion')!r}")
    problems += _unknown("top level", monitor, {"apiVersion", "kind", "metadata", "spec"})
    problems += _unknown("metadata", monitor.get("metadata", {}), {"name", "namespace", "labels", "annotations"})
    spec = monitor.get("spec", {})
    problems += _unknown("spec", spec, SERVICEMONITOR_SPEC_KEYS)
    problems += _unknown("spec.selector", spec.get("selector", {}), LABEL_SELECTOR_KEYS)
    if not spec.get("selector"):
        problems.append("spec.selector: empty, it would select every Service of the namespace")
    if not spec.get("endpoints"):
        problems.append("spec.endpoints: none")
    for i, endpoint in enumerate(spec.get("endpoints", [])):
        where = f"spec.endpoints[{i}]"
        problems += _unknown(where, endpoint, SERVICEMONITOR_ENDPOINT_KEYS)
        if ("port" in endpoint) == ("targetPort" in endpoint):
            problems.append(f"{where}: name the Service's port with port (or targetPort), one of them")
        if not str(endpoint.get("path", "/")).startswith("/"):
            problems.append(f"{where}.path: {endpoint['path']!r} does not start with /")
        if endpoint.get("scheme", "http").lower() not in ("http", "https"):
            problems.append(f"{where}.scheme: {endpoint['scheme']!r} is neither http nor https")
        interval, timeout = (_seconds(str(endpoint.get(k, "1s"))) for k in ("interval", "scrapeTimeout"))
        if interval is None or timeout is None:
            problems.append(f"{where}: interval and scrapeTimeout are Prometheus durations such as 15s or 1m30s")
        elif timeout > interval:
            problems.append(f"{where}: scrapeTimeout is longer than interval, Prometheus refuses that")
    return problems


def test_the_servicemonitor_has_the_servicemonitor_structure() -> None:
    assert _servicemonitor_problems(_one("ServiceMonitor")) == []


@pytest.mark.parametrize(
    ("path", "correct", "misspelt", "where"),
    [
        (("spec", "endpoints", 0), "interval", "intervall", "spec.endpoints[0]"),
        (("spec", "endpoints", 0), "scrapeTimeout", "scrapeTimout", "spec.endpoints[0]"),
        (("spec",), "selector", "selecter", "spec"),
        (("spec", "selector"), "matchLabels", "matchLabel", "spec.selector"),
    ],
)
def test_the_servicemonitor_checks_refuse_a_misspelt_field(
    path: tuple[str | int, ...], correct: str, misspelt: str, where: str
) -> None:
    """The same ServiceMonitor with one field misspelt is refused, and the problem names the field."""
    problems = _servicemonitor_problems(_misspell(_one("ServiceMonitor"), path, correct, misspelt))
    assert f"{where}: unknown key {misspelt!r}" in problems


def test_the_servicemonitor_checks_refuse_a_timeout_longer_than_the_interval() -> None:
    monitor = copy.deepcopy(_one("ServiceMonitor"))
    monitor["spec"]["endpoints"][0].update(interval="15s", scrapeTimeout="1m")
    assert _servicemonitor_problems(monitor) == [
        "spec.endpoints[0]: scrapeTimeout is longer than interval, Prometheus refuses that"
    ]


def test_the_kubernetes_schemas_refuse_a_misspelt_field() -> None:
    """The validation above can fail: the StatefulSet with one field misspelt is refused."""
    statefulset = copy.deepcopy(_one("StatefulSet"))
    statefulset["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(statefulset, kubernetes_validate.latest_version(), strict=True)


def test_every_leadflow_variable_the_manifests_set_is_a_setting_the_worker_accepts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the secret files stood in for by files of the same names, the worker takes these settings together."""
    env = _k8s_env()
    assert _unknown_settings(list(env)) == []
    secret_dir, _secret = _secret_mount()
    for name, value in env.items():
        if value.startswith(secret_dir + "/"):
            stand_in = tmp_path / PurePosixPath(value).name
            stand_in.write_text("stand-in\n", encoding="utf-8")
            env[name] = str(stand_in)
    env["LEADFLOW_STATE_DIR"] = str(tmp_path / "state")
    settings = _settings(env, monkeypatch)
    assert settings.security_protocol == "SASL_SSL"
    assert settings.broker_sasl_mechanism is not None
    assert settings.broker_sasl_mechanism.startswith("SCRAM-")
    assert settings.broker_password_file is not None
    assert settings.broker_ssl_cafile is not None


def test_secrets_are_files_of_the_secret_never_environment_values() -> None:
    env = _k8s_env()
    secret_dir, secret_name = _secret_mount()
    keys = set(_one("Secret", secret_name)["stringData"])
    fields = Settings.model_fields
    read_from_files = {f"LEADFLOW_{f.removesuffix('_file').upper()}" for f in fields if f.endswith("_file")}
    assert read_from_files == {"LEADFLOW_BROKER_PASSWORD"}
    assert sorted(set(env) & read_from_files) == [], "set the _FILE variant: a secret is a mounted file"
    files = {PurePosixPath(v).name for v in env.values() if v.startswith(secret_dir + "/")}
    assert files, f"no setting reads a file of {secret_dir}"
    assert files <= keys, f"the Secret {secret_name} has no key {sorted(files - keys)}"
    refs = {v[len(f"<secret {secret_name}/") : -1] for v in env.values() if v.startswith(f"<secret {secret_name}/")}
    assert refs <= keys, f"the Secret {secret_name} has no key {sorted(refs - keys)}"


def test_the_probes_ask_the_web_port_for_health_and_readiness(monkeypatch: pytest.MonkeyPatch) -> None:
    container = _container()
    (port,) = container["ports"]
    env = {k: v for k, v in _k8s_env().items() if k in ("LEADFLOW_WEB_PORT", "LEADFLOW_APP_ID")}
    assert port["containerPort"] == _settings(env, monkeypatch).web_port
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {kind: (get["path"], get["port"]) for kind, get in probes.items()} == {
        "startupProbe": ("/healthz", port["name"]),
        "livenessProbe": ("/healthz", port["name"]),
        "readinessProbe": ("/ready", port["name"]),
    }
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "start-up reads whole topics: allow minutes"


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * units[unit] if unit else float(number) / 2**20


def test_the_memory_request_and_limit_cover_the_soaks_level_and_peak() -> None:
    """docs/RELIABILITY.md's soak: RSS levels off at 905-930 MiB (peak 947 MiB) over 10^6 leads."""
    text = (ROOT / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    level = re.search(r"levels off\*\*, at (\d+)-(\d+) MiB[^()]*\(peak (\d+) MiB\)", text)
    assert level is not None, "docs/RELIABILITY.md no longer states the soak's level and peak"
    plateau, peak = int(level.group(2)), int(level.group(3))
    resources = _container()["resources"]
    assert plateau <= _mebibytes(resources["requests"]["memory"]) < 1.25 * plateau
    assert _mebibytes(resources["limits"]["memory"]) >= 1.25 * peak
    assert "cpu" not in resources["limits"]


def test_service_servicemonitor_and_budget_select_the_workers() -> None:
    statefulset, service = _one("StatefulSet"), _one("Service")
    pods = statefulset["spec"]["template"]["metadata"]["labels"]
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None", "the StatefulSet's governing Service is headless"
    assert service["spec"]["selector"].items() <= pods.items()
    (port,) = _container()["ports"]
    (service_port,) = service["spec"]["ports"]
    assert (service_port["port"], service_port["targetPort"]) == (port["containerPort"], port["name"])
    monitor = _one("ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [service_port["name"]]
    assert service["metadata"]["name"] == "leadflow", "the job label (the Service's name) the alerts select"
    budget = _one("PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= pods.items()


def test_the_pods_run_as_the_images_user() -> None:
    dockerfile = (ROOT / DOCKERFILE).read_text(encoding="utf-8")
    uid = re.search(r"--uid (\d+)", dockerfile)
    gid = re.search(r"--gid (\d+)", dockerfile)
    assert uid is not None
    assert gid is not None
    security = _one("StatefulSet")["spec"]["template"]["spec"]["securityContext"]
    assert (security["runAsUser"], security["fsGroup"]) == (int(uid.group(1)), int(gid.group(1)))
    (state,) = [m for m in _container()["volumeMounts"] if m["name"] == "state"]
    assert state["mountPath"] == _dockerfile_env()["LEADFLOW_STATE_DIR"]


# --- README -------------------------------------------------------------------------------------------------------


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n### {title}\n")
    end = text.index("\n## ", start)
    return text[start:end]


def test_running_on_your_cluster_names_only_real_settings_and_files() -> None:
    section = _readme_section("Running on your cluster")
    assert _unknown_settings(re.findall(r"\bLEADFLOW_[A-Z_]+[A-Z]", section)) == []
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| service")]
    services = {row.split(" | ")[0].removeprefix("| ").split(",")[0] for row in rows if "---" not in row}
    assert services == {"Amazon MSK", "Confluent Cloud", "Aiven", "Strimzi", "Redpanda Cloud"}
    for row in rows[1:]:
        protocol, mechanism = row.split(" | ")[2:4]
        assert set(re.findall(r"`([A-Z_]+)`", protocol)) <= {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}, row
        assert set(re.findall(r"`([A-Z0-9-]+)`", mechanism)) <= {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}, row
        assert protocol.startswith("`SASL_") == (mechanism != "unset"), row
    for link in re.findall(r"\]\(((?:deploy|docs)/[^)#]*)", section):
        assert (ROOT / link).exists(), link
    assert "(#secured-clusters)" in section
