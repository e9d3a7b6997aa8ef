"""Talking to the gateway in API tests: tenants with keys, and request bodies that are valid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiohttp import web
from aiohttp.test_utils import TestClient

from service import accounts
from service.db.core import Pool
from service.domain.keys import SCOPES
from tests.support.live import ADMIN_TOKEN

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]  # response bodies as tests read them


@dataclass(frozen=True)
class Tenant:
    """A company and an API key of it."""

    company_id: str
    key: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def make_tenant(
    pool: Pool,
    name: str = "Acme",
    *,
    scopes: Sequence[str] = SCOPES,
    credits_cents: int = 100_000,
    rate_limit: int = 10_000,
) -> Tenant:
    company = await accounts.create_company(pool, name, credits_cents=credits_cents)
    issued = await accounts.issue_api_key(
        pool, company.id, name="tests", scopes=list(scopes), rate_limit_per_minute=rate_limit
    )
    return Tenant(str(company.id), issued.key)


async def key_for(pool: Pool, tenant: Tenant, scopes: Sequence[str], *, rate_limit: int = 10_000) -> Tenant:
    """Another key of the same company, with only `scopes`."""
    issued = await accounts.issue_api_key(
        pool, UUID(tenant.company_id), name="narrow", scopes=list(scopes), rate_limit_per_minute=rate_limit
    )
    return Tenant(tenant.company_id, issued.key)


def agent_body(**overrides: Any) -> Json:
    body: Json = {"name": "Support bot", "system_prompt": "You are a helpful support agent."}
    body.update(overrides)
    return body


def persona_body(**overrides: Any) -> Json:
    body: Json = {"name": "Frustrated tenant", "identity_prompt": "You are a tenant whose heating broke."}
    body.update(overrides)
    return body


def suite_body(**overrides: Any) -> Json:
    body: Json = {"name": "Regression"}
    body.update(overrides)
    return body


def case_body(agent_id: str, persona_id: str, **overrides: Any) -> Json:
    body: Json = {
        "name": "Heating complaint",
        "agent_id": agent_id,
        "persona_id": persona_id,
        "scenario": "The heating has been broken for three days.",
    }
    body.update(overrides)
    return body


async def created(client: Client, tenant: Tenant, path: str, body: Json) -> Json:
    """POST `body` and return the created resource (asserting 201)."""
    response = await client.post(path, json=body, headers=tenant.headers())
    payload: Json = await response.json()
    assert response.status == 201, payload
    return payload
