"""Rendering dashboard templates with what every page needs (the CSRF token, the current path),
and the other answers a page gives: a 303 to the page a form leads to."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp_jinja2
from aiohttp import web

from service.gateway.ui.appkeys import SIGNER
from service.gateway.ui.cookies import session_of
from service.gateway.ui.sessions import CSRF_FIELD


def common(request: web.Request) -> dict[str, object]:
    """The form's CSRF token (empty while the dashboard is off) and the path, for the nav."""
    found = request.app.get(SIGNER)
    token = "" if found is None else found.csrf_token(session_of(request))
    return {"csrf_field": CSRF_FIELD, "csrf_token": token, "path": request.path}


def render(
    request: web.Request, template: str, context: Mapping[str, object], status: int = 200
) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, {**common(request), **context}, status=status)


def fragment(request: web.Request, template: str, context: Mapping[str, object]) -> str:
    return aiohttp_jinja2.render_string(template, request, {**common(request), **context})


def see_other(location: str) -> web.Response:
    """303 See Other: after a form, the browser GETs `location`."""
    return web.Response(status=303, headers={"Location": location})
