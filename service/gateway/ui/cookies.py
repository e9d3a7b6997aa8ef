"""The dashboard's session cookie on a request: read it (once per request), and send it."""

from __future__ import annotations

from aiohttp import web

from service.core.errors import NotConfigured
from service.gateway.ui.appkeys import SIGNER, UI_SESSION
from service.gateway.ui.sessions import COOKIE, Session, SessionSigner, new_session

PATH = "/ui/"


def signer(request: web.Request) -> SessionSigner:
    found = request.app.get(SIGNER)
    if found is None:
        raise NotConfigured("The dashboard is off: set AGENT_EVAL_UI_SESSION_SECRET (any long random string)")
    return found


def session_of(request: web.Request) -> Session:
    """This request's session (a fresh, signed-out one when the cookie is missing or bad)."""
    found: Session | None = request.get(UI_SESSION)
    if found is None:
        found = signer(request).load(request.cookies.get(COOKIE)) or new_session()
        request[UI_SESSION] = found
    return found


def set_session(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    """Send `session` as the cookie (HttpOnly, SameSite=Strict, Secure behind https)."""
    request[UI_SESSION] = session
    response.set_cookie(
        COOKIE,
        signer(request).dump(session),
        max_age=int(signer(request).max_age_s),
        path=PATH,
        httponly=True,
        samesite="Strict",
        secure=behind_https(request),
    )


def behind_https(request: web.Request) -> bool:
    """Served over https, here or at a proxy that says so (trusting the header can only make the
    cookie stricter: a Secure cookie is never sent over plain http)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
