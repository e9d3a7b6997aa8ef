"""API fixtures: the gateway on a fresh database with an admin token, two tenants, and a scripted case
of theirs."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import Settings
from service.db.postgres import Pool
from service.gateway.app import create_app
from tests.support.api import Client, Json, Tenant
from tests.support.dashboard import dashboard_client
from tests.support.live import ADMIN_TOKEN
from tests.support.run_api import MUST_SAY_REFUND, scripted_case


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN), "webhook_allow_private": False})


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, api_settings: Settings, pool: Pool) -> Client:
    return await aiohttp_client(create_app(api_settings, pool=pool))


@pytest.fixture
def ui_settings(api_settings: Settings) -> Settings:
    """The dashboard's settings: webhook receivers on loopback allowed, as in local development
    (a module may define its own)."""
    return api_settings.model_copy(update={"webhook_allow_private": True})


@pytest.fixture
async def ui(aiohttp_client: AiohttpClient, ui_settings: Settings, pool: Pool) -> Client:
    """The gateway with the dashboard on, in the test client (a module may define its own)."""
    return await dashboard_client(aiohttp_client, ui_settings, pool)


@pytest.fixture
async def case(client: Client, tenant: Tenant) -> Json:
    """A scripted refund conversation of `tenant`'s that ends when the agent hangs up."""
    return await scripted_case(client, tenant, success_criteria=[MUST_SAY_REFUND])
