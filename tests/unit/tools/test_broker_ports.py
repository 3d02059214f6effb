"""free_port: a port for a server that no client connection can be holding (tests/integration restart workers)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from worker.tools.broker import free_port


def _ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_a_free_port_is_below_the_ephemeral_range_and_can_be_listened_on() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) > 1  # drawn, not one fixed port
    for port in ports:
        assert 20_000 <= port < _ephemeral_low()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("0.0.0.0", ports.pop()))  # noqa: S104
        server.listen()


def test_a_port_in_use_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every draw landing on a port a server holds, free_port falls back to the kernel's choice."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        monkeypatch.setattr("worker.tools.broker._PORTS_FROM", taken)
        monkeypatch.setattr("worker.tools.broker._ephemeral_low", lambda: taken + 1001)
        monkeypatch.setattr("worker.tools.broker.secrets.randbelow", lambda _n: 0)  # always `taken`
        assert free_port() != taken
