"""`/webhooks`: endpoints (create, list, get, PATCH, delete, enable, disable, rotate secret) and
their delivery log (list, get, resend, recover, test send)."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from schemas.pages import ListQuery, page_of
from schemas.webhooks import (
    DeliveryListQuery,
    Recovered,
    RecoverRequest,
    SecretRotation,
    WebhookEndpointCreate,
    WebhookEndpointPatch,
    WebhookEndpointWithSecret,
)
from service.core.errors import NotFound
from service.db import delivery_log, webhooks
from service.db.postgres import connection, transaction
from service.gateway.appkeys import CLOCK, POOL, SETTINGS
from service.gateway.handlers.parsing import fields_in, parse_body, parse_query, path_id
from service.gateway.handlers.responses import json_response, no_content, principal
from service.webhooks import endpoints
from service.webhooks.delivery_log import delivery_detail, delivery_view, queue_ping, queue_resend


def _with_secret(registered: endpoints.Registered) -> WebhookEndpointWithSecret:
    view = endpoints.endpoint_view(registered.endpoint)
    return WebhookEndpointWithSecret(**view.model_dump(), secret=registered.secret)


async def create_endpoint(request: web.Request) -> web.Response:
    body = await parse_body(request, WebhookEndpointCreate)
    company_id = principal(request).company_id
    with fields_in("body"):
        registered = await endpoints.register(request.app[POOL], request.app[SETTINGS], company_id, body)
    return json_response(_with_secret(registered), status=201)


async def list_endpoints(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    async with connection(request.app[POOL]) as conn:
        rows, total = await webhooks.list_endpoints(
            conn, principal(request).company_id, limit=query.limit, offset=query.offset
        )
    return json_response(page_of([endpoints.endpoint_view(r) for r in rows], total, query))


async def get_endpoint(request: web.Request) -> web.Response:
    async with connection(request.app[POOL]) as conn:
        row = await webhooks.get_endpoint(conn, principal(request).company_id, path_id(request))
    return json_response(endpoints.endpoint_view(row))


async def update_endpoint(request: web.Request) -> web.Response:
    endpoint_id = path_id(request)
    return await _updated(request, endpoint_id, await parse_body(request, WebhookEndpointPatch))


async def enable_endpoint(request: web.Request) -> web.Response:
    return await _updated(request, path_id(request), WebhookEndpointPatch(enabled=True))


async def disable_endpoint(request: web.Request) -> web.Response:
    return await _updated(request, path_id(request), WebhookEndpointPatch(enabled=False))


async def _updated(request: web.Request, endpoint_id: UUID, patch: WebhookEndpointPatch) -> web.Response:
    company_id = principal(request).company_id
    with fields_in("body"):
        row = await endpoints.update(request.app[POOL], request.app[SETTINGS], company_id, endpoint_id, patch)
    return json_response(endpoints.endpoint_view(row))


async def delete_endpoint(request: web.Request) -> web.Response:
    endpoint_id = path_id(request)
    if not await endpoints.delete(request.app[POOL], principal(request).company_id, endpoint_id):
        raise NotFound(f"Webhook endpoint {endpoint_id} not found")
    return no_content()


async def rotate_secret(request: web.Request) -> web.Response:
    endpoint_id = path_id(request)
    body = await parse_body(request, SecretRotation)
    registered = await endpoints.rotate(
        request.app[POOL],
        request.app[SETTINGS],
        principal(request).company_id,
        endpoint_id,
        body.grace_period_s,
    )
    return json_response(_with_secret(registered))


async def list_deliveries(request: web.Request) -> web.Response:
    endpoint_id = path_id(request)
    query = parse_query(request, DeliveryListQuery)
    company_id = principal(request).company_id
    async with connection(request.app[POOL]) as conn:
        await webhooks.get_endpoint(conn, company_id, endpoint_id)
        rows, total = await delivery_log.list_deliveries(
            conn, company_id, endpoint_id, status=query.status, limit=query.limit, offset=query.offset
        )
    return json_response(page_of([delivery_view(r) for r in rows], total, query))


async def get_delivery(request: web.Request) -> web.Response:
    endpoint_id, delivery_id = path_id(request), path_id(request, "delivery_id")
    async with transaction(request.app[POOL], snapshot=True) as conn:
        row, attempts = await delivery_log.get_delivery(
            conn, principal(request).company_id, endpoint_id, delivery_id
        )
    return json_response(delivery_detail(row, attempts))


async def resend_delivery(request: web.Request) -> web.Response:
    endpoint_id, delivery_id = path_id(request), path_id(request, "delivery_id")
    company_id = principal(request).company_id
    async with transaction(request.app[POOL]) as conn:
        delivery = await queue_resend(conn, company_id, endpoint_id, delivery_id, request.app[CLOCK].now())
    return json_response(delivery, status=202)


async def recover_deliveries(request: web.Request) -> web.Response:
    endpoint_id = path_id(request)
    body = await parse_body(request, RecoverRequest)
    company_id = principal(request).company_id
    async with transaction(request.app[POOL]) as conn:
        await webhooks.get_endpoint(conn, company_id, endpoint_id)
        count = await delivery_log.recover_deliveries(
            conn, company_id, endpoint_id, since=body.since, until=body.until, due_at=request.app[CLOCK].now()
        )
    return json_response(Recovered(recovered=count), status=202)


async def test_endpoint(request: web.Request) -> web.Response:
    endpoint_id = path_id(request)
    async with transaction(request.app[POOL]) as conn:
        delivery = await queue_ping(
            conn, principal(request).company_id, endpoint_id, request.app[CLOCK].now()
        )
    return json_response(delivery, status=202)
