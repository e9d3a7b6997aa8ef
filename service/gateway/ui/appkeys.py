"""The dashboard's typed application and request keys."""

from __future__ import annotations

from aiohttp import web

from service.gateway.ui.sessions import Session, SessionSigner

SIGNER: web.AppKey[SessionSigner] = web.AppKey("ui_signer", SessionSigner)  # absent: the dashboard is off
UI_SESSION: web.RequestKey[Session] = web.RequestKey("ui_session", Session)
