"""Settings: defaults, the AGENT_EVAL_ environment, secrets kept out of reprs, and range checks."""

from __future__ import annotations

import os

import pytest
from pydantic import SecretStr, ValidationError

from service.core.errors import SettingsError
from service.core.settings import Settings

SECRET_URL = "postgresql://app:hunter2-s3cret@db.internal:5432/agent_eval"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's shell (or CI) may export AGENT_EVAL_* variables: start every test without them."""
    for name in list(os.environ):
        if name.upper().startswith("AGENT_EVAL_"):
            monkeypatch.delenv(name)


def test_the_defaults_need_no_environment() -> None:
    settings = Settings()

    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.health_port == 9100
    assert settings.default_wait_s == 55
    assert settings.event_retention_hours == 72
    assert settings.min_run_balance_cents == 1
    assert settings.max_inflight_runs_per_company == 50
    assert settings.database_url is None
    assert settings.kafka_bootstrap is None
    assert settings.admin_token is None
    assert settings.topic_prefix == ""
    assert settings.listen_backlog == 2048  # a burst of 1,000 connects, under Linux's somaxconn


def test_variables_are_read_with_the_agent_eval_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_EVAL_PORT", "9000")
    monkeypatch.setenv("AGENT_EVAL_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("AGENT_EVAL_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("AGENT_EVAL_WEBHOOK_ALLOW_PRIVATE", "true")

    settings = Settings()

    assert settings.port == 9000
    assert settings.topic_prefix == "staging."
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.webhook_allow_private is True


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("DATABASE_URL", SECRET_URL)

    settings = Settings()

    assert settings.port == 8080
    assert settings.database_url is None


def test_unknown_agent_eval_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_EVAL_NOT_A_SETTING", "x")

    assert Settings().port == 8080


def test_secrets_are_secret_strings_kept_out_of_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_EVAL_DATABASE_URL", SECRET_URL)
    monkeypatch.setenv("AGENT_EVAL_ADMIN_TOKEN", "tok-very-private")

    settings = Settings()

    assert isinstance(settings.database_url, SecretStr)
    assert isinstance(settings.admin_token, SecretStr)
    for rendered in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2" not in rendered
        assert "very-private" not in rendered


def test_the_database_url_is_returned_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_EVAL_DATABASE_URL", SECRET_URL)

    assert Settings().require_database_url() == SECRET_URL


def test_a_missing_database_url_names_the_variable_to_set() -> None:
    with pytest.raises(SettingsError, match="AGENT_EVAL_DATABASE_URL"):
        Settings().require_database_url()


def test_a_missing_kafka_bootstrap_names_the_variable_to_set() -> None:
    with pytest.raises(SettingsError, match="AGENT_EVAL_KAFKA_BOOTSTRAP"):
        Settings().require_kafka_bootstrap()


def test_an_empty_kafka_bootstrap_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_EVAL_KAFKA_BOOTSTRAP", "")

    with pytest.raises(SettingsError, match="AGENT_EVAL_KAFKA_BOOTSTRAP"):
        Settings().require_kafka_bootstrap()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGENT_EVAL_DEFAULT_WAIT_S", "61"),
        ("AGENT_EVAL_DEFAULT_WAIT_S", "-1"),
        ("AGENT_EVAL_PORT", "65536"),
        ("AGENT_EVAL_HEALTH_PORT", "-1"),
        ("AGENT_EVAL_MIN_RUN_BALANCE_CENTS", "-1"),
        ("AGENT_EVAL_MAX_INFLIGHT_RUNS_PER_COMPANY", "0"),
        ("AGENT_EVAL_EVENT_RETENTION_HOURS", "0"),
        ("AGENT_EVAL_RELAY_BATCH_SIZE", "10001"),
        ("AGENT_EVAL_MAX_BODY_BYTES", "1023"),
        ("AGENT_EVAL_LISTEN_BACKLOG", "127"),
        ("AGENT_EVAL_LISTEN_BACKLOG", "65536"),
        ("AGENT_EVAL_LOG_LEVEL", "verbose"),
        ("AGENT_EVAL_PORT", "eighty"),
    ],
)
def test_out_of_range_or_malformed_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError, match=variable.removeprefix("AGENT_EVAL_").lower()):
        Settings()


def test_the_edges_of_a_range_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_EVAL_DEFAULT_WAIT_S", "60")
    monkeypatch.setenv("AGENT_EVAL_PORT", "0")
    monkeypatch.setenv("AGENT_EVAL_LISTEN_BACKLOG", "65535")

    settings = Settings()

    assert settings.default_wait_s == 60
    assert settings.port == 0
    assert settings.listen_backlog == 65535


def test_settings_cannot_be_changed_once_built() -> None:
    settings = Settings()

    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]  # assigning to a frozen model is what is being tested


def test_kafka_speaks_plaintext_by_default_and_sasl_over_tls_when_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().kafka_security_protocol == "PLAINTEXT"
    monkeypatch.setenv("AGENT_EVAL_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("AGENT_EVAL_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("AGENT_EVAL_KAFKA_SASL_USERNAME", "agent-eval")
    monkeypatch.setenv("AGENT_EVAL_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("AGENT_EVAL_KAFKA_SSL_CAFILE", "/etc/agent-eval/kafka-tls/ca.crt")

    settings = Settings()

    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert settings.kafka_sasl_password == SecretStr("hunter2")
    assert "hunter2" not in repr(settings)
    assert str(settings.kafka_ssl_cafile) == "/etc/agent-eval/kafka-tls/ca.crt"


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
            "SASL_PLAINTEXT needs AGENT_EVAL_KAFKA_SASL_MECHANISM",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
            },
            "SASL_SSL needs AGENT_EVAL_KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SASL_USERNAME": "u"}, "AGENT_EVAL_KAFKA_SASL_USERNAME given, but"),
        ({"KAFKA_SSL_CAFILE": "/ca.pem"}, "the security protocol is not SSL or SASL_SSL"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/client.pem"},
            "CERTFILE and AGENT_EVAL_KAFKA_SSL_KEYFILE go together",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"}, "kafka_sasl_mechanism"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "kafka_security_protocol"),
    ],
)
def test_kafka_security_settings_that_cannot_work_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], problem: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"AGENT_EVAL_{name}", value)

    with pytest.raises(ValidationError, match=problem):
        Settings()


def test_shutdown_timing_has_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().shutdown_pause_s, Settings().shutdown_timeout_s) == (0.0, 10.0)
    monkeypatch.setenv("AGENT_EVAL_SHUTDOWN_TIMEOUT_S", "0")
    with pytest.raises(ValidationError, match="shutdown_timeout_s"):
        Settings()
