"""The one settings object: every ``LEADFLOW_*`` variable is declared here, and nowhere else."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "settings_from"]

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Worker settings, read from ``LEADFLOW_*`` environment variables (and flags of ``leadflow run``)."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="forbid", frozen=True)

    broker_url: str = Field(
        default="kafka://localhost:9092",
        description="Kafka bootstrap servers, 'host:port[;host:port]' with or without the kafka:// scheme",
    )
    broker_security_protocol: SecurityProtocol | None = Field(
        default=None,
        description=(
            "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; default: SASL_PLAINTEXT with a username, else PLAINTEXT"
        ),
    )
    broker_sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: PLAIN); needs a username"
    )
    broker_username: str | None = Field(default=None, description="SASL user, if the cluster needs one")
    broker_password: SecretStr | None = Field(default=None, description="SASL password (never printed)")
    broker_password_file: Path | None = Field(
        default=None, description="File holding the SASL password, e.g. a mounted Kubernetes secret"
    )
    broker_ssl_cafile: Path | None = Field(
        default=None, description="PEM file of the CA(s) that signed the brokers' certificates (default: system CAs)"
    )
    broker_ssl_certfile: Path | None = Field(
        default=None, description="PEM client certificate, for mutual TLS (with LEADFLOW_BROKER_SSL_KEYFILE)"
    )
    broker_ssl_keyfile: Path | None = Field(default=None, description="PEM private key of the client certificate")
    broker_ssl_verify: bool = Field(
        default=True,
        description="Verify the brokers' certificates and host names; false only for a test cluster (insecure)",
    )
    app_id: str = Field(default="leadflow", description="Consumer group id and prefix of internal topics")

    topic_leads: str = "leads"
    topic_decisions: str = "lead-decisions"
    topic_opportunities: str = "opportunities"
    topic_dlq: str = "leads-dlq"
    topic_control: str = Field(
        default="leadflow-control",
        description="Compacted topic of rulesets published with 'leadflow rules publish' (every worker reads it all)",
    )
    topic_routing_decisions: str = Field(
        default="routing-decisions", description="One record per routing decision, with candidates and reasons"
    )
    topic_accounts: str = Field(
        default="accounts", description="Compacted topic of known accounts (key: account id) for account matching"
    )
    topic_feedback: str = Field(
        default="opportunity-feedback",
        description="Where sales systems report 'opportunity.accepted' (SLA), '.updated' and '.closed' (pipeline)",
    )
    partitions: int = Field(default=4, ge=1, description="Partitions of the leads topic and the state table")

    rules: Path | None = Field(default=None, description="Ruleset YAML; default: the shipped ruleset")
    model: Path | None = Field(default=None, description="Model JSON; default: the shipped model")
    reload_interval: float = Field(
        default=2.0, ge=0, description="Seconds between checks of the rules file for changes (0: never reload it)"
    )
    reload_from_control: bool = Field(
        default=True, description="Switch to rulesets published on the control topic without a restart"
    )

    state_dir: Path = Field(default=Path("leadflow-data"), description="Where RocksDB keeps lead state")
    store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb", description="rocksdb in production; memory rebuilds state from the changelog"
    )
    web_host: str = "0.0.0.0"  # noqa: S104  # the metrics endpoint must be reachable by Prometheus
    web_port: int = Field(default=6066, ge=1, le=65535)

    batch_size: int = Field(
        default=10_000, ge=1, le=50_000, description="Most events handed to the core at once (a fetch, up to this)"
    )
    batches_in_flight: int = Field(
        default=1,
        ge=1,
        le=8,
        description=(
            "Batches being committed at once per topic while the next is decided; above 1, a retried send may"
            " land after a later batch's outputs (1: strict order)"
        ),
    )
    max_event_bytes: int = Field(default=1024 * 1024, ge=1024)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="zstd",
        description=(
            "Codec of the record batches leadflow's producers send (the worker's outputs and changelogs, 'leadflow"
            " produce', published rulesets); every codec is read whatever this says. zstd: the worker's outputs as"
            " small as with gzip (13.5 %) for a twelfth of gzip's CPU, see bench/bench_compression.py"
        ),
    )
    state_cache_size: int = Field(
        default=50_000,
        ge=0,
        description="Decoded lead states kept in memory between batches, about 5-6 KB each (0: none)",
    )
    engine: Literal["reference", "columnar"] = Field(
        default="columnar",
        description=(
            "How batches of lead events are decided: 'columnar', a whole batch at once over columns (issue #21,"
            " docs/PERFORMANCE.md); 'reference', the per-event core it is checked against, byte for byte"
        ),
    )
    dedupe_window: int = Field(default=64, ge=1, le=10_000, description="Event ids remembered per lead")
    top_factors: int = Field(default=5, ge=0, le=50)
    drift_sample: int = Field(
        default=10,
        ge=0,
        description="Count missing and unseen feature values on 1 event in N (by record offset; 0: off)",
    )

    gc_threshold: int = Field(
        default=50_000,
        ge=0,
        description=(
            "Allocations between the garbage collector's young-generation passes (Python's own: 700; 0: leave"
            " Python's settings alone)"
        ),
    )

    commit_interval: float = Field(default=0.5, gt=0, description="Seconds between offset commits")
    session_timeout: float = Field(default=10.0, gt=0, description="Consumer group session timeout, s")
    heartbeat_interval: float = Field(default=1.0, gt=0)
    fetch_max_wait_ms: int = Field(
        default=100, ge=0, description="Longest a fetch waits for data; bounds an idle stream's latency"
    )
    highwater_from_fetch: bool = Field(
        default=True,
        description="Read high watermarks from a Fetch when recovering tables (needed on tansu, safe anywhere)",
    )
    sla_check_interval: float = Field(
        default=1.0, gt=0, description="Seconds between checks for opportunities not accepted within their SLA"
    )
    wakeup_interval: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Seconds between checks for leads whose wake-up time has come (a rule that reads the time, such as days"
            " since the last activity, passes a threshold with no event): they are decided again then"
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    intake_host: str = Field(default="0.0.0.0", description="Address 'leadflow intake' listens on")  # noqa: S104
    intake_port: int = Field(default=8080, ge=1, le=65535, description="Port of 'leadflow intake' (POST /leads)")
    intake_allowed_origins: str = Field(
        default="*",
        description=(
            "Comma-separated origins whose pages may post to 'leadflow intake' (e.g. 'https://www.example.com');"
            " '*': any. A browser post from another origin is refused (403)"
        ),
    )
    intake_secret: SecretStr | None = Field(
        default=None,
        description=(
            "When set, every post to 'leadflow intake' must carry it in the X-Leadflow-Secret header (for a"
            " site's backend forwarding its forms; a browser form cannot keep a secret)"
        ),
    )
    intake_max_body_bytes: int = Field(
        default=16 * 1024, ge=1024, le=1024 * 1024, description="Largest form post accepted (larger: 413)"
    )
    intake_rate: float = Field(
        default=1.0, gt=0, description="Posts per second one client IP may send on average (more: 429)"
    )
    intake_burst: int = Field(default=10, ge=1, description="Posts one client IP may send at once (bucket size)")
    intake_trust_forwarded: bool = Field(
        default=False,
        description=(
            "Take the client IP from the last X-Forwarded-For entry (only behind one proxy that appends it; else"
            " spoofable)"
        ),
    )
    intake_honeypot: str = Field(
        default="hp_name",
        description="A hidden form field that people leave empty: a post that fills it is answered 202 and dropped",
    )
    intake_send_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to wait for the broker to acknowledge a lead (then 503)"
    )

    @field_validator(
        "app_id",
        "topic_leads",
        "topic_decisions",
        "topic_opportunities",
        "topic_dlq",
        "topic_control",
        "topic_routing_decisions",
        "topic_accounts",
        "topic_feedback",
    )
    @classmethod
    def _legal_topic_name(cls, value: str) -> str:
        if not _TOPIC_NAME.fullmatch(value):
            msg = f"{value!r} cannot name a Kafka topic: use ASCII letters, digits, '.', '_' and '-' (at most 249)"
            raise ValueError(msg)
        return value

    @field_validator("broker_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        hosts = [h.strip() for h in value.replace(",", ";").split(";") if h.strip()]
        if not hosts:
            msg = f"LEADFLOW_BROKER_URL {value!r} names no broker; expected e.g. 'kafka://localhost:9092'"
            raise ValueError(msg)
        return ";".join(h if "://" in h else f"kafka://{h}" for h in hosts)

    @model_validator(mode="after")
    def _security_fits_together(self) -> Settings:
        protocol = self.security_protocol
        sasl = protocol.startswith("SASL_")
        tls = protocol.endswith("SSL")
        if self.broker_password is not None and self.broker_password_file is not None:
            msg = "LEADFLOW_BROKER_PASSWORD and LEADFLOW_BROKER_PASSWORD_FILE are both set: keep one"
            raise ValueError(msg)
        has_password = self.broker_password is not None or self.broker_password_file is not None
        if sasl and (self.broker_username is None or not has_password):
            msg = (
                f"LEADFLOW_BROKER_SECURITY_PROTOCOL={protocol} needs LEADFLOW_BROKER_USERNAME and"
                " LEADFLOW_BROKER_PASSWORD (or LEADFLOW_BROKER_PASSWORD_FILE)"
            )
            raise ValueError(msg)
        if not sasl and (self.broker_username is not None or has_password or self.broker_sasl_mechanism):
            given = "LEADFLOW_BROKER_SASL_MECHANISM" if self.broker_sasl_mechanism else "SASL credentials"
            msg = (
                f"{given} set but LEADFLOW_BROKER_SECURITY_PROTOCOL={protocol} does not use SASL:"
                " set it to SASL_SSL or SASL_PLAINTEXT, or remove them"
            )
            raise ValueError(msg)
        files = {
            "LEADFLOW_BROKER_SSL_CAFILE": self.broker_ssl_cafile,
            "LEADFLOW_BROKER_SSL_CERTFILE": self.broker_ssl_certfile,
            "LEADFLOW_BROKER_SSL_KEYFILE": self.broker_ssl_keyfile,
        }
        named = [name for name, path in files.items() if path is not None]
        if named and not tls:
            msg = (
                f"{', '.join(named)} set but LEADFLOW_BROKER_SECURITY_PROTOCOL={protocol} does not use TLS:"
                " set it to SSL or SASL_SSL"
            )
            raise ValueError(msg)
        if (self.broker_ssl_certfile is None) != (self.broker_ssl_keyfile is None):
            given = "LEADFLOW_BROKER_SSL_CERTFILE" if self.broker_ssl_keyfile is None else "LEADFLOW_BROKER_SSL_KEYFILE"
            msg = (
                "mutual TLS needs both LEADFLOW_BROKER_SSL_CERTFILE and LEADFLOW_BROKER_SSL_KEYFILE;"
                f" only {given} is set"
            )
            raise ValueError(msg)
        files["LEADFLOW_BROKER_PASSWORD_FILE"] = self.broker_password_file
        for name, path in files.items():
            if path is not None and not path.is_file():
                msg = f"{name}={str(path)!r}: no such file"
                raise ValueError(msg)
        return self

    @property
    def security_protocol(self) -> SecurityProtocol:
        """The protocol in force: the one set, else SASL_PLAINTEXT with a username (as before 0.x), else PLAINTEXT."""
        if self.broker_security_protocol is not None:
            return self.broker_security_protocol
        return "PLAINTEXT" if self.broker_username is None else "SASL_PLAINTEXT"

    @property
    def topic_route_requests(self) -> str:
        """Internal: routing requests re-keyed by pool, so that one worker owns each pool's state."""
        return f"{self.app_id}-route-requests"

    @property
    def topic_sla(self) -> str:
        """Internal: assignments and acceptances keyed by opportunity id, for the SLA clock."""
        return f"{self.app_id}-sla"

    @property
    def topic_pipeline(self) -> str:
        """Internal: each opportunity as converted, then its updates and closing from the feedback topic, keyed by
        opportunity id (one partition, so one order, per opportunity) for the pipeline."""
        return f"{self.app_id}-pipeline"

    @property
    def topic_match(self) -> str:
        """Internal: claims of duplicate match keys, keyed by the key, so that one worker owns each key."""
        return f"{self.app_id}-match"

    @property
    def compression_type(self) -> str | None:
        """``compression`` as Kafka clients take it (``compression_type``): None for none."""
        return None if self.compression == "none" else self.compression

    @property
    def bootstrap_servers(self) -> list[str]:
        """``host:port`` list for plain Kafka clients."""
        return [h.split("://", 1)[1] for h in self.broker_url.split(";")]

    def broker_secret(self) -> str:
        """The SASL password, from LEADFLOW_BROKER_PASSWORD or read now from LEADFLOW_BROKER_PASSWORD_FILE."""
        if self.broker_password is not None:
            return self.broker_password.get_secret_value()
        if self.broker_password_file is not None:
            return self.broker_password_file.read_text(encoding="utf-8").rstrip("\r\n")
        return ""

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every Kafka client (None without TLS): the CA file, the client certificate, checks."""
        if not self.security_protocol.endswith("SSL"):
            return None
        from worker.exceptions import ConfigError

        cafile = self.broker_ssl_cafile
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None)
        except (ssl.SSLError, OSError) as exc:
            msg = f"LEADFLOW_BROKER_SSL_CAFILE={str(cafile)!r} holds no usable PEM certificate: {exc}"
            raise ConfigError(msg) from None
        if self.broker_ssl_certfile is not None and self.broker_ssl_keyfile is not None:
            try:
                context.load_cert_chain(str(self.broker_ssl_certfile), str(self.broker_ssl_keyfile))
            except (ssl.SSLError, OSError) as exc:
                msg = (
                    f"LEADFLOW_BROKER_SSL_CERTFILE={str(self.broker_ssl_certfile)!r} and LEADFLOW_BROKER_SSL_KEYFILE="
                    f"{str(self.broker_ssl_keyfile)!r} are not a PEM certificate and its key: {exc}"
                )
                raise ConfigError(msg) from None
        if not self.broker_ssl_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def kafka_auth(self) -> dict[str, Any]:
        """Security keyword arguments for kafka-python and aiokafka clients alike (both take these names)."""
        protocol = self.security_protocol
        options: dict[str, Any] = {"security_protocol": protocol}
        if protocol.endswith("SSL"):
            options["ssl_context"] = self.ssl_context()
        if protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.broker_sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.broker_username
            options["sasl_plain_password"] = self.broker_secret()
        return options

    @property
    def intake_origins(self) -> frozenset[str]:
        """``intake_allowed_origins`` as a set (``*`` in it: any origin)."""
        return frozenset(o.strip().rstrip("/") for o in self.intake_allowed_origins.split(",") if o.strip())

    def dump(self) -> dict[str, object]:
        """All settings as printable values; secrets stay hidden."""
        return {k: (str(v) if isinstance(v, SecretStr | Path) else v) for k, v in self.model_dump().items()}


def settings_from(**overrides: object) -> Settings:
    """Settings from the environment and ``overrides``; a bad value raises ConfigError naming its variable."""
    from worker.exceptions import ConfigError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # validated by pydantic, which is the point
    except ValidationError as exc:
        problems = "; ".join(
            f"LEADFLOW_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            if error["loc"]
            else error["msg"].removeprefix("Value error, ")
            for error in exc.errors()
        )
        msg = f"invalid settings: {problems}"
        raise ConfigError(msg) from None
