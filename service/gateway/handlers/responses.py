"""Response helpers: schema models to JSON, the request's caller and resources."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from service.gateway.appkeys import PRINCIPAL
from service.gateway.auth import Principal

JSON = "application/json"


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=model.model_dump_json(by_alias=True), status=status, content_type=JSON)


def no_content() -> web.Response:
    return web.Response(status=204)


def principal(request: web.Request) -> Principal:
    """The authenticated caller (set by the access middleware on every keyed endpoint)."""
    return request[PRINCIPAL]
