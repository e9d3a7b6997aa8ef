"""Webhook fixtures: a real receiver, the gateway allowed to call it (loopback), a tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from pytest_aiohttp.plugin import AiohttpClient

from service.core.settings import Settings
from service.db.postgres import Pool
from service.gateway.app import create_app
from tests.support.api import Client
from tests.support.clock import ManualClock
from tests.support.live import ADMIN_TOKEN
from tests.support.receiver import Receiver, running_receiver


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    """Local receivers are on loopback over plain http: allowed, as in local development."""
    return settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN), "webhook_allow_private": True})


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, hook_settings: Settings, pool: Pool) -> Client:
    return await aiohttp_client(create_app(hook_settings, pool=pool))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


@pytest.fixture
async def strict_client(aiohttp_client: AiohttpClient, hook_settings: Settings, pool: Pool) -> Client:
    """The gateway as deployed: webhook URLs must be https and reach only public addresses."""
    strict = hook_settings.model_copy(update={"webhook_allow_private": False})
    return await aiohttp_client(create_app(strict, pool=pool))


@pytest.fixture
async def keyless_client(aiohttp_client: AiohttpClient, hook_settings: Settings, pool: Pool) -> Client:
    """The gateway of a server given no AGENT_EVAL_WEBHOOK_SECRET_KEYS (same database)."""
    keyless = hook_settings.model_copy(update={"webhook_secret_keys": None})
    return await aiohttp_client(create_app(keyless, pool=pool))


@pytest.fixture
def clock() -> ManualClock:
    """A clock the test moves, on a whole second (HTTP dates in `Retry-After` have no fractions)."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0))
