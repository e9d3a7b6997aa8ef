"""Settings: the only reader of the environment. Built once by the CLI and passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.rates import DEFAULT_RATE_CARD, RateCard
from service.core.errors import SettingsError
from service.core.networks import AllowedNetworks, parse_networks

LogFormat = Literal["auto", "json", "console"]
KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
StructuredOutput = Literal["json_schema", "json_object", "none"]


class ModelSettings(BaseModel):
    """Per-model knobs: how to ask for JSON, and an output cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    structured_output: StructuredOutput = "json_schema"
    max_tokens: int | None = Field(default=None, ge=1)


class ProviderConfig(BaseModel):
    """One OpenAI-compatible model provider (DESIGN.md §6): models are named `<provider>:<model>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    api_key_env: str | None = None  # the variable holding its key (read through Settings only)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)  # on 408/409/429/5xx and timeouts, with backoff
    models: dict[str, ModelSettings] = Field(default_factory=dict)

    def model_settings(self, model: str) -> ModelSettings:
        return self.models.get(model, ModelSettings())


class Settings(BaseSettings):
    """Every `AGENT_EVAL_*` variable the service reads, with its default."""

    model_config = SettingsConfigDict(env_prefix="AGENT_EVAL_", frozen=True, extra="ignore")

    # Connections.
    database_url: SecretStr | None = None
    db_pool_min_size: int = Field(default=2, ge=1)
    db_pool_max_size: int = Field(default=20, ge=1)
    db_command_timeout_s: float = Field(default=30.0, gt=0)
    kafka_bootstrap: str | None = None
    kafka_security_protocol: KafkaProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None  # with SASL_PLAINTEXT or SASL_SSL
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None  # PEM; unset: the system's trusted CAs (with SSL or SASL_SSL)
    kafka_ssl_certfile: Path | None = None  # PEM client certificate (mutual TLS), with its key
    kafka_ssl_keyfile: Path | None = None

    # Topics (DESIGN.md §5).
    topic_prefix: str = ""
    topic_partitions: int = Field(default=12, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)

    # HTTP.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    health_port: int = Field(default=9100, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Connections the kernel holds for the gateway while its event loop is busy: a burst of new
    # clients beyond it is dropped or reset. 2048 takes a burst of 1,000+ connects with room to
    # spare and sits below Linux's default net.core.somaxconn (4096), which caps it anyway.
    listen_backlog: int = Field(default=2048, ge=128, le=65_535)
    admin_token: SecretStr | None = None

    # Stopping (SIGTERM): readiness fails at once, the process keeps serving `shutdown_pause_s`
    # (load balancers stop sending), then the gateway stops listening, answers blocked requests
    # 202 and closes streams, and gives in-flight requests `shutdown_timeout_s` to finish.
    shutdown_pause_s: float = Field(default=0.0, ge=0, le=300)
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=300)

    # `agent-eval dev`.
    data_dir: Path = Path("~/.agent-eval")

    # Run lifecycle and money.
    default_wait_s: float = Field(default=55.0, ge=0, le=60)
    run_timeout_s: float = Field(default=600.0, gt=0)
    min_run_balance_cents: int = Field(default=1, ge=0)
    max_inflight_runs_per_company: int = Field(default=50, ge=1)
    webhook_allow_private: bool = False
    idempotency_ttl_hours: float = Field(default=24.0, gt=0)
    waiter_poll_s: float = Field(default=2.0, gt=0)  # blocked requests re-read their runs this often

    # Execution (DESIGN.md §3, §6).
    executor_concurrency: int = Field(default=1000, ge=1)  # conversations one executor plays at once
    lease_ttl_s: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    dispatch_stale_s: float = Field(default=30.0, gt=0)  # re-dispatch released runs no one claimed
    default_agent_model: str = "openai:gpt-4o-mini"  # for agents and personas that name no model
    default_persona_model: str = "openai:gpt-4o-mini"
    # One default for both roles (reference clients create agents and personas without `model`).
    # DEFAULT_AGENT_MODEL / DEFAULT_PERSONA_MODEL, when explicitly set, still win for their role;
    # unset, DEFAULT_MODEL replaces their built-in default (service.domain.model_providers).
    default_model: str | None = None
    scripted_latency_s: float = Field(default=0.0, ge=0)  # simulated model latency (benchmarks)
    tool_timeout_s: float = Field(default=10.0, gt=0)
    tool_max_response_bytes: int = Field(default=65_536, ge=1024)
    # Private networks (CIDRs) and host names agents of `type: http` may be called at, also over
    # plain http:// (comma-separated: `10.0.3.0/24,agent.internal`); only agent calls get them.
    agent_allowed_networks: str = ""

    # Outbox relay and maintenance (DESIGN.md §2, §5).
    event_retention_hours: float = Field(default=72.0, gt=0)
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_busy_poll_s: float = Field(default=0.02, gt=0)
    relay_idle_poll_s: float = Field(default=1.0, gt=0)
    relay_lock_poll_s: float = Field(default=1.0, gt=0)
    maintenance_interval_s: float = Field(default=5.0, gt=0)
    maintenance_hourly_s: float = Field(default=3600.0, gt=0)

    # Consumers.
    # Offsets are committed once a second or every 1,000 records (and always on a rebalance and at
    # shutdown): each commit is a broker round trip, and a role sees ~16 records per run, most of
    # them skipped. After a crash the next owner re-reads at most that much; handlers are idempotent.
    consumer_commit_interval_ms: int = Field(default=1000, ge=1)
    consumer_commit_batch: int = Field(default=1000, ge=1)
    consumer_handler_attempts: int = Field(default=5, ge=1)
    consumer_retry_base_s: float = Field(default=0.2, gt=0)
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1000)
    consumer_heartbeat_interval_ms: int = Field(default=3000, ge=100)
    # A fetch returns once it has this many bytes or has waited this long: batching records
    # into fewer round trips costs at most the wait in latency per hop.
    consumer_fetch_min_bytes: int = Field(default=1, ge=1)
    consumer_fetch_max_wait_ms: int = Field(default=500, ge=0)

    # The dashboard (/ui/): its session cookies are signed with this secret (every gateway replica
    # needs the same one); unset, the dashboard answers 503 UI_DISABLED. `agent-eval dev` makes one.
    ui_session_secret: SecretStr | None = None
    ui_session_hours: float = Field(default=12.0, gt=0)  # a sign-in lasts this long

    # Model providers (DESIGN.md §6): `openai` always exists; AGENT_EVAL_PROVIDERS adds more (JSON).
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None

    # Scoring and pricing (DESIGN.md §7).
    judge_model: str = "openai:gpt-4o-mini"
    judge_attempts: int = Field(default=3, ge=1, le=10)  # per sample, when the answer is unusable
    rate_card: RateCard = DEFAULT_RATE_CARD

    # Webhooks (DESIGN.md §8).
    # Fernet keys (comma-separated, newest first) that seal webhook endpoint secrets and HTTP
    # agents' secrets at rest; the first seals, every one opens, so a key is rotated by putting a
    # new one in front.
    webhook_secret_keys: SecretStr | None = None
    webhook_timeout_s: float = Field(default=15.0, gt=0)
    webhook_disable_after_s: float = Field(default=5 * 86_400.0, gt=0)  # failing this long: disabled
    webhook_rotation_grace_s: float = Field(default=86_400.0, ge=0)  # the old secret still signs
    webhook_concurrency: int = Field(default=256, ge=1)  # attempts in flight per notifier
    webhook_endpoint_concurrency: int = Field(default=8, ge=1)  # ... and per endpoint
    webhook_poll_s: float = Field(default=0.5, gt=0)  # due deliveries are looked for this often
    webhook_lease_s: float = Field(default=60.0, gt=0)  # an attempt's claim; a crashed one is retried
    webhook_max_response_bytes: int = Field(default=65_536, ge=1024)
    webhook_retention_days: float = Field(default=30.0, gt=0)  # finished deliveries are kept this long
    stream_keepalive_s: float = Field(default=15.0, gt=0)  # SSE comment interval

    # API keys.
    api_key_cache_s: float = Field(default=5.0, ge=0, le=5.0)

    # Logging.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: LogFormat = "auto"

    @field_validator("agent_allowed_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        parse_networks(value)  # a bad entry stops the process at start, naming it
        return value

    @model_validator(mode="after")
    def _kafka_security_is_whole(self) -> Settings:
        if problem := kafka_security_problem(self):
            raise ValueError(problem)
        return self

    def require_database_url(self) -> str:
        """The database URL, or a clear error naming the variable to set."""
        if self.database_url is None:
            raise SettingsError("AGENT_EVAL_DATABASE_URL is not set")
        return self.database_url.get_secret_value()

    def provider_registry(self) -> dict[str, ProviderConfig]:
        """Every configured provider by name; `openai` is built from OPENAI_BASE_URL / OPENAI_API_KEY."""
        openai = ProviderConfig(base_url=self.openai_base_url, api_key_env="AGENT_EVAL_OPENAI_API_KEY")
        return {"openai": openai, **self.providers}

    def provider_names(self) -> frozenset[str]:
        return frozenset(self.provider_registry())

    def provider_api_key(self, provider: ProviderConfig) -> str | None:
        """The provider's API key, read from the variable its config names."""
        if provider.api_key_env == "AGENT_EVAL_OPENAI_API_KEY":
            return self.openai_api_key.get_secret_value() if self.openai_api_key else None
        return os.environ.get(provider.api_key_env) if provider.api_key_env else None

    def agent_networks(self) -> AllowedNetworks:
        """AGENT_EVAL_AGENT_ALLOWED_NETWORKS, parsed (validated when the settings were read)."""
        return parse_networks(self.agent_allowed_networks)

    def require_webhook_keys(self) -> list[str]:
        """The Fernet keys sealing webhook and agent secrets, or a clear error naming the variable to set."""
        raw = self.webhook_secret_keys.get_secret_value() if self.webhook_secret_keys else ""
        keys = [key.strip() for key in raw.split(",") if key.strip()]
        if not keys:
            raise SettingsError(
                "AGENT_EVAL_WEBHOOK_SECRET_KEYS is not set (a Fernet key: "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            )
        return keys

    def require_kafka_bootstrap(self) -> str:
        if not self.kafka_bootstrap:
            raise SettingsError("AGENT_EVAL_KAFKA_BOOTSTRAP is not set")
        return self.kafka_bootstrap


def kafka_security_problem(settings: Settings) -> str | None:
    """Why the Kafka security settings cannot work together, or None."""
    sasl = settings.kafka_security_protocol.startswith("SASL_")
    tls = settings.kafka_security_protocol.endswith("SSL")
    given = {
        "AGENT_EVAL_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "AGENT_EVAL_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "AGENT_EVAL_KAFKA_SASL_PASSWORD": settings.kafka_sasl_password,
    }
    if sasl and (missing := [name for name, value in given.items() if value is None]):
        return f"{settings.kafka_security_protocol} needs {', '.join(missing)}"
    if not sasl and (extra := [name for name, value in given.items() if value is not None]):
        return f"{', '.join(extra)} given, but AGENT_EVAL_KAFKA_SECURITY_PROTOCOL is not SASL_*"
    files = (settings.kafka_ssl_cafile, settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    if not tls and any(f is not None for f in files):
        return "AGENT_EVAL_KAFKA_SSL_* files given, but the security protocol is not SSL or SASL_SSL"
    if (settings.kafka_ssl_certfile is None) != (settings.kafka_ssl_keyfile is None):
        return "AGENT_EVAL_KAFKA_SSL_CERTFILE and AGENT_EVAL_KAFKA_SSL_KEYFILE go together"
    return None
