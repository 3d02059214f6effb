"""One settings object: environment variables with the LEADFLOW_ prefix, validated, secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from worker.settings import Settings


def test_defaults_point_at_a_local_broker_and_the_documented_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LEADFLOW_BROKER_URL", "LEADFLOW_TOPIC_LEADS", "LEADFLOW_WEB_PORT"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.bootstrap_servers == ["localhost:9092"]
    assert (s.topic_leads, s.topic_decisions, s.topic_opportunities, s.topic_dlq) == (
        "leads",
        "lead-decisions",
        "opportunities",
        "leads-dlq",
    )
    assert s.web_port == 6066


def test_environment_variables_configure_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_BROKER_URL", "k1:9092,k2:9093")
    monkeypatch.setenv("LEADFLOW_TOPIC_LEADS", "crm.leads")
    monkeypatch.setenv("LEADFLOW_PASSWORD", "unused")  # not a setting: ignored by the prefix match
    monkeypatch.setenv("LEADFLOW_BROKER_USERNAME", "leadflow")
    monkeypatch.setenv("LEADFLOW_BROKER_PASSWORD", "hunter2")
    s = Settings()
    assert s.bootstrap_servers == ["k1:9092", "k2:9093"]
    assert s.topic_leads == "crm.leads"
    assert "hunter2" not in repr(s.dump())


def test_bad_values_are_refused_with_the_variable_named() -> None:
    with pytest.raises(ValidationError, match="web_port"):
        Settings(web_port=0)
    with pytest.raises(ValidationError, match="names no broker"):
        Settings(broker_url=" ; ")


def test_a_bad_setting_is_a_config_error_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.exceptions import ConfigError
    from worker.settings import settings_from

    monkeypatch.setenv("LEADFLOW_PARTITIONS", "0")
    with pytest.raises(ConfigError, match="invalid settings: LEADFLOW_PARTITIONS: Input should be greater than"):
        settings_from()
    monkeypatch.delenv("LEADFLOW_PARTITIONS")
    with pytest.raises(ConfigError, match=r"LEADFLOW_TOPIC_DLQ: Value error, 'dead letters' cannot name a Kafka topic"):
        settings_from(topic_dlq="dead letters")
    assert settings_from(topic_control="ops.leadflow-control_v2").topic_control == "ops.leadflow-control_v2"


def test_compression_is_zstd_unless_set_and_none_means_no_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADFLOW_COMPRESSION", raising=False)
    assert (Settings().compression, Settings().compression_type) == ("zstd", "zstd")
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        monkeypatch.setenv("LEADFLOW_COMPRESSION", codec)
        assert Settings().compression_type == codec
    monkeypatch.setenv("LEADFLOW_COMPRESSION", "none")
    assert (Settings().compression, Settings().compression_type) == ("none", None)
    assert Settings().dump()["compression"] == "none"


def test_an_unknown_codec_is_refused_with_the_variable_and_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.exceptions import ConfigError
    from worker.settings import settings_from

    monkeypatch.setenv("LEADFLOW_COMPRESSION", "brotli")
    with pytest.raises(
        ConfigError, match="LEADFLOW_COMPRESSION: Input should be 'none', 'gzip', 'snappy', 'lz4' or 'zstd'"
    ):
        settings_from()


_SECURITY_VARS = (
    "LEADFLOW_BROKER_SECURITY_PROTOCOL",
    "LEADFLOW_BROKER_SASL_MECHANISM",
    "LEADFLOW_BROKER_USERNAME",
    "LEADFLOW_BROKER_PASSWORD",
    "LEADFLOW_BROKER_PASSWORD_FILE",
    "LEADFLOW_BROKER_SSL_CAFILE",
    "LEADFLOW_BROKER_SSL_CERTFILE",
    "LEADFLOW_BROKER_SSL_KEYFILE",
    "LEADFLOW_BROKER_SSL_VERIFY",
)


@pytest.fixture
def no_security_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in _SECURITY_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _pem_ca(tmp_path: Path) -> Path:
    """A CA file Python's ssl module accepts: the system's own bundle, copied."""
    import ssl

    paths = ssl.get_default_verify_paths()
    source = Path(paths.cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not source.is_file():
        pytest.skip("no system CA bundle to copy")
    target = tmp_path / "ca.pem"
    target.write_bytes(source.read_bytes())
    return target


def test_without_security_settings_clients_speak_plaintext(no_security_env: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.security_protocol == "PLAINTEXT"
    assert s.kafka_auth() == {"security_protocol": "PLAINTEXT"}
    assert s.ssl_context() is None


def test_a_username_alone_keeps_the_old_sasl_plaintext_plain(no_security_env: pytest.MonkeyPatch) -> None:
    no_security_env.setenv("LEADFLOW_BROKER_USERNAME", "leadflow")
    no_security_env.setenv("LEADFLOW_BROKER_PASSWORD", "hunter2")
    assert Settings().kafka_auth() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "leadflow",
        "sasl_plain_password": "hunter2",
    }


def test_sasl_ssl_with_scram_verifies_the_broker_against_the_ca_file(
    no_security_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ssl

    ca = _pem_ca(tmp_path)
    no_security_env.setenv("LEADFLOW_BROKER_SECURITY_PROTOCOL", "SASL_SSL")
    no_security_env.setenv("LEADFLOW_BROKER_SASL_MECHANISM", "SCRAM-SHA-512")
    no_security_env.setenv("LEADFLOW_BROKER_USERNAME", "leadflow")
    no_security_env.setenv("LEADFLOW_BROKER_PASSWORD", "hunter2")
    no_security_env.setenv("LEADFLOW_BROKER_SSL_CAFILE", str(ca))
    auth = Settings().kafka_auth()
    context = auth.pop("ssl_context")
    assert auth == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "leadflow",
        "sasl_plain_password": "hunter2",
    }
    assert isinstance(context, ssl.SSLContext)
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)


def test_verification_is_turned_off_only_when_asked(no_security_env: pytest.MonkeyPatch) -> None:
    import ssl

    no_security_env.setenv("LEADFLOW_BROKER_SECURITY_PROTOCOL", "SSL")
    context = Settings().ssl_context()
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    no_security_env.setenv("LEADFLOW_BROKER_SSL_VERIFY", "false")
    context = Settings().ssl_context()
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)


def test_the_password_can_come_from_a_mounted_secret_file(no_security_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cr3t\n")
    no_security_env.setenv("LEADFLOW_BROKER_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    no_security_env.setenv("LEADFLOW_BROKER_SASL_MECHANISM", "SCRAM-SHA-256")
    no_security_env.setenv("LEADFLOW_BROKER_USERNAME", "leadflow")
    no_security_env.setenv("LEADFLOW_BROKER_PASSWORD_FILE", str(secret))
    s = Settings()
    assert s.kafka_auth()["sasl_plain_password"] == "s3cr3t"  # noqa: S105  # the test secret, read back
    assert s.kafka_auth()["sasl_mechanism"] == "SCRAM-SHA-256"
    assert "s3cr3t" not in repr(s.dump()) + repr(s)


def test_secrets_are_never_printed(no_security_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from worker.cli import main

    no_security_env.setenv("LEADFLOW_BROKER_SECURITY_PROTOCOL", "SASL_SSL")
    no_security_env.setenv("LEADFLOW_BROKER_USERNAME", "leadflow")
    no_security_env.setenv("LEADFLOW_BROKER_PASSWORD", "hunter2")
    assert main(["run", "--print-settings"]) == 0
    out = capsys.readouterr().out
    assert "broker_security_protocol = 'SASL_SSL'" in out
    assert "broker_password = '**********'" in out
    assert "hunter2" not in out


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"LEADFLOW_BROKER_SECURITY_PROTOCOL": "SASL_SSL"},
            "LEADFLOW_BROKER_SECURITY_PROTOCOL=SASL_SSL needs LEADFLOW_BROKER_USERNAME and LEADFLOW_BROKER_PASSWORD",
        ),
        (
            {"LEADFLOW_BROKER_SASL_MECHANISM": "SCRAM-SHA-256"},
            "LEADFLOW_BROKER_SASL_MECHANISM set but LEADFLOW_BROKER_SECURITY_PROTOCOL=PLAINTEXT does not use SASL",
        ),
        (
            {"LEADFLOW_BROKER_SECURITY_PROTOCOL": "SSL", "LEADFLOW_BROKER_USERNAME": "u"},
            "SASL credentials set but LEADFLOW_BROKER_SECURITY_PROTOCOL=SSL does not use SASL",
        ),
        (
            {"LEADFLOW_BROKER_USERNAME": "u"},
            "LEADFLOW_BROKER_SECURITY_PROTOCOL=SASL_PLAINTEXT needs LEADFLOW_BROKER_USERNAME and",
        ),
        (
            {"LEADFLOW_BROKER_USERNAME": "u", "LEADFLOW_BROKER_PASSWORD": "p", "LEADFLOW_BROKER_PASSWORD_FILE": "/x"},
            "LEADFLOW_BROKER_PASSWORD and LEADFLOW_BROKER_PASSWORD_FILE are both set: keep one",
        ),
        (
            {"LEADFLOW_BROKER_USERNAME": "u", "LEADFLOW_BROKER_PASSWORD_FILE": "/nonexistent/password"},
            "LEADFLOW_BROKER_PASSWORD_FILE='/nonexistent/password': no such file",
        ),
        (
            {"LEADFLOW_BROKER_SECURITY_PROTOCOL": "SSL", "LEADFLOW_BROKER_SSL_CAFILE": "/nonexistent/ca.pem"},
            "LEADFLOW_BROKER_SSL_CAFILE='/nonexistent/ca.pem': no such file",
        ),
        (
            {"LEADFLOW_BROKER_SECURITY_PROTOCOL": "SSL", "LEADFLOW_BROKER_SSL_CERTFILE": "/nonexistent/c.pem"},
            "mutual TLS needs both LEADFLOW_BROKER_SSL_CERTFILE and LEADFLOW_BROKER_SSL_KEYFILE; only"
            " LEADFLOW_BROKER_SSL_CERTFILE is set",
        ),
        (
            {"LEADFLOW_BROKER_SSL_CAFILE": "/nonexistent/ca.pem"},
            "LEADFLOW_BROKER_SSL_CAFILE set but LEADFLOW_BROKER_SECURITY_PROTOCOL=PLAINTEXT does not use TLS",
        ),
    ],
)
def test_security_settings_that_cannot_work_are_refused_naming_the_fix(
    no_security_env: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    from worker.exceptions import ConfigError
    from worker.settings import settings_from

    for var, value in env.items():
        no_security_env.setenv(var, value)
    with pytest.raises(ConfigError) as caught:
        settings_from()
    assert message in str(caught.value)


def test_a_ca_file_that_is_no_certificate_is_a_config_error(
    no_security_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from worker.exceptions import ConfigError

    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate")
    no_security_env.setenv("LEADFLOW_BROKER_SECURITY_PROTOCOL", "SSL")
    no_security_env.setenv("LEADFLOW_BROKER_SSL_CAFILE", str(junk))
    with pytest.raises(ConfigError, match=r"LEADFLOW_BROKER_SSL_CAFILE=.*holds no usable PEM certificate"):
        Settings().kafka_auth()


def test_the_faust_app_gets_the_same_security(no_security_env: pytest.MonkeyPatch) -> None:
    import faust

    from worker.stream.app import _credentials

    assert _credentials(Settings()) is None
    no_security_env.setenv("LEADFLOW_BROKER_SECURITY_PROTOCOL", "SSL")
    ssl_only = _credentials(Settings())
    assert isinstance(ssl_only, faust.SSLCredentials)
    no_security_env.setenv("LEADFLOW_BROKER_SECURITY_PROTOCOL", "SASL_SSL")
    no_security_env.setenv("LEADFLOW_BROKER_SASL_MECHANISM", "SCRAM-SHA-256")
    no_security_env.setenv("LEADFLOW_BROKER_USERNAME", "leadflow")
    no_security_env.setenv("LEADFLOW_BROKER_PASSWORD", "hunter2")
    sasl = _credentials(Settings())
    assert isinstance(sasl, faust.SASLCredentials)
    assert (sasl.protocol.value, sasl.mechanism.value, sasl.password) == ("SASL_SSL", "SCRAM-SHA-256", "hunter2")
