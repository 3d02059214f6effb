"""Create the topics leadflow reads and writes, with the partition count the worker expects."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Iterable

from aiokafka.errors import KafkaConnectionError as AioKafkaConnectionError
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from worker.exceptions import ConfigError
from worker.settings import Settings

__all__ = [
    "auth_failure",
    "check_broker",
    "check_reachable",
    "check_sasl",
    "check_tls",
    "ensure_accounts_topic",
    "ensure_control_topic",
    "ensure_topics",
    "topic_names",
    "unreachable",
]

logger = logging.getLogger(__name__)


def topic_names(settings: Settings) -> list[str]:
    """The topics the worker reads and writes with ``settings.partitions`` partitions: leads, the outputs, the
    feedback topic, the two internal routing topics, the pipeline topic and the match topic (the control and
    accounts topics are compacted, see below)."""
    return [
        settings.topic_leads,
        settings.topic_decisions,
        settings.topic_opportunities,
        settings.topic_dlq,
        settings.topic_routing_decisions,
        settings.topic_feedback,
        settings.topic_route_requests,
        settings.topic_sla,
        settings.topic_pipeline,
        settings.topic_match,
    ]


def ensure_control_topic(settings: Settings) -> None:
    """Create the control topic if it is missing: one partition (one order for every worker), compacted."""
    _ensure_compacted(settings, settings.topic_control, 1, "control topic")


def ensure_accounts_topic(settings: Settings) -> None:
    """Create the accounts topic if it is missing (compacted; the CRM side publishes one record per account)."""
    _ensure_compacted(settings, settings.topic_accounts, settings.partitions, "accounts topic")


def _ensure_compacted(settings: Settings, name: str, partitions: int, what: str) -> None:
    admin = _admin(settings)
    try:
        if name not in set(admin.list_topics()):
            topic = NewTopic(name, partitions, 1, topic_configs={"cleanup.policy": "compact"})
            try:
                admin.create_topics([topic])
                logger.info("created %s %r (compacted)", what, name)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> None:
    """Create missing topics with ``settings.partitions`` partitions; refuse a leads topic of another size.

    The lead-state table is co-partitioned with the leads topic, so their partition counts must match.
    """
    wanted = list(names) if names is not None else topic_names(settings)
    admin = _admin(settings)
    try:
        existing = set(admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, settings.partitions, 1)])
                logger.info("created topic %r with %d partitions", name, settings.partitions)
            except TopicAlreadyExistsError:
                pass
        if settings.topic_leads in existing:
            described = admin.describe_topics([settings.topic_leads])
            count = len(described[0].get("partitions", [])) if described else 0
            if count and count != settings.partitions:
                msg = (
                    f"topic {settings.topic_leads!r} has {count} partitions but LEADFLOW_PARTITIONS is "
                    f"{settings.partitions}; set LEADFLOW_PARTITIONS={count} so lead state stays co-partitioned"
                )
                raise ConfigError(msg)
    finally:
        admin.close()


def _admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, client_id=f"{settings.app_id}-admin", **settings.kafka_auth()
    )


def unreachable(settings: Settings, timeout: float = 3.0) -> str | None:
    """Why no bootstrap server accepts a TCP connection, or None when one does.

    Checked before creating a Kafka client, which otherwise retries for a long time and leaves sockets open.
    """
    errors = []
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return None
        except (OSError, ValueError) as exc:
            errors.append(f"{server}: {exc}")
    return "; ".join(errors)


def check_tls(settings: Settings, timeout: float = 5.0) -> None:
    """With SSL or SASL_SSL, a TLS handshake with the first bootstrap server that answers; a failure is a ConfigError.

    Kafka clients retry a failed handshake until their request timeout (30 s and more) and then report only that no
    broker is available; this says within seconds whether the certificate or the port is the problem.
    """
    context = settings.ssl_context()
    if context is None:
        if settings.security_protocol == "PLAINTEXT":
            _check_plaintext(settings, timeout)
        return
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        host = host.strip("[]")
        try:
            sock = socket.create_connection((host, int(port)), timeout=timeout)
        except (OSError, ValueError):
            continue  # unreachable: the clients say so
        try:
            with context.wrap_socket(sock, server_hostname=host):
                return
        except ssl.SSLCertVerificationError as exc:
            msg = (
                f"TLS to {server}: the broker's certificate is not trusted ({exc.verify_message}); set"
                " LEADFLOW_BROKER_SSL_CAFILE to the CA that signed it (LEADFLOW_BROKER_SSL_VERIFY=false only for tests)"
            )
            raise ConfigError(msg) from None
        except (ssl.SSLError, OSError) as exc:
            msg = (
                f"TLS to {server} failed ({exc}): is it a TLS listener? LEADFLOW_BROKER_SECURITY_PROTOCOL="
                f"{settings.security_protocol} needs one; use the cluster's TLS port or a protocol without SSL"
            )
            raise ConfigError(msg) from None
        finally:
            sock.close()


# ApiVersions v0, correlation id 1, client id "leadflow": the request every Kafka client sends first
_API_VERSIONS_BODY = bytes.fromhex("00120000000000010008") + b"leadflow"
_API_VERSIONS = len(_API_VERSIONS_BODY).to_bytes(4, "big") + _API_VERSIONS_BODY


def _check_plaintext(settings: Settings, timeout: float) -> None:
    """A plaintext ApiVersions to the first bootstrap server that accepts; closed unanswered means a TLS listener."""
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        except (OSError, ValueError):
            continue
        try:
            sock.sendall(_API_VERSIONS)
            answer = sock.recv(4)
        except TimeoutError:
            return  # slow, not refused: the clients' own timeouts apply
        except OSError:
            answer = b""
        finally:
            sock.close()
        if not answer or answer[:1] == b"\x15":  # closed, or a TLS alert record
            msg = (
                f"{server} closed the connection on a plaintext Kafka request: is it a TLS listener? set"
                " LEADFLOW_BROKER_SECURITY_PROTOCOL=SSL (or SASL_SSL) and LEADFLOW_BROKER_SSL_CAFILE"
            )
            raise ConfigError(msg)
        return


def check_reachable(settings: Settings, what: str) -> None:
    """Before a command makes a Kafka client: a broker answers, and TLS and the SASL login work; else a ConfigError.

    A client would otherwise retry for half a minute or more and then say only that no broker is available.
    """
    why = unreachable(settings)
    if why is not None:
        msg = (
            f"cannot {what} at {settings.broker_url}: no broker answers ({why});"
            " check LEADFLOW_BROKER_URL (or --broker)"
        )
        raise ConfigError(msg)
    check_broker(settings)


def check_broker(settings: Settings, timeout: float = 5.0) -> None:
    """The security checks run before any Kafka client is made: the TLS handshake, then one SASL login.

    The worker at start-up and every command that talks to a broker call it, so a distrusted certificate, a
    plaintext client on a TLS port or refused credentials end in seconds with a ConfigError saying which.
    """
    check_tls(settings, timeout)
    check_sasl(settings, timeout)


def check_sasl(settings: Settings, timeout: float = 5.0) -> None:
    """With SASL_PLAINTEXT or SASL_SSL, log in once to the first bootstrap server that accepts; refused: ConfigError.

    The Kafka clients do not say it readably: kafka-python retries a refused login until its bootstrap timeout and
    reports "Unable to bootstrap", aiokafka raises a bare ``KeyError: 'v'`` when a SCRAM server's final message is
    an error. :func:`auth_failure` turns these into one message naming the settings to check.
    """
    if not settings.security_protocol.startswith("SASL_"):
        return
    from aiokafka.conn import create_conn

    async def login(host: str, port: int) -> None:
        conn = await asyncio.wait_for(
            create_conn(host, port, client_id=f"{settings.app_id}-check", **settings.kafka_auth()), timeout
        )
        conn.close()

    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            asyncio.run(login(host.strip("[]"), int(port)))
        except TimeoutError:
            return  # slow, not refused: the clients' own timeouts apply
        except (OSError, ValueError):
            continue  # unreachable: the clients say so
        except Exception as exc:
            error = auth_failure(settings, server, exc)
            if error is None:
                raise
            raise error from None
        return


_SASL_ERRNOS = {33: "UnsupportedSaslMechanism", 34: "IllegalSaslState", 58: "SaslAuthenticationFailed"}


def auth_failure(settings: Settings, server: str, exc: BaseException) -> ConfigError | None:
    """The ConfigError saying why the SASL login to ``server`` failed with ``exc``; None when ``exc`` is another error.

    Maps the broker's SASL error codes (raised by aiokafka or kafka-python), aiokafka's ``KeyError('v')`` (a SCRAM
    server-final message ``e=...``: an unknown user or a wrong password) and a connection closed during the login.
    """
    mechanism = settings.broker_sasl_mechanism or "PLAIN"
    family = "SCRAM" if mechanism.startswith("SCRAM-") else mechanism
    errno = None if isinstance(exc, OSError) else getattr(exc, "errno", None)  # a Kafka error code, not a socket's
    if isinstance(exc, KeyError) and exc.args == ("v",):
        why = "the broker's final SCRAM message is an error, not its signature: an unknown user or a wrong password"
    elif errno in _SASL_ERRNOS:
        _, _, detail = str(exc).partition(": ")  # "[Error 58] SaslAuthenticationFailed: the broker's message"
        why = _SASL_ERRNOS[errno] + (f" ({detail})" if detail and not detail.startswith("<") else "")
    elif isinstance(exc, AioKafkaConnectionError | KafkaConnectionError):
        why = f"the broker closed the connection during the login, as one that does not offer {mechanism} may ({exc})"
    else:
        return None
    password = "LEADFLOW_BROKER_PASSWORD" + ("_FILE" if settings.broker_password_file is not None else "")
    msg = (
        f"{family} authentication failed for user {settings.broker_username!r} at {server} with {mechanism}: {why};"
        f" check LEADFLOW_BROKER_USERNAME / {password} and LEADFLOW_BROKER_SASL_MECHANISM"
    )
    return ConfigError(msg)
