"""Typed aiohttp application keys: everything the handlers find on `request.app`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from service.core.clock import Clock
from service.core.settings import Settings
from service.db.postgres import Pool
from service.runtime.health import Drain

if TYPE_CHECKING:
    from service.gateway.auth import KeyCache, Principal
    from service.gateway.endpoints import Endpoint
    from service.gateway.streams import ProgressStreams
    from service.gateway.waiters import RunWaiters

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")  # every handler reads the time from here
POOL: web.AppKey[Pool] = web.AppKey("pool")
DRAIN: web.AppKey[Drain] = web.AppKey("drain", Drain)  # set on SIGTERM: /readyz answers 503
KEY_CACHE: web.AppKey[KeyCache] = web.AppKey("key_cache")
OPENAPI: web.AppKey[str] = web.AppKey("openapi", str)  # the document as JSON text
ASYNCAPI: web.AppKey[str] = web.AppKey("asyncapi", str)  # the event stream contract as JSON text
ENDPOINTS: web.AppKey[Mapping[str, Endpoint]] = web.AppKey("endpoints")  # by route name
WAITERS: web.AppKey[RunWaiters] = web.AppKey("waiters")  # requests blocked until their run is done
STREAMS: web.AppKey[ProgressStreams] = web.AppKey("streams")  # open SSE streams of run events
SUITE_STREAMS: web.AppKey[ProgressStreams] = web.AppKey("suite_streams")  # ... of suite runs

# Request-scoped values.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)  # set by the request-context middleware
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")  # set by the access middleware
RATE_LIMIT_HEADERS: web.RequestKey[Mapping[str, str]] = web.RequestKey("rate_limit_headers")
