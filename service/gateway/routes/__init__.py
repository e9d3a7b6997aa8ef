"""Every route of the gateway, in one table: access rule, scope, and schemas per endpoint.

The same table registers the aiohttp routes, drives the access middleware (key, scope, rate
limit, admin token) and generates `/openapi.json`, so none of them can drift from the others.
The rows live next to each other by area (ops, resources, runs, webhooks, accounts); this module joins them.
"""

from __future__ import annotations

from importlib.metadata import version

from aiohttp import web

from service.gateway.appkeys import ASYNCAPI, ENDPOINTS, OPENAPI
from service.gateway.asyncapi import asyncapi_json
from service.gateway.endpoints import Endpoint
from service.gateway.openapi import openapi_json
from service.gateway.routes.accounts import ACCOUNT_ENDPOINTS
from service.gateway.routes.flows import FLOW_ENDPOINTS
from service.gateway.routes.ops import OPS_ENDPOINTS
from service.gateway.routes.resources import RESOURCE_ENDPOINTS
from service.gateway.routes.runs import RUN_ENDPOINTS
from service.gateway.routes.suite_runs import SUITE_RUN_ENDPOINTS
from service.gateway.routes.webhooks import WEBHOOK_ENDPOINTS

ENDPOINT_TABLE: tuple[Endpoint, ...] = (
    *OPS_ENDPOINTS,
    *RESOURCE_ENDPOINTS,
    *FLOW_ENDPOINTS,
    *RUN_ENDPOINTS,
    *SUITE_RUN_ENDPOINTS,
    *WEBHOOK_ENDPOINTS,
    *ACCOUNT_ENDPOINTS,
)


def setup_routes(app: web.Application) -> None:
    for endpoint in ENDPOINT_TABLE:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler, name=endpoint.operation_id)
    app[ENDPOINTS] = {endpoint.operation_id: endpoint for endpoint in ENDPOINT_TABLE}
    app[OPENAPI] = openapi_json(ENDPOINT_TABLE, version=version("agent-eval"))
    app[ASYNCAPI] = asyncapi_json(version=version("agent-eval"))
