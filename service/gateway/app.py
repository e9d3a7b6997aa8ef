"""The gateway's aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.settings import Settings
from service.db.postgres import Pool
from service.gateway.appkeys import CLOCK, DRAIN, KEY_CACHE, POOL, SETTINGS, STREAMS, SUITE_STREAMS, WAITERS
from service.gateway.auth import KeyCache
from service.gateway.middlewares import access_control, body_limit, errors, request_context
from service.gateway.routes import setup_routes
from service.gateway.streams import run_streams, suite_run_streams
from service.gateway.ui import setup_ui
from service.gateway.ui.access import ui_pages
from service.gateway.waiters import RunWaiters
from service.runtime.health import Drain
from service.runtime.pools import open_pool


def create_app(
    settings: Settings, *, pool: Pool | None = None, clock: Clock = SYSTEM_CLOCK
) -> web.Application:
    """The gateway. Given a pool (dev mode shares one), the app uses it and leaves it open."""
    app = web.Application(
        middlewares=[request_context, errors, ui_pages, body_limit, access_control],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[DRAIN] = Drain()
    app[KEY_CACHE] = KeyCache(ttl_s=settings.api_key_cache_s, clock=clock)
    if pool is not None:
        app[POOL] = pool
    else:
        app.cleanup_ctx.append(_pool_context)
    app.cleanup_ctx.append(_waiters_context)
    app.cleanup_ctx.append(_streams_context)
    app.on_shutdown.append(_answer_waiters)
    setup_routes(app)
    setup_ui(app, settings)
    return app


async def _pool_context(app: web.Application) -> AsyncIterator[None]:
    """The pool; started while PostgreSQL is out of reach, it connects on first use, the
    gateway answers 503 (and `/readyz` not-ready) until then."""
    pool = await open_pool(app[SETTINGS])
    app[POOL] = pool
    yield
    await pool.close()


async def _waiters_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    waiters = RunWaiters(settings.require_database_url(), app[POOL], poll_s=settings.waiter_poll_s)
    await waiters.start()
    app[WAITERS] = waiters
    yield
    await waiters.close()


async def _streams_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    dsn, pool, poll_s = settings.require_database_url(), app[POOL], settings.waiter_poll_s
    app[STREAMS] = run_streams(dsn, pool, poll_s=poll_s)
    app[SUITE_STREAMS] = suite_run_streams(dsn, pool, poll_s=poll_s)
    for streams in (app[STREAMS], app[SUITE_STREAMS]):
        await streams.start()
    yield
    for streams in (app[STREAMS], app[SUITE_STREAMS]):
        await streams.close()


async def _answer_waiters(app: web.Application) -> None:
    """Shutting down: every blocked request is answered now (202) instead of at its deadline,
    and every event stream closes."""
    app[WAITERS].shut()
    app[STREAMS].shut()
    app[SUITE_STREAMS].shut()
