"""Suite-run fixtures: the gateway on a fresh database, two tenants, and a helper that builds a
suite of scripted cases over HTTP."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import Settings
from service.db.postgres import Pool
from service.gateway.app import create_app
from tests.support.api import Client
from tests.support.live import ADMIN_TOKEN


@pytest.fixture
def suite_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN), "webhook_allow_private": True})


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, suite_settings: Settings, pool: Pool) -> Client:
    return await aiohttp_client(create_app(suite_settings, pool=pool))
