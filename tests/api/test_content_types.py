"""One JSON content type: successes, errors (from handlers, from routing, from validation) and
the generated documents all carry exactly the same `Content-Type`."""

from __future__ import annotations

from uuid import UUID

from tests.support.api import ADMIN_HEADERS, Client, Tenant, agent_body

JSON = "application/json"


async def test_successes_and_errors_carry_the_same_json_content_type(client: Client, tenant: Tenant) -> None:
    answers = {
        "201 created": await client.post("/agents", json=agent_body(), headers=tenant.headers()),
        "200 list": await client.get("/agents", headers=tenant.headers()),
        "201 admin": await client.post("/admin/companies", json={"name": "Acme"}, headers=ADMIN_HEADERS),
        "200 openapi": await client.get("/openapi.json"),
        "200 healthz": await client.get("/healthz"),
        "200 readyz": await client.get("/readyz"),
        "400 query": await client.get("/agents?limit=1000", headers=tenant.headers()),
        "400 body": await client.post("/agents", json={"name": 5}, headers=tenant.headers()),
        "401 no key": await client.get("/agents"),
        "404 missing": await client.get(f"/agents/{UUID(int=1)}", headers=tenant.headers()),
        "404 no route": await client.get("/no-such-endpoint"),
        "405 method": await client.put("/agents", headers=tenant.headers()),
    }
    statuses = {what: int(what.split()[0]) for what in answers}
    assert {what: response.status for what, response in answers.items()} == statuses
    assert {what: response.headers["Content-Type"] for what, response in answers.items()} == dict.fromkeys(
        answers, JSON
    )
