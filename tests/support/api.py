"""Talking to the gateway in API tests: tenants with keys, request bodies that are valid, and the
requests and answers every resource's tests share."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from service.accounts import api_keys, tenants
from service.db.postgres import Pool
from service.domain.apikeys import SCOPES
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
# Every agent_eval scope, and enough of /agents to set a case up: what an evaluation key holds.
EVAL_SCOPES = (
    "agent_eval:read",
    "agent_eval:create",
    "agent_eval:update",
    "agent_eval:delete",
    "agent_eval:run",
    "agents:read",
    "agents:create",
)


async def make_tenant(
    pool: Pool,
    name: str = "Acme",
    *,
    scopes: Sequence[str] = SCOPES,
    credits_cents: int = 100_000,
    rate_limit: int = 10_000,
) -> Tenant:
    company = await tenants.create_company(pool, name, credits_cents=credits_cents)
    issued = await api_keys.issue_api_key(
        pool, company.id, name="tests", scopes=list(scopes), rate_limit_per_minute=rate_limit
    )
    return Tenant(str(company.id), issued.key)


async def key_for(pool: Pool, tenant: Tenant, scopes: Sequence[str], *, rate_limit: int = 10_000) -> Tenant:
    """Another key of the same company, with only `scopes`."""
    issued = await api_keys.issue_api_key(
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


# The resources a case refers to: where each lives, and a valid body for one.
COLLECTIONS = {"agent": "/agents", "persona": "/agent-eval/personas", "suite": "/agent-eval/suites"}
BODIES: dict[str, Callable[..., Json]] = {"agent": agent_body, "persona": persona_body, "suite": suite_body}


async def created(client: Client, tenant: Tenant, path: str, body: Json) -> Json:
    """POST `body` and return the created resource (asserting 201)."""
    response = await client.post(path, json=body, headers=tenant.headers())
    payload: Json = await response.json()
    assert response.status == 201, payload
    return payload


@dataclass(frozen=True)
class World:
    """An agent and a persona of one company: what a case needs."""

    agent: Json
    persona: Json

    def body(self, **overrides: object) -> Json:
        return {**case_body(self.agent["id"], self.persona["id"]), **overrides}


async def make_world(client: Client, tenant: Tenant) -> World:
    agent = await created(client, tenant, COLLECTIONS["agent"], agent_body())
    persona = await created(client, tenant, COLLECTIONS["persona"], persona_body())
    return World(agent, persona)


async def deleted(client: Client, tenant: Tenant, path: str) -> None:
    """DELETE `path` (asserting 204)."""
    response = await client.delete(path, headers=tenant.headers())
    assert response.status == 204


async def unusable_id(client: Client, tenant: Tenant, stranger: Tenant, resource: str, how: str) -> str:
    """An id of `resource` that `tenant` cannot use: another company's, deleted, or never created."""
    if how == "missing":
        return str(uuid.uuid4())
    made = await created(
        client, stranger if how == "foreign" else tenant, COLLECTIONS[resource], BODIES[resource]()
    )
    if how == "deleted":
        await deleted(client, tenant, f"{COLLECTIONS[resource]}/{made['id']}")
    return str(made["id"])


async def listed(client: Client, tenant: Tenant, url: str) -> Json:
    """GET a page of a collection (asserting 200)."""
    response = await client.get(url, headers=tenant.headers())
    page: Json = await response.json()
    assert response.status == 200, page
    return page


async def refused_field(response: ClientResponse, field: str) -> Json:
    """Assert a 400 VALIDATION_ERROR naming `field`; return the body."""
    body: Json = await response.json()
    assert (response.status, body["code"]) == (400, "VALIDATION_ERROR"), body
    assert field in [f["field"] for f in body["fields"]], body
    return body


async def not_found(response: ClientResponse) -> Json:
    """Assert a 404 NOT_FOUND; return the body."""
    body: Json = await response.json()
    assert (response.status, body["code"]) == (404, "NOT_FOUND"), body
    return body


async def insufficient_scope(response: ClientResponse, scope: str) -> None:
    """Assert a 401 INSUFFICIENT_SCOPE that names the missing `scope`."""
    body: Json = await response.json()
    assert (response.status, body["code"]) == (401, "INSUFFICIENT_SCOPE")
    assert scope in body["error"]


async def refused_query(client: Client, tenant: Tenant, url: str) -> None:
    """Assert GET `url` is a 400 VALIDATION_ERROR whose first field is in the query string."""
    response = await client.get(url, headers=tenant.headers())
    body = await response.json()
    assert (response.status, body["code"]) == (400, "VALIDATION_ERROR")
    assert body["fields"][0]["field"].startswith("query.")


async def refused_bad_path_id(client: Client, tenant: Tenant, method: str, collection: str) -> None:
    """Assert `method` on an id that is not a UUID is a 400 VALIDATION_ERROR naming `path.id`."""
    response = await client.request(method, f"{collection}/not-a-uuid", json={}, headers=tenant.headers())
    body = await response.json()
    assert (response.status, body["code"], body["fields"][0]["field"]) == (400, "VALIDATION_ERROR", "path.id")


async def looks_missing(client: Client, tenant: Tenant, method: str, collection: str, theirs_id: str) -> None:
    """Assert `method` on another company's `theirs_id` answers exactly as on an id never created."""
    missing_id = str(uuid.uuid4())
    missing = await client.request(
        method, f"{collection}/{missing_id}", json={"name": "Mine"}, headers=tenant.headers()
    )
    foreign = await client.request(
        method, f"{collection}/{theirs_id}", json={"name": "Mine"}, headers=tenant.headers()
    )
    assert (missing.status, foreign.status) == (404, 404)
    missing_body, foreign_body = await missing.json(), await foreign.json()
    assert foreign_body == {**missing_body, "error": missing_body["error"].replace(missing_id, theirs_id)}


async def gone(client: Client, tenant: Tenant, url: str) -> None:
    """Assert get, patch and delete of a deleted resource's `url` all answer 404 NOT_FOUND."""
    for method in ("get", "patch", "delete"):
        response = await client.request(method, url, json={}, headers=tenant.headers())
        await not_found(response)


async def refused_without_scope(
    client: Client,
    pool: Pool,
    tenant: Tenant,
    method: str,
    url: str,
    body: Json,
    scope: str,
    held: Sequence[str],
) -> None:
    """Assert a key holding every scope of `held` but `scope` is refused with 401 INSUFFICIENT_SCOPE."""
    narrow = await key_for(pool, tenant, [s for s in held if s != scope])
    response = await client.request(method, url, json=body, headers=narrow.headers())
    await insufficient_scope(response, scope)


async def allowed_with_scope(
    client: Client, pool: Pool, tenant: Tenant, method: str, url: str, body: Json, scope: str
) -> None:
    """Assert a key holding only `scope` succeeds."""
    allowed = await key_for(pool, tenant, [scope])
    response = await client.request(method, url, json=body, headers=allowed.headers())
    assert response.status in (200, 201, 204)


async def first_row(database_url: str, query: str) -> asyncpg.Record | None:
    """The first row of `query`, read on a connection of its own (not the app's pool)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow(query)
    finally:
        await conn.close()


async def row_count(database_url: str, table: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def soft_deleted(database_url: str, table: str, resource_id: str) -> None:
    """Assert `table`'s only row is `resource_id`, kept with `deleted_at` set."""
    row = await first_row(database_url, f"SELECT id, deleted_at FROM {table}")
    assert row is not None
    assert (str(row["id"]), row["deleted_at"] is not None) == (resource_id, True)
