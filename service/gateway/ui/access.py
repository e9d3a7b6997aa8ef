"""Who is looking at a dashboard page, and the rules every page follows.

`ui_pages` (a middleware, for `/ui/` only) sets the security headers (a strict
Content-Security-Policy: scripts, styles and connections from this origin only, no inline
script or style, no framing), checks the CSRF token of every form, and turns errors into pages:
no session → the sign-in page (303), anything else → an HTML page with the error's status.
`signed_in` re-reads the session's key on every page, so a revoked or expired key signs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote
from uuid import UUID

from aiohttp import web
from aiohttp.typedefs import Handler

from service.core.errors import (
    CsrfRejected,
    InsufficientScope,
    NotFound,
    ServiceError,
    SignInRequired,
    ValidationFailed,
)
from service.db import companies
from service.db.postgres import connection
from service.domain import access
from service.gateway.appkeys import CLOCK, POOL
from service.gateway.ui.cookies import session_of, signer
from service.gateway.ui.rendering import render, see_other
from service.gateway.ui.sessions import CSRF_FIELD

PREFIX = "/ui/"
STATIC = "/ui/static/"
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: their key's company and scopes."""

    company_id: UUID
    key_id: UUID
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes


async def signed_in(request: web.Request, scope: str) -> Viewer:
    """The viewer, if their session's key is still good and has `scope`; else SignInRequired."""
    session = session_of(request)
    if session.key_id is None:
        raise SignInRequired()
    async with connection(request.app[POOL]) as conn:
        key = await companies.fetch_key_auth_by_id(conn, session.key_id)
    now = request.app[CLOCK].now()
    if key is None or access.key_status(True, key.revoked_at, key.expires_at, now) != "ok":
        raise SignInRequired("Your session's API key was revoked or has expired; sign in again")
    viewer = Viewer(key.company_id, key.id, key.scopes)
    if not viewer.may(scope):
        raise InsufficientScope(f"This page needs an API key with the {scope!r} scope")
    return viewer


def sign_in_location(request: web.Request) -> str:
    return f"/ui/signin?next={quote(request.path_qs, safe='')}"


@web.middleware
async def ui_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(PREFIX) or request.path.startswith(STATIC):
        return await handler(request)
    try:
        if request.method == "POST":
            await _check_csrf(request)
        response = await handler(request)
    except SignInRequired:
        if request.method == "GET" and not request.headers.get("HX-Request"):
            response = see_other(sign_in_location(request))
        else:
            response = _error_page(request, SignInRequired())
    except ServiceError as exc:
        response = _error_page(request, exc)
    except web.HTTPNotFound:
        response = _error_page(request, NotFound("There is no such page"))
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def _check_csrf(request: web.Request) -> None:
    form = await request.post()
    token = form.get(CSRF_FIELD)
    if not signer(request).csrf_ok(session_of(request), token if isinstance(token, str) else None):
        raise CsrfRejected()


def _error_page(request: web.Request, exc: ServiceError) -> web.Response:
    status = 403 if isinstance(exc, InsufficientScope) else exc.status
    fields = [error.as_dict() for error in exc.fields] if isinstance(exc, ValidationFailed) else []
    context = {"status": status, "code": exc.code, "message": exc.message, "fields": fields}
    response = render(request, "error.html", context, status=status)
    response.headers.update(exc.headers())
    return response
