"""The long-lived connections a role holds, built from settings: the PostgreSQL pool and the bus.

Pods start in any order, so neither dependency has to be up when a role starts: a pool made
while PostgreSQL is unreachable connects on first use (the role reports not-ready until then),
and the bus is started with capped exponential backoff, one log line per attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from service.bus.interface import FetchPolicy
from service.bus.kafka import KafkaBus, KafkaSecurity
from service.core.errors import BusError, DatabaseUnavailable
from service.core.logging import get_logger
from service.core.settings import Settings
from service.db.postgres import Pool, create_pool
from service.runtime.health import Heartbeat

log = get_logger("service.runtime.pools")
BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 15.0  # below the liveness window: the heartbeat is beaten on every attempt


def backoff_s(attempt: int, *, first_s: float = BACKOFF_FIRST_S, cap_s: float = BACKOFF_CAP_S) -> float:
    """The pause after failed attempt `attempt` (1, 2, …): doubling from `first_s`, at most `cap_s`."""
    return min(cap_s, first_s * 2.0 ** (attempt - 1))


async def open_pool(settings: Settings) -> Pool:
    """The pool, warmed to its minimum size; if PostgreSQL cannot be reached yet, a pool that
    connects on first use (every query fails `DatabaseUnavailable` until the database is up)."""
    dsn, max_size = settings.require_database_url(), settings.db_pool_max_size
    timeout_s = settings.db_command_timeout_s
    try:
        return await create_pool(
            dsn, min_size=settings.db_pool_min_size, max_size=max_size, command_timeout_s=timeout_s
        )
    except DatabaseUnavailable as exc:
        log.warning("database_unreachable", error=str(exc), then="connecting on first use")
        return await create_pool(dsn, min_size=0, max_size=max_size, command_timeout_s=timeout_s)


@asynccontextmanager
async def pool_from(settings: Settings) -> AsyncIterator[Pool]:
    pool = await open_pool(settings)
    try:
        yield pool
    finally:
        await pool.close()


FETCH_SETTINGS = frozenset({"consumer_fetch_min_bytes", "consumer_fetch_max_wait_ms"})


def fetch_policy(settings: Settings, preferred: FetchPolicy | None) -> FetchPolicy:
    """The role's own fetch policy, unless the operator set either fetch setting: then theirs."""
    if preferred is None or FETCH_SETTINGS & settings.model_fields_set:
        return FetchPolicy(settings.consumer_fetch_min_bytes, settings.consumer_fetch_max_wait_ms)
    return preferred


def new_bus(settings: Settings, client_id: str, preferred: FetchPolicy | None = None) -> KafkaBus:
    return KafkaBus(
        settings.require_kafka_bootstrap(),
        security=kafka_security(settings),
        client_id=client_id,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        fetch=fetch_policy(settings, preferred),
    )


@asynccontextmanager
async def kafka_bus(settings: Settings, client_id: str) -> AsyncIterator[KafkaBus]:
    """A started bus for a one-shot command (it fails at once if Kafka cannot be reached)."""
    bus = new_bus(settings, client_id)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


async def start_patiently(bus: KafkaBus, stop: asyncio.Event, heartbeat: Heartbeat) -> bool:
    """Start the bus, retrying until Kafka answers; False if `stop` was set first."""
    attempt = 0
    while not stop.is_set():
        heartbeat.beat()  # waiting is progress: liveness must not restart a pod for it
        try:
            await bus.start()
            return True
        except BusError as exc:
            attempt += 1
            pause_s = backoff_s(attempt)
            log.warning("kafka_unreachable", error=str(exc), attempt=attempt, retry_in_s=pause_s)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause_s)
    return False


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
