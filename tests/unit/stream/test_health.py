"""/healthz and /ready: what an orchestrator is told, and why."""

from __future__ import annotations

import pytest

from worker.stream._health import Health, WorkerView, liveness, readiness

READY = WorkerView(recovered=True, partitions=16)
RUNNING = {"recovered": True, "partitions": 4}


def test_a_recovered_worker_with_partitions_is_alive_and_ready() -> None:
    assert liveness(READY) == Health(True, "running")
    assert readiness(READY) == Health(True, "consuming 16 partitions")


@pytest.mark.parametrize(
    ("view", "reason"),
    [
        (WorkerView(), "joining the consumer group"),
        (WorkerView(rebalancing=True), "rebalancing"),
        (WorkerView(rebalancing=True, recovering=True), "rebalancing"),
        (WorkerView(recovering=True, recovered=True, partitions=4), "recovering tables"),
        (WorkerView(recovered=True, rebalancing=True, partitions=4), "rebalancing"),
    ],
)
def test_not_ready_but_alive_while_joining_rebalancing_or_recovering(view: WorkerView, reason: str) -> None:
    assert readiness(view) == Health(False, reason)
    assert liveness(view).ok  # a restart would not help: it only has to wait


@pytest.mark.parametrize(
    ("view", "reason"),
    [
        (WorkerView(crashed="KafkaError('x')", **RUNNING), "crashed: KafkaError('x')"),
        (WorkerView(stopping=True, **RUNNING), "stopping"),
        (WorkerView(agents_down=("leadflow.process",), **RUNNING), "agents stopped: leadflow.process"),
    ],
)
def test_a_crashed_or_stopping_worker_is_neither_alive_nor_ready(view: WorkerView, reason: str) -> None:
    assert liveness(view) == Health(False, reason)
    assert readiness(view) == Health(False, reason)


def test_a_spare_worker_without_partitions_is_ready_so_a_rolling_update_does_not_wait_for_it() -> None:
    spare = WorkerView(recovered=True, partitions=0)
    assert readiness(spare) == Health(True, "standing by: no partitions assigned (more workers than partitions)")
