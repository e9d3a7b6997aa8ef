"""Serving an aiohttp application on a host and port for as long as a block runs."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from service.core.errors import SettingsError

GATEWAY_SHUTDOWN_TIMEOUT_S = 10.0
PORT_HINT = "set AGENT_EVAL_PORT"


def ensure_port_free(host: str, port: int, hint: str = PORT_HINT) -> None:
    """Refuse, in one line, a port something already listens on, before anything is started
    (blocks: a local bind per address of `host`). Port 0 picks a free one and is never busy."""
    if port == 0:
        return
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
            try:
                probe.bind(address)
            except OSError as exc:
                _raise_if_busy(exc, port, hint)


def _raise_if_busy(exc: OSError, port: int, hint: str) -> None:
    """Other bind errors (an address this host lacks, say) are left to the server to report."""
    if exc.errno == errno.EADDRINUSE:
        raise SettingsError(f"port {port} is in use; {hint}") from exc


@asynccontextmanager
async def serving(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout_s: float = GATEWAY_SHUTDOWN_TIMEOUT_S,
    port_hint: str = PORT_HINT,
) -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields the base URL actually bound (port 0 picks one).
    A busy port is a `SettingsError` ending in `port_hint`, raised before the app starts up.
    At the end aiohttp stops listening, runs `on_shutdown`, gives running handlers
    `shutdown_timeout_s`, then closes what is left."""
    await asyncio.to_thread(ensure_port_free, host, port, port_hint)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:  # taken since the check above
            _raise_if_busy(exc, port, port_hint)
            raise
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
