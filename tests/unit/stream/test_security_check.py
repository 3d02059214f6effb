"""The start-up check that tells a TLS port from a plaintext one in seconds, before any Kafka client retries."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from worker.exceptions import ConfigError
from worker.settings import Settings
from worker.stream.topics import check_tls


@pytest.fixture
def listener() -> Iterator[Callable[[bytes], int]]:
    """A local TCP server that answers each connection with ``reply`` (after reading a little) and closes it."""
    sockets: list[socket.socket] = []

    def start(reply: bytes) -> int:
        server = socket.create_server(("127.0.0.1", 0))
        sockets.append(server)

        def serve() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(1024)
                    conn.sendall(reply)

        threading.Thread(target=serve, daemon=True).start()
        return int(server.getsockname()[1])

    yield start
    for server in sockets:
        server.close()


def test_a_plaintext_request_closed_unanswered_says_it_may_be_a_tls_listener(
    listener: Callable[[bytes], int],
) -> None:
    port = listener(b"")
    with pytest.raises(ConfigError, match=f"127.0.0.1:{port} closed the connection on a plaintext Kafka request"):
        check_tls(Settings(broker_url=f"127.0.0.1:{port}", broker_security_protocol="PLAINTEXT"))


def test_a_plaintext_broker_that_answers_passes(listener: Callable[[bytes], int]) -> None:
    port = listener(b"\x00\x00\x00\x06\x00\x00\x00\x01\x00\x00")
    check_tls(Settings(broker_url=f"127.0.0.1:{port}", broker_security_protocol="PLAINTEXT"))


def test_tls_against_a_plaintext_port_says_it_is_no_tls_listener(listener: Callable[[bytes], int]) -> None:
    port = listener(b"\x00\x00\x00\x06not tls at all")
    with pytest.raises(ConfigError, match=rf"TLS to 127.0.0.1:{port} failed .*: is it a TLS listener\?"):
        check_tls(Settings(broker_url=f"127.0.0.1:{port}", broker_security_protocol="SSL"))


def test_an_unreachable_broker_is_left_to_the_clients_to_report() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_tls(Settings(broker_url=f"127.0.0.1:{port}", broker_security_protocol="SSL"), timeout=0.5)
