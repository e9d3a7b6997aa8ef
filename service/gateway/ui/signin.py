"""Signing in to the dashboard with an API key, and out."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from service.db import companies
from service.db.postgres import connection
from service.domain import access
from service.domain.apikeys import hash_api_key, is_well_formed
from service.gateway.appkeys import CLOCK, POOL
from service.gateway.ui.cookies import session_of, set_session
from service.gateway.ui.rendering import render, see_other
from service.gateway.ui.sessions import new_session

HOME = "/ui/runs"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path only (never another site)."""
    if not target:
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/") or target.startswith("//"):
        return HOME
    return target


async def signin_page(request: web.Request) -> web.StreamResponse:
    return _form(request, request.query.get("next"), error=None, status=200)


async def signin(request: web.Request) -> web.StreamResponse:
    """Check the key; on success a new session (new nonce) and 303 to where the person was going."""
    form = await request.post()
    token = str(form.get("api_key", "")).strip()
    target = safe_next(str(form.get("next", "")) or None)
    found = None
    if is_well_formed(token):
        async with connection(request.app[POOL]) as conn:
            found = await companies.fetch_key_auth(conn, hash_api_key(token))
    now = request.app[CLOCK].now()
    status = access.key_status(
        found is not None, found.revoked_at if found else None, found.expires_at if found else None, now
    )
    if found is None or status != "ok":
        message = "That key has expired." if status == "expired" else "That is not a valid API key."
        return _form(request, target, error=message, status=401)
    response = see_other(target)
    set_session(request, response, new_session(found.id))
    return response


async def signout(request: web.Request) -> web.StreamResponse:
    response = see_other("/ui/signin")
    set_session(request, response, new_session())
    return response


def _form(request: web.Request, target: str | None, *, error: str | None, status: int) -> web.Response:
    session = session_of(request)  # NotConfigured when the dashboard has no secret
    context = {"next": safe_next(target), "error": error}
    response = render(request, "signin.html", context, status=status)
    set_session(request, response, session)  # the form's CSRF token is tied to this session
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/ui/signin", signin_page)
    router.add_post("/ui/signin", signin)
    router.add_post("/ui/signout", signout)
