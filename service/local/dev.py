"""`agent-eval dev`: every role in one process, on an embedded PostgreSQL and the in-process bus.

The database lives under the data directory, so a restart keeps agents, cases and runs. Nothing
is seeded silently: on the very first start one company with credits and one API key are created
and printed (the key only this once); later starts say they reuse the existing data.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import SecretStr

from service.accounts import api_keys, tenants
from service.bus.interface import Bus
from service.bus.memory import InProcessBus
from service.bus.topics import topic_specs
from service.core.settings import Settings
from service.db.migrate import apply_migrations
from service.db.postgres import Pool, close_quietly, connect
from service.domain.apikeys import SCOPES
from service.gateway.app import create_app
from service.local import pgserver
from service.runtime.pools import pool_from
from service.runtime.serving import ensure_port_free, serving
from service.runtime.signals import stop_on_signals
from service.runtime.stopping import RoleRunner

DATABASE = "agent_eval"
DEV_COMPANY = "Local development"
DEV_CREDITS_CENTS = 10_000
PORT_HINT = "pass --port"


RoleFactory = Callable[[Settings, Pool, Bus], RoleRunner]
Say = Callable[[str], None]


async def run_dev(
    settings: Settings, *, data_dir: Path, port: int, roles: Sequence[RoleFactory], say: Say
) -> None:
    """Run until SIGINT/SIGTERM, then stop every role and the embedded PostgreSQL. `roles` are
    the relay and the consumer roles, built by the composition root (`service.cli`)."""
    await asyncio.to_thread(ensure_port_free, settings.host, port, PORT_HINT)  # before PostgreSQL starts
    default_dir = settings.data_dir
    data_dir, default_dir = await asyncio.to_thread(lambda: (_resolved(data_dir), _resolved(default_dir)))
    pg_dir = data_dir / "postgres"
    server = await asyncio.to_thread(
        pgserver.start, pg_dir, settings=pgserver.DEV_SETTINGS, databases=[DATABASE]
    )
    say(f"data directory: {data_dir}")
    say(f"database: {server.describe()}")
    updates: dict[str, object] = {"database_url": SecretStr(server.url(DATABASE))}
    if settings.webhook_secret_keys is None or not settings.webhook_secret_keys.get_secret_value().strip():
        updates["webhook_secret_keys"] = SecretStr(await asyncio.to_thread(local_secret_key, data_dir))
    if settings.ui_session_secret is None or not settings.ui_session_secret.get_secret_value().strip():
        updates["ui_session_secret"] = SecretStr(await asyncio.to_thread(local_session_secret, data_dir))
    settings = settings.model_copy(update=updates)
    stop = stop_on_signals()
    try:
        await _migrate(server.url(DATABASE))
        async with pool_from(settings) as pool:
            await _first_start(
                pool, say, admin_flags="" if data_dir == default_dir else f" --data-dir {data_dir}"
            )
            await _run_roles(settings, pool=pool, port=port, roles=roles, stop=stop, say=say)
    finally:
        await asyncio.to_thread(pgserver.stop, pg_dir)
        say("stopped")


def running_database_url(data_dir: Path) -> str | None:
    """The database of the `agent-eval dev` running on `data_dir`, if one is: its embedded
    PostgreSQL records where it listens (`postgres/postgres.json`) while it runs. Blocks."""
    server = pgserver.read_state(_resolved(data_dir) / "postgres")
    return None if server is None else server.url(DATABASE)


def _resolved(path: Path) -> Path:
    return path.expanduser().resolve()


def local_secret_key(data_dir: Path) -> str:
    """The key sealing webhook secrets in this data directory, made on first use (mode 0600):
    production gives AGENT_EVAL_WEBHOOK_SECRET_KEYS instead."""
    return _local_secret(data_dir / "webhook-secret.key", lambda: Fernet.generate_key().decode())


def local_session_secret(data_dir: Path) -> str:
    """The secret signing dashboard sessions in this data directory, made on first use (mode 0600),
    so a restart keeps people signed in: production gives AGENT_EVAL_UI_SESSION_SECRET instead."""
    return _local_secret(data_dir / "ui-session.key", lambda: secrets.token_urlsafe(32))


def _local_secret(path: Path, make: Callable[[], str]) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(make())
    return path.read_text().strip()


async def _until_stopped_or_crashed(stop: asyncio.Event, tasks: list[asyncio.Task[None]], say: Say) -> None:
    """Wait for Ctrl-C; a role that dies meanwhile stops everything rather than limp on without it."""
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    for task in done - {stopped}:
        error = task.exception()
        say(f"role {task.get_name()} stopped unexpectedly: {error!r}; shutting down")


async def _migrate(dsn: str) -> None:
    conn = await connect(dsn, application_name="agent-eval-migrate")
    try:
        await apply_migrations(conn)
    finally:
        await close_quietly(conn)


async def _first_start(pool: Pool, say: Say, *, admin_flags: str) -> None:
    if await tenants.count_companies(pool):
        say(f"reusing the existing data (create more keys with `agent-eval admin create-key{admin_flags}`)")
        return
    company = await tenants.create_company(pool, DEV_COMPANY, credits_cents=DEV_CREDITS_CENTS)
    issued = await api_keys.issue_api_key(pool, company.id, name="dev", scopes=list(SCOPES))
    say(
        f"first start: created company {company.id} ({DEV_COMPANY!r}) "
        f"with {DEV_CREDITS_CENTS} cents of credit"
    )
    say(f"API key (shown once, keep it): {issued.key}")


async def _run_roles(
    settings: Settings,
    *,
    pool: Pool,
    port: int,
    roles: Sequence[RoleFactory],
    stop: asyncio.Event,
    say: Say,
) -> None:
    bus = InProcessBus()
    await bus.create_topics(topic_specs(settings.topic_prefix, settings.topic_partitions, 1))
    runners = [factory(settings, pool, bus) for factory in roles]
    tasks = [asyncio.create_task(runner.run(), name="role") for runner in runners]
    try:
        app = create_app(settings, pool=pool)
        served = serving(app, settings.host, port, port_hint=PORT_HINT, backlog=settings.listen_backlog)
        async with served as url:
            say(f"serving {url}  (Ctrl-C to stop)")
            say(f"dashboard: {url}/ui/  (sign in with the API key)")
            await _until_stopped_or_crashed(stop, tasks, say)
    finally:
        stop.set()
        for runner in runners:
            runner.request_stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.stop()
