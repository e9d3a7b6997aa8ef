"""The web dashboard at `/ui/`, served by the gateway itself (no build step, nothing from a CDN).

Server-rendered HTML (Jinja2 through aiohttp-jinja2) that reads fully without JavaScript; two
vendored, pinned scripts (htmx 2.0.11 and its SSE extension 2.2.4, licences beside them under
`static/`) add live updates. Sign-in is with an API key; the session cookie, CSRF tokens and
security headers are in `access` and `sessions`. Every page shows only the key's company's data
and checks the key's scopes, like the API.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from service.core.settings import Settings
from service.gateway.ui import billing, cases, live, runs, signin, suites, webhooks
from service.gateway.ui.appkeys import SIGNER
from service.gateway.ui.rendering import see_other
from service.gateway.ui.sessions import SessionSigner
from service.gateway.ui.views import money, outcome_of, when

STATIC_DIR = Path(__file__).parent / "static"
PAGES = (signin, runs, live, cases, suites, billing, webhooks)  # each module adds its routes (`add_routes`)


async def _home(_: web.Request) -> web.StreamResponse:
    return see_other(signin.HOME)


def setup_ui(app: web.Application, settings: Settings) -> None:
    """Templates, static files and the dashboard's routes; the signer only when a secret is set."""
    secret = settings.ui_session_secret.get_secret_value().strip() if settings.ui_session_secret else ""
    if secret:
        app[SIGNER] = SessionSigner(secret, max_age_s=settings.ui_session_hours * 3600)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("service.gateway.ui", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(money=money, when=when)
    env.globals.update(outcome_of=outcome_of)
    router = app.router
    router.add_get("/ui", _home)
    router.add_get("/ui/", _home)
    for pages in PAGES:
        pages.add_routes(router)
    router.add_static("/ui/static/", STATIC_DIR, append_version=True)
