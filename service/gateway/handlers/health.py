"""`/healthz`, `/readyz`, `/metrics`: no key needed, never rate limited."""

from __future__ import annotations

from aiohttp import web

from schemas.api import HealthBody
from service.gateway.appkeys import DRAIN, POOL, SETTINGS
from service.runtime.health import database_check, json_body, metrics_response, readiness_response


async def healthz(_: web.Request) -> web.Response:
    """The process is up and its event loop answers; no dependency is checked (liveness)."""
    return json_body(HealthBody(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    """The database answers (a pool busy with waiters is load, not unavailability). The gateway
    writes events to the outbox; it needs no broker. From SIGTERM on it answers 503, so the pod
    leaves the Service before it stops listening."""
    database_url = request.app[SETTINGS].database_url
    dsn = None if database_url is None else database_url.get_secret_value()
    return await readiness_response({"database": database_check(request.app[POOL], dsn)}, request.app[DRAIN])


async def metrics(_: web.Request) -> web.Response:
    return metrics_response()
