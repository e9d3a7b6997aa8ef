"""Serving an aiohttp application on a host and port for as long as a block runs."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from service.core.errors import SettingsError
from service.core.logging import get_logger

log = get_logger("service.runtime.serving")

GATEWAY_SHUTDOWN_TIMEOUT_S = 10.0
PORT_HINT = "set AGENT_EVAL_PORT"
DEFAULT_BACKLOG = 128  # aiohttp's own, for the small servers of tests and benchmarks
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


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


def kernel_backlog_cap(path: Path = SOMAXCONN) -> int | None:
    """The kernel's cap on any listen backlog (net.core.somaxconn), or None where it cannot be
    read (not Linux, no /proc). Blocks: one small file read."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def warn_if_capped(backlog: int, cap: int | None) -> None:
    """One warning line when the kernel silently shortens the backlog asked for."""
    if cap is not None and backlog > cap:
        log.warning("listen_backlog_capped", listen_backlog=backlog, somaxconn=cap)


@asynccontextmanager
async def serving(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout_s: float = GATEWAY_SHUTDOWN_TIMEOUT_S,
    port_hint: str = PORT_HINT,
    backlog: int = DEFAULT_BACKLOG,
) -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields the base URL actually bound (port 0 picks one).
    A busy port is a `SettingsError` ending in `port_hint`, raised before the app starts up.
    `backlog` is the listen queue: connections the kernel completes while the loop is busy.
    At the end aiohttp stops listening, runs `on_shutdown`, gives running handlers
    `shutdown_timeout_s`, then closes what is left."""
    await asyncio.to_thread(ensure_port_free, host, port, port_hint)
    warn_if_capped(backlog, await asyncio.to_thread(kernel_backlog_cap))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=backlog)
        try:
            await site.start()
        except OSError as exc:  # taken since the check above
            _raise_if_busy(exc, port, port_hint)
            raise
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
