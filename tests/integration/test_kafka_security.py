"""The Kafka client's security settings against the local broker's SASL listeners (PLAIN and
SCRAM-SHA-512, in the clear and over TLS with a CA of its own): records go through, the CLI
configured only by `AGENT_EVAL_KAFKA_*` variables works, and bad credentials or an untrusted
certificate are a clear `BusError`, never a hang."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.bus.interface import OutgoingRecord, TopicSpec
from service.bus.kafka import KafkaBus, KafkaSecurity
from service.core.errors import BusError
from tests.integration.test_cli import cli, ok

pytestmark = pytest.mark.kafka


@dataclass(frozen=True)
class Listeners:
    sasl: str
    tls: str
    cafile: Path
    username: str
    password: str


def _variable(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run `scripts/services up` and `source .services/env`")
    return value


@pytest.fixture(scope="module")
def listeners() -> Listeners:
    return Listeners(
        sasl=_variable("AGENT_EVAL_TEST_KAFKA_SASL_BOOTSTRAP"),
        tls=_variable("AGENT_EVAL_TEST_KAFKA_TLS_BOOTSTRAP"),
        cafile=Path(_variable("AGENT_EVAL_TEST_KAFKA_TLS_CAFILE")),
        username=_variable("AGENT_EVAL_TEST_KAFKA_SASL_USERNAME"),
        password=_variable("AGENT_EVAL_TEST_KAFKA_SASL_PASSWORD"),
    )


async def round_trip(bus: KafkaBus, topic: str) -> list[bytes]:
    await bus.start()
    try:
        await bus.create_topics([TopicSpec(topic, 1)])
        await bus.publish([OutgoingRecord(topic=topic, key=b"k", value=b"over a secured listener")])
        return [message.value for message in await bus.read_all(topic)]
    finally:
        await bus.stop()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
async def test_records_go_through_sasl(listeners: Listeners, topic_prefix: str, mechanism: str) -> None:
    security = KafkaSecurity("SASL_PLAINTEXT", mechanism, listeners.username, listeners.password)
    bus = KafkaBus(listeners.sasl, security=security, client_id="sasl-test")
    assert await round_trip(bus, f"{topic_prefix}sasl") == [b"over a secured listener"]


async def test_records_go_through_sasl_over_tls_trusting_the_brokers_ca(
    listeners: Listeners, topic_prefix: str
) -> None:
    security = KafkaSecurity(
        "SASL_SSL", "SCRAM-SHA-512", listeners.username, listeners.password, cafile=listeners.cafile
    )
    bus = KafkaBus(listeners.tls, security=security, client_id="tls-test")
    assert await round_trip(bus, f"{topic_prefix}tls") == [b"over a secured listener"]


async def test_a_wrong_password_is_a_clear_bus_error(listeners: Listeners) -> None:
    security = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", listeners.username, "not-the-password")
    bus = KafkaBus(listeners.sasl, security=security, client_id="sasl-test")
    with pytest.raises(BusError, match=f"cannot reach Kafka at {listeners.sasl}"):
        await bus.start()
    await bus.stop()


async def test_a_broker_certificate_from_an_untrusted_ca_is_refused(listeners: Listeners) -> None:
    # No CA file: the system's trusted CAs, which did not sign the local broker's certificate.
    security = KafkaSecurity("SASL_SSL", "PLAIN", listeners.username, listeners.password)
    bus = KafkaBus(listeners.tls, security=security, client_id="tls-test")
    with pytest.raises(BusError, match=f"cannot reach Kafka at {listeners.tls}"):
        await bus.start()
    await bus.stop()


async def test_the_cli_speaks_sasl_over_tls_from_its_settings(
    listeners: Listeners, kafka: KafkaBus, topic_prefix: str
) -> None:
    env = {
        "AGENT_EVAL_KAFKA_BOOTSTRAP": listeners.tls,
        "AGENT_EVAL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "AGENT_EVAL_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "AGENT_EVAL_KAFKA_SASL_USERNAME": listeners.username,
        "AGENT_EVAL_KAFKA_SASL_PASSWORD": listeners.password,
        "AGENT_EVAL_KAFKA_SSL_CAFILE": str(listeners.cafile),
        "AGENT_EVAL_TOPIC_PREFIX": f"{topic_prefix}cli.",
        "AGENT_EVAL_TOPIC_PARTITIONS": "2",
    }
    out = ok(cli("kafka", "init", env=env))
    assert f"created: {topic_prefix}cli.agent-eval.run-requests.v1 (partitions=2" in out
    topics = await kafka.list_topics()  # the plaintext listener sees the same cluster
    assert f"{topic_prefix}cli.agent-eval.run-events.v1" in topics
