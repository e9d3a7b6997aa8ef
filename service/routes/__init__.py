"""Every route of the gateway, in one table: access rule, scope, and schemas per endpoint.

The same table registers the aiohttp routes, drives the access middleware (key, scope, rate
limit, admin token) and generates `/openapi.json`, so none of them can drift from the others.
The rows live next to each other by area (ops, resources, runs, accounts); this module joins them.
"""

from __future__ import annotations

from importlib.metadata import version

from aiohttp import web

from service.endpoints import Endpoint
from service.keys import ENDPOINTS, OPENAPI
from service.openapi import openapi_json
from service.routes.accounts import ACCOUNT_ENDPOINTS
from service.routes.ops import OPS_ENDPOINTS
from service.routes.resources import RESOURCE_ENDPOINTS
from service.routes.runs import RUN_ENDPOINTS

ENDPOINT_TABLE: tuple[Endpoint, ...] = (
    *OPS_ENDPOINTS,
    *RESOURCE_ENDPOINTS,
    *RUN_ENDPOINTS,
    *ACCOUNT_ENDPOINTS,
)


def setup_routes(app: web.Application) -> None:
    for endpoint in ENDPOINT_TABLE:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler, name=endpoint.operation_id)
    app[ENDPOINTS] = {endpoint.operation_id: endpoint for endpoint in ENDPOINT_TABLE}
    app[OPENAPI] = openapi_json(ENDPOINT_TABLE, version=version("agent-eval"))
