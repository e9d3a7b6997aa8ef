"""A real gateway on a real port, in a background thread with its own event loop, for clients
that are not asyncio (schemathesis, load generators)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import SecretStr

from service.accounts import api_keys, tenants
from service.core.settings import Settings
from service.db.postgres import create_pool
from service.domain.apikeys import SCOPES
from service.gateway.app import create_app
from service.runtime.serving import serving

ADMIN_TOKEN = "test-admin-token"
TEST_WEBHOOK_KEY = "tXeoFN7mZcT1XWCwxEfQ5l0d3zV2i9qJ6uYk8pHgRbA="  # a Fernet key for tests only


@dataclass(frozen=True)
class LiveGateway:
    base_url: str
    key: str
    admin_token: str


@contextmanager
def live_gateway(database_url: str, *, rate_limit: int = 1_000_000) -> Iterator[LiveGateway]:
    """Serve the gateway on 127.0.0.1 (a free port) with one company and an all-scopes key."""
    ready: dict[str, LiveGateway] = {}
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        settings = Settings(
            database_url=SecretStr(database_url),
            admin_token=SecretStr(ADMIN_TOKEN),
            default_wait_s=0,
            webhook_allow_private=True,
            webhook_secret_keys=SecretStr(TEST_WEBHOOK_KEY),
            log_level="warning",
        )
        pool = await create_pool(database_url, min_size=2, max_size=10)
        try:
            company = await tenants.create_company(pool, "Live", credits_cents=1_000_000)
            issued = await api_keys.issue_api_key(
                pool, company.id, name="live", scopes=list(SCOPES), rate_limit_per_minute=rate_limit
            )
            async with serving(create_app(settings, pool=pool), "127.0.0.1", 0) as url:
                ready["gateway"] = LiveGateway(url, issued.key, ADMIN_TOKEN)
                started.set()
                await stop.wait()
        finally:
            await pool.close()
            started.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(60)
    try:
        if "gateway" not in ready:
            raise RuntimeError("the live gateway did not start")
        yield ready["gateway"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
