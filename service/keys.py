"""Typed aiohttp application keys: everything the handlers find on `request.app`."""

from __future__ import annotations

from aiohttp import web

from service.db.core import Pool
from service.settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
POOL: web.AppKey[Pool] = web.AppKey("pool")
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)  # set by the request-context middleware
