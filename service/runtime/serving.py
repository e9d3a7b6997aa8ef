"""Serving an aiohttp application on a host and port for as long as a block runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

GATEWAY_SHUTDOWN_TIMEOUT_S = 10.0


@asynccontextmanager
async def serving(
    app: web.Application, host: str, port: int, *, shutdown_timeout_s: float = GATEWAY_SHUTDOWN_TIMEOUT_S
) -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields the base URL actually bound (port 0 picks one).
    At the end aiohttp stops listening, runs `on_shutdown`, gives running handlers
    `shutdown_timeout_s`, then closes what is left."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
