"""`/healthz`, `/readyz`, `/metrics`: no key needed, never rate limited."""

from __future__ import annotations

from aiohttp import web

from schemas.api import HealthBody
from service.health import database_check, run_checks
from service.keys import POOL
from service.metrics import render_metrics


async def healthz(_: web.Request) -> web.Response:
    """The process is up and its event loop answers; no dependency is checked (liveness)."""
    return web.json_response(HealthBody(status="ok").model_dump())


async def readyz(request: web.Request) -> web.Response:
    """The database pool is usable. The gateway writes events to the outbox; it needs no broker."""
    results = await run_checks({"database": database_check(request.app[POOL])})
    ok = all(value == "ok" for value in results.values())
    body = HealthBody(status="ok" if ok else "unavailable", checks=results)
    return web.json_response(body.model_dump(), status=200 if ok else 503)


async def metrics(_: web.Request) -> web.Response:
    payload, content_type = render_metrics()
    return web.Response(body=payload, headers={"Content-Type": content_type})
