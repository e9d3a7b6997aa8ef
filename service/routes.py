"""Every route of the gateway, in one place."""

from __future__ import annotations

from aiohttp import web

from service.handlers import health


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz, name="healthz")
    app.router.add_get("/readyz", health.readyz, name="readyz")
    app.router.add_get("/metrics", health.metrics, name="metrics")
