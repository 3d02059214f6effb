"""A refused SASL login becomes one message naming the user and the settings to check, whichever client saw it."""

from __future__ import annotations

from pathlib import Path

import aiokafka.errors as aio
import kafka.errors as kp
import pytest

from worker.settings import Settings
from worker.stream.topics import auth_failure

SERVER = "broker-1.example:9093"
WRONG = "not-the-password"  # what the tests log in with


def _settings(mechanism: str = "SCRAM-SHA-512", password_file: Path | None = None) -> Settings:
    return Settings(
        broker_url=f"kafka://{SERVER}",
        broker_security_protocol="SASL_SSL",
        broker_sasl_mechanism=mechanism,  # type: ignore[arg-type]
        broker_username="leadflow-svc",
        broker_password=None if password_file else WRONG,  # type: ignore[arg-type]
        broker_password_file=password_file,
    )


def _message(settings: Settings, exc: BaseException) -> str:
    error = auth_failure(settings, SERVER, exc)
    assert error is not None
    return str(error)


def test_aiokafkas_bare_keyerror_v_from_a_scram_error_reply_is_a_refused_login() -> None:
    message = _message(_settings(), KeyError("v"))
    assert message.startswith("SCRAM authentication failed for user 'leadflow-svc' at broker-1.example:9093")
    assert "an unknown user or a wrong password" in message
    assert message.endswith(
        "check LEADFLOW_BROKER_USERNAME / LEADFLOW_BROKER_PASSWORD and LEADFLOW_BROKER_SASL_MECHANISM"
    )


def test_a_password_from_a_file_names_the_file_setting(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(WRONG + "\n")
    message = _message(_settings(password_file=secret), KeyError("v"))
    assert "check LEADFLOW_BROKER_USERNAME / LEADFLOW_BROKER_PASSWORD_FILE and LEADFLOW_BROKER_SASL" in message
    assert WRONG not in message  # the secret itself is never printed


@pytest.mark.parametrize(
    "exc",
    [
        aio.SaslAuthenticationFailed("Authentication failed during authentication due to invalid credentials"),
        kp.SaslAuthenticationFailedError("Authentication failed during authentication due to invalid credentials"),
    ],
    ids=["aiokafka", "kafka-python"],
)
def test_the_brokers_authentication_failed_code_keeps_its_message(exc: Exception) -> None:
    message = _message(_settings("SCRAM-SHA-256"), exc)
    assert message.startswith("SCRAM authentication failed for user 'leadflow-svc'")
    assert "with SCRAM-SHA-256: SaslAuthenticationFailed (Authentication failed during authentication" in message


def test_a_mechanism_the_broker_does_not_offer_says_so_and_hides_the_connection_object() -> None:
    exc = aio.UnsupportedSaslMechanismError(object())  # what aiokafka raises when the handshake is refused
    message = _message(_settings("PLAIN"), exc)
    assert message.startswith("PLAIN authentication failed for user 'leadflow-svc' at broker-1.example:9093 with PLAIN")
    assert "UnsupportedSaslMechanism;" in message
    assert "object at 0x" not in message
    assert "LEADFLOW_BROKER_SASL_MECHANISM" in message


def test_a_connection_closed_during_the_login_is_a_refused_login() -> None:
    message = _message(_settings("PLAIN"), aio.KafkaConnectionError("Connection at x closed"))
    assert "the broker closed the connection during the login, as one that does not offer PLAIN may" in message


@pytest.mark.parametrize(
    "exc",
    [
        KeyError("partitions"),
        OSError(33, "a socket's errno is no Kafka error code"),
        ValueError("v"),
        aio.NotLeaderForPartitionError(),
    ],
    ids=["other-key", "socket-errno-33", "value-error", "other-kafka-error"],
)
def test_other_errors_are_not_mistaken_for_a_refused_login(exc: Exception) -> None:
    assert auth_failure(_settings(), SERVER, exc) is None
