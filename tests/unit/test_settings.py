"""One settings object: environment variables with the LEADFLOW_ prefix, validated, secrets hidden."""

from __future__ import annotations

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
