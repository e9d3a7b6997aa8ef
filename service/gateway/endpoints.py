"""The endpoint table's row: one place says method, path, handler, access rule, and the schemas
of body, query and responses. Routes and the OpenAPI document are both built from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Access(Enum):
    PUBLIC = "public"  # no key, never rate limited (health, metrics, docs)
    KEY = "key"  # an API key with `scope`, rate limited
    ADMIN = "admin"  # the admin token, not rate limited


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    access: Access = Access.KEY
    scope: str | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: Mapping[int, type[BaseModel] | None] = field(default_factory=dict)
    description: str = ""
    content_type: str = "application/json"  # of the success response
    headers: Mapping[str, HeaderParam] = field(default_factory=dict)  # request headers it reads
    errors: tuple[int, ...] = ()  # error statuses beyond the ones every endpoint of its kind has
    body_required: bool = True


@dataclass(frozen=True)
class HeaderParam:
    description: str
    max_length: int | None = None
