"""Process plumbing shared by the roles: stop on SIGTERM/SIGINT, serve an aiohttp app, build
the pool and the bus from settings."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from service.bus.kafka import KafkaBus
from service.db.core import Pool, create_pool
from service.settings import Settings

GATEWAY_SHUTDOWN_TIMEOUT_S = 10.0


def stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT (the second one is left to the default)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, loop, sig, stop)
    return stop


def _on_signal(loop: asyncio.AbstractEventLoop, sig: signal.Signals, stop: asyncio.Event) -> None:
    stop.set()
    loop.remove_signal_handler(sig)


@asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields the base URL actually bound (port 0 picks one)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=GATEWAY_SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()


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
