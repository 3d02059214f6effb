"""Metrics live on a registry that is passed in; bulk observations count exactly like single ones."""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from worker.batch import BatchResult
from worker.settings import Settings
from worker.stream._lead_stage import LeadStage as BatchHandler
from worker.stream.metrics import Metrics, observe_many


def _buckets(registry: CollectorRegistry, name: str) -> dict[str, float]:
    return {
        s.labels["le"]: s.value for family in registry.collect() for s in family.samples if s.name == f"{name}_bucket"
    }


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=50))
def test_observe_many_counts_like_observe(values: list[float]) -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    single, bulk = Metrics(one), Metrics(many)
    for v in values:
        single.latency.observe(v)
    observe_many(bulk.latency, values)
    assert _buckets(many, "leadflow_event_latency_seconds") == _buckets(one, "leadflow_event_latency_seconds")
    total = many.get_sample_value("leadflow_event_latency_seconds_sum")
    assert total == pytest.approx(one.get_sample_value("leadflow_event_latency_seconds_sum"))
    assert many.get_sample_value("leadflow_event_latency_seconds_count") == len(values)


def test_two_workers_in_one_process_do_not_collide() -> None:
    Metrics(CollectorRegistry())
    Metrics(CollectorRegistry())  # the global registry would raise "Duplicated timeseries"


def test_unknown_statuses_are_reported_as_other() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.set_versions("1+abc", "m1", ["Open", "Qualified"])
    assert metrics.status_label("Qualified") == "Qualified"
    assert metrics.status_label("Some status a producer made up") == "other"


def test_values_on_a_bucket_bound_count_in_that_bucket() -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    values = [0.001, 0.005, 0.1, 1.0, 30.0, 31.0, 0.0]
    single, bulk = Metrics(one), Metrics(many)
    for v in values:
        single.score.observe(v)
    observe_many(bulk.score, values)
    assert _buckets(many, "leadflow_score") == _buckets(one, "leadflow_score")
    assert bulk.score._buckets[0].get() == 4  # 0.0, 0.001, 0.005 and 0.1 are all <= 0.1


def test_a_batch_s_feature_counts_move_the_feature_metrics() -> None:
    registry = CollectorRegistry()
    handler = BatchHandler(cast(Any, None), Settings(), cast(Any, None), Metrics(registry), cast(Any, None))
    result = BatchResult()
    result.features_observed.update({"lead_source": 3, "number_of_employees": 3})
    result.features_missing.update({"number_of_employees": 2})
    result.features_unseen.update({"lead_source": 1})
    handler._count(result)
    handler._count(result)

    def value(name: str, feature: str) -> float | None:
        return registry.get_sample_value(name, {"feature": feature})

    assert value("leadflow_feature_observed_total", "lead_source") == 6
    assert value("leadflow_feature_missing_total", "number_of_employees") == 4
    assert value("leadflow_feature_unseen_total", "lead_source") == 2
    assert value("leadflow_feature_missing_total", "lead_source") is None  # never counted: no series


def test_faust_latencies_are_exposed_in_seconds() -> None:
    """Faust observes milliseconds; the worker's /metrics says seconds, as Prometheus practice and promtool want."""
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

    from worker.stream.app import _faust_latencies_in_seconds

    registry = CollectorRegistry()
    monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, "leadflow_faust"))
    _faust_latencies_in_seconds(monitor, registry)
    monitor._metrics.events_runtime_latency.observe(250.0)  # what Faust hands over: milliseconds
    assert registry.get_sample_value("leadflow_faust_events_runtime_seconds_sum") == 0.25
    assert registry.get_sample_value("leadflow_faust_events_runtime_seconds_bucket", {"le": "0.25"}) == 1
    names = {metric.name for metric in registry.collect()}
    assert not any(name.endswith("_ms") for name in names)
    assert "leadflow_faust_consumer_commit_latency_seconds" in names
