"""Driving the dashboard's forms over HTTP in tests: signing in, reading a page's CSRF token."""

from __future__ import annotations

import re

from pydantic import SecretStr
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import Settings
from service.db.postgres import Pool
from service.gateway.app import create_app
from tests.support.api import Client

TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]*)"')
UI_SECRET = "test-ui-session-secret-0123456789"


def csrf_of(html: str) -> str:
    found = TOKEN.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: Client, key: str, *, next_path: str = "/ui/runs") -> int:
    """Sign in with `key` through the form; the status of the answer (303 when it worked)."""
    page = await client.get("/ui/signin")
    token = csrf_of(await page.text())
    form = {"api_key": key, "csrf_token": token, "next": next_path}
    response = await client.post("/ui/signin", data=form, allow_redirects=False)
    return response.status


async def post_form(
    client: Client, page_path: str, action: str, fields: dict[str, str] | None = None
) -> tuple[int, str]:
    """Load `page_path`, then post its CSRF token (and `fields`) to `action`: status, Location."""
    page = await client.get(page_path)
    token = csrf_of(await page.text())
    response = await client.post(action, data={"csrf_token": token, **(fields or {})}, allow_redirects=False)
    return response.status, response.headers.get("Location", "")


async def dashboard_client(
    aiohttp_client: AiohttpClient, settings: Settings, pool: Pool, **updates: object
) -> Client:
    """The gateway with the dashboard on (a session secret, and `updates` to the settings), in
    aiohttp's test client."""
    on = settings.model_copy(update={"ui_session_secret": SecretStr(UI_SECRET), **updates})
    return await aiohttp_client(create_app(on, pool=pool))


async def get_page(client: Client, path: str) -> tuple[int, str]:
    """GET `path` without following a redirect: its status and its HTML."""
    response = await client.get(path, allow_redirects=False)
    return response.status, await response.text()
