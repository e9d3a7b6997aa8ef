"""The long-lived connections a role holds, built from settings: the PostgreSQL pool and the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.bus.kafka import KafkaBus, KafkaSecurity
from service.core.settings import Settings
from service.db.postgres import Pool, create_pool


@asynccontextmanager
async def pool_from(settings: Settings) -> AsyncIterator[Pool]:
    pool = await create_pool(
        settings.require_database_url(),
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        command_timeout_s=settings.db_command_timeout_s,
    )
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def kafka_bus(settings: Settings, client_id: str) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(
        settings.require_kafka_bootstrap(),
        security=kafka_security(settings),
        client_id=client_id,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        fetch_min_bytes=settings.consumer_fetch_min_bytes,
    )
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


def kafka_security(settings: Settings) -> KafkaSecurity:
    password = settings.kafka_sasl_password
    return KafkaSecurity(
        protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        username=settings.kafka_sasl_username,
        password=None if password is None else password.get_secret_value(),
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
    )
