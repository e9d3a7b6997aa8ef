"""Shared fixtures: a real PostgreSQL (a template database cloned per test) and a real Kafka
(per-test topic names), both started by `scripts/services up`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr

from service.bus.kafka import KafkaBus
from service.core.settings import Settings
from service.db.migrate import apply_migrations, load_migrations, migrations_digest
from service.db.postgres import Pool, create_pool
from tests.support.api import Tenant, make_tenant
from tests.support.live import TEST_WEBHOOK_KEY

# Bounded for CI: deterministic example generation, no per-example deadline on a shared machine.
hypothesis_settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
hypothesis_settings.register_profile("thorough", max_examples=500, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist the controller collects nothing, so a mistyped path would end as "no
    tests ran" (exit 5): check the paths here, as plain pytest does (a usage error, exit 4)."""
    if not hasattr(config, "workerinput") and config.getoption("numprocesses", None):
        for arg in config.args:
            path = config.invocation_params.dir / arg.split("::", 1)[0]
            if not path.exists():
                raise pytest.UsageError(f"file or directory not found: {arg}")


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run `scripts/services up` and `source .services/env`", returncode=3)
    return value


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def server_url() -> str:
    return _required("AGENT_EVAL_DATABASE_URL")


async def _build_template(server_url: str, name: str) -> None:
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await admin.execute("SELECT pg_advisory_lock(4242)")
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            conn = await asyncpg.connect(with_database(server_url, name))
            try:
                applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
            except asyncpg.UndefinedTableError:
                applied = -1
            finally:
                await conn.close()
            if applied == len(load_migrations()):
                return
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(with_database(server_url, name))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
    finally:
        await admin.execute("SELECT pg_advisory_unlock(4242)")
        await admin.close()


@pytest.fixture(scope="session")
def template_database(server_url: str) -> str:
    """A database with every migration applied, named after the migrations' digest (reused across runs)."""
    name = f"agent_eval_tpl_{migrations_digest()}"
    asyncio.run(_build_template(server_url, name))
    return name


async def _admin_execute(server_url: str, sql: str) -> None:
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture
def empty_database_url(server_url: str) -> Iterator[str]:
    """A brand-new database with nothing in it (for migration tests)."""
    name = f"agent_eval_empty_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_execute(server_url, f'CREATE DATABASE "{name}"'))
    yield with_database(server_url, name)
    asyncio.run(_admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def cloned_database(server_url: str, template_database: str) -> Iterator[str]:
    """A fresh clone of the migrated template (its URL), dropped afterwards."""
    name = f"agent_eval_test_{uuid.uuid4().hex[:12]}"
    clone = f'CREATE DATABASE "{name}" TEMPLATE "{template_database}" STRATEGY FILE_COPY'
    asyncio.run(_admin_execute(server_url, clone))
    try:
        yield with_database(server_url, name)
    finally:
        asyncio.run(_admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(server_url: str, template_database: str) -> Iterator[str]:
    """A fresh clone of the migrated template, dropped after the test."""
    with cloned_database(server_url, template_database) as url:
        yield url


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


def kafka_bootstrap_from_env() -> str:
    return _required("AGENT_EVAL_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return kafka_bootstrap_from_env()


@pytest.fixture
def topic_prefix() -> str:
    """Unique per test, so topics and consumer groups never collide between tests."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
async def kafka(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[KafkaBus]:
    """A started Kafka bus; every topic with this test's prefix is deleted afterwards."""
    bus = KafkaBus(kafka_bootstrap, client_id="tests", session_timeout_ms=6000, heartbeat_interval_ms=500)
    await bus.start()
    yield bus
    await bus.delete_topics([t for t in await bus.list_topics() if t.startswith(topic_prefix)])
    await bus.stop()


@pytest.fixture
def settings(database_url: str, topic_prefix: str) -> Settings:
    """Settings for in-process roles: this test's database and topic prefix, fast polling."""
    return Settings(
        database_url=SecretStr(database_url),
        kafka_bootstrap=os.environ.get("AGENT_EVAL_KAFKA_BOOTSTRAP"),
        topic_prefix=topic_prefix,
        topic_partitions=1,
        relay_idle_poll_s=0.2,
        relay_lock_poll_s=0.2,
        consumer_retry_base_s=0.01,
        webhook_secret_keys=SecretStr(TEST_WEBHOOK_KEY),
        webhook_poll_s=0.05,
        log_format="console",
    )


@pytest.fixture
async def tenant(pool: Pool) -> Tenant:
    """A company with credits and an all-scopes key."""
    return await make_tenant(pool, "Acme")


@pytest.fixture
async def stranger(pool: Pool) -> Tenant:
    """Another company: its ids must look missing to `tenant`, and the reverse."""
    return await make_tenant(pool, "Globex")
