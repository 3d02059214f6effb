"""``leadflow broker``: stopped by a signal it leaves nothing running; with ``--data`` its records outlive it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata

from worker.tools.broker import free_port

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (dead, waiting to be reaped by whoever adopted it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout}s")
        time.sleep(0.05)


@contextlib.contextmanager
def _broker_command(port: int, tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``python -m worker broker --port PORT ARGS`` until it listens; (its process, tansu's pid)."""
    log = (tmp_path / f"broker-{port}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "broker", "--port", str(port), *args], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_for(lambda: _listening(port) or process.poll() is not None, 20, "the broker does not listen")
        assert process.poll() is None, (tmp_path / f"broker-{port}.log").read_text()
        (tansu,) = _children(process.pid)
        yield process, tansu
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_broker_and_leaves_nothing_running(tmp_path: Path, signum: signal.Signals) -> None:
    port = free_port()
    with _broker_command(port, tmp_path) as (process, tansu):
        assert _running(tansu)
        started = time.monotonic()
        process.send_signal(signum)
        code = process.wait(timeout=10)
        took = time.monotonic() - started
    assert code == 0
    assert took < 5, f"stopping took {took:.1f}s"
    assert not _running(tansu), "tansu outlived leadflow broker"
    assert not _listening(port)
    with socket.socket() as sock:  # nobody holds the port: a new broker could take it at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_the_broker_does_not_outlive_a_killed_leadflow(tmp_path: Path) -> None:
    port = free_port()
    with _broker_command(port, tmp_path, "--data", str(tmp_path / "data")) as (process, tansu):
        os.kill(process.pid, signal.SIGKILL)  # no handler runs: only the kernel can stop tansu now
        process.wait(timeout=10)
        _wait_for(lambda: not _running(tansu), 5, "tansu still runs")
    _wait_for(lambda: not _listening(port), 5, "the port still accepts connections")


def _produce(bootstrap: str, sent: dict[bytes, bytes]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("kept", num_partitions=3, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for key, value in sent.items():
        producer.send("kept", key=key, value=value)
    producer.flush()
    producer.close()


def _read_all(bootstrap: str, expected: int) -> dict[bytes, bytes]:
    tps = [TopicPartition("kept", p) for p in range(3)]
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    reader.assign(tps)
    reader.seek_to_beginning(*tps)
    read: dict[bytes, bytes] = {}
    deadline = time.monotonic() + 30
    while len(read) < expected and time.monotonic() < deadline:
        for records in reader.poll(timeout_ms=500).values():
            read.update((r.key, r.value) for r in records)
    reader.close()
    return read


def test_with_data_records_and_committed_offsets_survive_a_restart(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "data"
    bootstrap = f"127.0.0.1:{port}"
    first = TopicPartition("kept", 0)
    sent = {f"k{i}".encode(): f"v{i}".encode() for i in range(300)}
    with _broker_command(port, tmp_path, "--data", str(data)) as (process, _):
        _produce(bootstrap, sent)
        group = KafkaConsumer(bootstrap_servers=bootstrap, group_id="keeper", enable_auto_commit=False)
        group.commit({first: OffsetAndMetadata(7, "", -1)})
        group.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0

    with _broker_command(port, tmp_path, "--data", str(data)):
        read = _read_all(bootstrap, len(sent))
        group = KafkaConsumer(bootstrap_servers=bootstrap, group_id="keeper", enable_auto_commit=False)
        committed = group.committed(first)
        group.close()
    assert read == sent
    assert committed == 7


def test_with_data_what_was_acknowledged_survives_a_killed_broker(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "data"
    bootstrap = f"127.0.0.1:{port}"
    sent = {f"k{i}".encode(): f"v{i}".encode() for i in range(100)}
    with _broker_command(port, tmp_path, "--data", str(data)) as (process, tansu):
        _produce(bootstrap, sent)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        _wait_for(lambda: not _running(tansu) and not _listening(port), 5, "the old broker still runs")
    with _broker_command(port, tmp_path, "--data", str(data)):
        assert _read_all(bootstrap, len(sent)) == sent
