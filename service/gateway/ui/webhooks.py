"""Dashboard pages of webhooks: the company's endpoints (never their secrets), and one endpoint
with its delivery log, newest first, each delivery with a "Resend" button (the API's resend)."""

from __future__ import annotations

from aiohttp import web

from service.db import delivery_log, webhooks
from service.db.postgres import connection, transaction
from service.gateway.appkeys import CLOCK, POOL
from service.gateway.handlers.parsing import path_id
from service.gateway.routes.webhooks import MANAGE, READ
from service.gateway.ui.access import signed_in
from service.gateway.ui.rendering import render, see_other
from service.webhooks.delivery_log import delivery_view, queue_resend
from service.webhooks.endpoints import endpoint_view

ENDPOINTS_SHOWN = 100
DELIVERIES_SHOWN = 50


async def webhooks_page(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, READ)
    async with connection(request.app[POOL]) as conn:
        rows, total = await webhooks.list_endpoints(conn, viewer.company_id, limit=ENDPOINTS_SHOWN, offset=0)
    context = {"endpoints": [endpoint_view(r) for r in rows], "total": total, "shown_max": ENDPOINTS_SHOWN}
    return render(request, "webhooks.html", context)


async def webhook_page(request: web.Request) -> web.StreamResponse:
    viewer = await signed_in(request, READ)
    endpoint_id = path_id(request)
    async with transaction(request.app[POOL], snapshot=True) as conn:
        endpoint = await webhooks.get_endpoint(conn, viewer.company_id, endpoint_id)
        rows, total = await delivery_log.list_deliveries(
            conn, viewer.company_id, endpoint_id, status=None, limit=DELIVERIES_SHOWN, offset=0
        )
    context = {
        "endpoint": endpoint_view(endpoint),
        "deliveries": [delivery_view(r) for r in rows],
        "total": total,
        "may_resend": viewer.may(MANAGE),
    }
    return render(request, "webhook.html", context)


async def resend(request: web.Request) -> web.StreamResponse:
    """Send a delivery again (the schedule starts afresh), then back to its endpoint's page."""
    viewer = await signed_in(request, MANAGE)
    endpoint_id, delivery_id = path_id(request), path_id(request, "delivery_id")
    async with transaction(request.app[POOL]) as conn:
        await queue_resend(conn, viewer.company_id, endpoint_id, delivery_id, request.app[CLOCK].now())
    return see_other(f"/ui/webhooks/{endpoint_id}")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/webhooks", webhooks_page)
    router.add_get("/ui/webhooks/{id}", webhook_page)
    router.add_post("/ui/webhooks/{id}/deliveries/{delivery_id}/resend", resend)
