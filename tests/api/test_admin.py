"""The admin API (bearer AGENT_EVAL_ADMIN_TOKEN): absent without a token, companies, credits
through the ledger, API keys shown once and revoked idempotently."""

from __future__ import annotations

import hashlib
import re
from typing import Any
from uuid import UUID

import pytest
from aiohttp import ClientResponse
from pytest_aiohttp.plugin import AiohttpClient

from service.accounts import credits, tenants
from service.core.settings import Settings
from service.db import ledger
from service.db.postgres import Pool, connection
from service.gateway.app import create_app
from tests.support.api import ADMIN_HEADERS, Client, Json, Tenant

MISSING_ID = "01a20000-0000-7000-8000-000000000000"
KEY_FORMAT = re.compile(r"^ae_live_[0-9A-Za-z]{32}$")
COMPANY_FIELDS = {"id", "name", "balance_cents", "currency", "is_suspended", "billing_email", "created_at"}
KEY_FIELDS = {
    "id",
    "company_id",
    "name",
    "prefix",
    "scopes",
    "rate_limit_per_minute",
    "expires_at",
    "revoked_at",
    "created_at",
}
CREDIT = {"amount_cents": 100, "reason": "goodwill"}
NEW_KEY = {"name": "ci", "scopes": ["billing:read"]}

# Every admin endpoint with a body it would accept: (method, path, body).
ADMIN_ENDPOINTS: list[tuple[str, str, Json | None]] = [
    ("post", "/admin/companies", {"name": "Initech"}),
    ("get", "/admin/companies/{id}", None),
    ("patch", "/admin/companies/{id}", {"name": "Renamed"}),
    ("post", "/admin/companies/{id}/credits", CREDIT),
    ("post", "/admin/companies/{id}/api-keys", NEW_KEY),
    ("get", "/admin/companies/{id}/api-keys", None),
    ("delete", "/admin/companies/{id}/api-keys/{key_id}", None),
]
COMPANY_ENDPOINTS = [endpoint for endpoint in ADMIN_ENDPOINTS if "{id}" in endpoint[1]]


async def _json(response: ClientResponse, status: int) -> Json:
    body: Json = await response.json()
    assert response.status == status, body
    return body


async def _code(response: ClientResponse) -> tuple[int, str]:
    body: Json = await response.json()
    return response.status, body.get("code", "")


async def _admin(client: Client, method: str, path: str, body: Any = None, status: int = 200) -> Json:
    return await _json(await client.request(method, path, json=body, headers=ADMIN_HEADERS), status)


async def _company(client: Client, **body: Any) -> Json:
    return await _admin(client, "post", "/admin/companies", {"name": "Initech", **body}, 201)


async def _key_id(client: Client, company_id: str) -> str:
    """The id of the company's first key."""
    keys = await _admin(client, "get", f"/admin/companies/{company_id}/api-keys")
    key_id: str = keys["data"][0]["id"]
    return key_id


async def _entries(pool: Pool, company_id: str) -> list[ledger.LedgerEntry]:
    async with connection(pool) as conn:
        return await ledger.list_ledger_entries(conn, UUID(company_id))


async def _key_rows(pool: Pool) -> list[dict[str, Any]]:
    async with connection(pool) as conn:
        return [dict(r) for r in await conn.fetch("SELECT * FROM api_keys ORDER BY created_at, id")]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _urls(client: Client, tenant: Tenant) -> dict[str, str]:
    return {"id": tenant.company_id, "key_id": await _key_id(client, tenant.company_id)}


# --- Access -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS)
async def test_without_an_admin_token_configured_the_admin_api_does_not_exist(
    aiohttp_client: AiohttpClient,
    api_settings: Settings,
    client: Client,
    pool: Pool,
    tenant: Tenant,
    method: str,
    path: str,
    body: Json | None,
) -> None:
    url = path.format(**await _urls(client, tenant))
    closed = await aiohttp_client(
        create_app(api_settings.model_copy(update={"admin_token": None}), pool=pool)
    )
    for headers in (ADMIN_HEADERS, {}, tenant.headers()):
        response = await closed.request(method, url, json=body, headers=headers)
        assert await _code(response) == (404, "NOT_FOUND")
    assert await tenants.count_companies(pool) == 1
    assert [row["revoked_at"] for row in await _key_rows(pool)] == [None]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS)
async def test_the_admin_api_needs_the_admin_token(
    client: Client, pool: Pool, tenant: Tenant, method: str, path: str, body: Json | None
) -> None:
    url = path.format(**await _urls(client, tenant))
    refusals = [
        ({}, "MISSING_KEY"),
        ({"Authorization": "Basic dGVzdC1hZG1pbi10b2tlbg=="}, "MISSING_KEY"),
        ({"Authorization": "Bearer "}, "MISSING_KEY"),
        (_bearer("wrong-token"), "INVALID_KEY"),
        (_bearer(ADMIN_HEADERS["Authorization"].removeprefix("Bearer ") + "x"), "INVALID_KEY"),
        (tenant.headers(), "INVALID_KEY"),  # an API key, even with every scope, is not the admin token
    ]
    for headers, code in refusals:
        response = await client.request(method, url, json=body, headers=headers)
        assert await _code(response) == (401, code), headers
    assert await tenants.count_companies(pool) == 1
    assert [row["revoked_at"] for row in await _key_rows(pool)] == [None]
    assert [e.amount_cents for e in await _entries(pool, tenant.company_id)] == [100_000]


@pytest.mark.parametrize(("method", "path", "body"), COMPANY_ENDPOINTS)
async def test_an_unknown_company_is_404_on_every_company_endpoint(
    client: Client, pool: Pool, tenant: Tenant, method: str, path: str, body: Json | None
) -> None:
    url = path.format(id=MISSING_ID, key_id=await _key_id(client, tenant.company_id))
    response = await client.request(method, url, json=body, headers=ADMIN_HEADERS)
    assert await _code(response) == (404, "NOT_FOUND")
    assert await tenants.count_companies(pool) == 1
    assert [(row["company_id"], row["revoked_at"]) for row in await _key_rows(pool)] == [
        (UUID(tenant.company_id), None)
    ]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/admin/companies/nope", "path.id"),
        (f"/admin/companies/{MISSING_ID}/api-keys/nope", "path.key_id"),
    ],
)
async def test_a_bad_id_in_an_admin_path_is_a_400(client: Client, path: str, field: str) -> None:
    method = "delete" if "api-keys" in path else "get"
    response = await client.request(method, path, headers=ADMIN_HEADERS)
    body: Json = await response.json()
    assert (response.status, body["fields"][0]["field"]) == (400, field)


# --- Companies --------------------------------------------------------------------------------------


async def test_a_new_company_gets_its_opening_credits_as_a_ledger_grant(client: Client, pool: Pool) -> None:
    company = await _company(
        client, name="  Initech  ", credits_cents=5_000, billing_email="ap@initech.example"
    )
    assert set(company) == COMPANY_FIELDS
    assert (company["name"], company["balance_cents"], company["currency"]) == ("Initech", 5_000, "usd")
    assert (company["is_suspended"], company["billing_email"]) == (False, "ap@initech.example")
    [grant] = await _entries(pool, company["id"])
    assert (grant.kind, grant.amount_cents, grant.balance_after_cents, grant.reason) == (
        "grant",
        5_000,
        5_000,
        "opening balance",
    )
    assert await _admin(client, "get", f"/admin/companies/{company['id']}") == company
    assert await credits.reconcile(pool) == []


async def test_a_company_without_opening_credits_has_no_ledger_entry(client: Client, pool: Pool) -> None:
    company = await _company(client)
    assert (company["balance_cents"], company["billing_email"]) == (0, None)
    assert await _entries(pool, company["id"]) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"name": "   "}, "body.name"),
        ({"name": None}, "body.name"),
        ({"name": "x" * 201}, "body.name"),
        ({"name": "Initech", "credits_cents": -1}, "body.credits_cents"),
        ({"name": "Initech", "credits_cents": "500"}, "body.credits_cents"),
        ({"name": "Initech", "credits_cents": 1.5}, "body.credits_cents"),
        ({"name": "Initech", "credits_cents": 10**12 + 1}, "body.credits_cents"),
        ({"name": "Initech", "billing_email": "not an email"}, "body.billing_email"),
        ({"name": "Initech", "is_suspended": True}, "body.is_suspended"),
    ],
)
async def test_invalid_companies_are_refused_and_nothing_is_written(
    client: Client, pool: Pool, body: Json, field: str
) -> None:
    response = await client.post("/admin/companies", json=body, headers=ADMIN_HEADERS)
    payload = await _json(response, 400)
    assert payload["code"] == "VALIDATION_ERROR"
    assert field in [f["field"] for f in payload["fields"]], payload
    assert await tenants.count_companies(pool) == 0


async def test_patch_renames_suspends_and_clears_the_email(client: Client) -> None:
    company = await _company(client, credits_cents=700, billing_email="ap@initech.example")
    url = f"/admin/companies/{company['id']}"
    renamed = await _admin(client, "patch", url, {"name": "Initrode"})
    assert renamed == {**company, "name": "Initrode"}
    suspended = await _admin(client, "patch", url, {"is_suspended": True})
    assert suspended == {**renamed, "is_suspended": True}
    cleared = await _admin(client, "patch", url, {"billing_email": None, "is_suspended": False})
    assert cleared == {**renamed, "billing_email": None}
    assert await _admin(client, "patch", url, {}) == cleared
    assert await _admin(client, "get", url) == cleared


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"name": None}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"is_suspended": None}, "body.is_suspended"),
        ({"is_suspended": "yes"}, "body.is_suspended"),
        ({"billing_email": "nope"}, "body.billing_email"),
        ({"balance_cents": 1_000_000}, "body.balance_cents"),
    ],
)
async def test_invalid_company_patches_are_refused_and_change_nothing(
    client: Client, patch: Json, field: str
) -> None:
    company = await _company(client, credits_cents=700)
    url = f"/admin/companies/{company['id']}"
    payload = await _json(await client.patch(url, json=patch, headers=ADMIN_HEADERS), 400)
    assert [f["field"] for f in payload["fields"]] == [field], payload
    assert await _admin(client, "get", url) == company


# --- Credits ----------------------------------------------------------------------------------------


async def test_a_grant_and_a_deduction_are_ledger_entries_that_move_the_balance(
    client: Client, pool: Pool
) -> None:
    company = await _company(client, credits_cents=1_000)
    url = f"/admin/companies/{company['id']}/credits"
    grant = await _admin(client, "post", url, {"amount_cents": 250, "reason": "goodwill"}, 201)
    assert grant == {
        "company_id": company["id"],
        "entry_id": grant["entry_id"],
        "kind": "grant",
        "amount_cents": 250,
        "balance_cents": 1_250,
    }
    deduction = await _admin(client, "post", url, {"amount_cents": -1_250, "reason": "clawback"}, 201)
    assert (deduction["kind"], deduction["amount_cents"], deduction["balance_cents"]) == (
        "deduction",
        -1_250,
        0,
    )
    entries = await _entries(pool, company["id"])
    assert [(str(e.id), e.kind, e.amount_cents, e.balance_after_cents, e.reason) for e in entries[1:]] == [
        (grant["entry_id"], "grant", 250, 1_250, "goodwill"),
        (deduction["entry_id"], "deduction", -1_250, 0, "clawback"),
    ]
    assert (await _admin(client, "get", f"/admin/companies/{company['id']}"))["balance_cents"] == 0


async def test_a_deduction_beyond_the_balance_is_refused_and_writes_nothing(
    client: Client, pool: Pool
) -> None:
    company = await _company(client, credits_cents=1_000)
    response = await client.post(
        f"/admin/companies/{company['id']}/credits",
        json={"amount_cents": -1_001, "reason": "too much"},
        headers=ADMIN_HEADERS,
    )
    payload = await _json(response, 400)
    assert payload["code"] == "VALIDATION_ERROR"
    assert [f["field"] for f in payload["fields"]] == ["body.amount_cents"], payload
    assert [e.amount_cents for e in await _entries(pool, company["id"])] == [1_000]
    assert (await _admin(client, "get", f"/admin/companies/{company['id']}"))["balance_cents"] == 1_000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount_cents": 0, "reason": "nothing"}, "body.amount_cents"),
        ({"amount_cents": "100", "reason": "text"}, "body.amount_cents"),
        ({"amount_cents": 1.5, "reason": "float"}, "body.amount_cents"),
        ({"amount_cents": 10**12 + 1, "reason": "huge"}, "body.amount_cents"),
        ({"amount_cents": 100}, "body.reason"),
        ({"amount_cents": 100, "reason": ""}, "body.reason"),
        ({"amount_cents": 100, "reason": "x", "kind": "refund"}, "body.kind"),
    ],
)
async def test_invalid_credit_adjustments_are_refused_and_write_nothing(
    client: Client, pool: Pool, body: Json, field: str
) -> None:
    company = await _company(client, credits_cents=1_000)
    response = await client.post(
        f"/admin/companies/{company['id']}/credits", json=body, headers=ADMIN_HEADERS
    )
    payload = await _json(response, 400)
    assert field in [f["field"] for f in payload["fields"]], payload
    assert [e.amount_cents for e in await _entries(pool, company["id"])] == [1_000]


async def test_the_books_balance_after_every_kind_of_credit_operation(client: Client, pool: Pool) -> None:
    first, second = await _company(client, credits_cents=500), await _company(client, name="Globex")
    for company_id, amount, status in (
        (first["id"], 300, 201),
        (first["id"], -800, 201),
        (first["id"], -1, 400),
        (first["id"], 0, 400),
        (second["id"], 42, 201),
        (MISSING_ID, 10, 404),
    ):
        response = await client.post(
            f"/admin/companies/{company_id}/credits",
            json={"amount_cents": amount, "reason": "ops"},
            headers=ADMIN_HEADERS,
        )
        assert response.status == status, (company_id, amount)
    balances = [
        (await _admin(client, "get", f"/admin/companies/{c['id']}"))["balance_cents"] for c in (first, second)
    ]
    assert balances == [0, 42]
    assert await credits.reconcile(pool) == []


# --- API keys ---------------------------------------------------------------------------------------


async def test_a_new_key_is_shown_once_in_its_format_and_works_at_once(client: Client, pool: Pool) -> None:
    company = await _company(client, credits_cents=100)
    issued = await _admin(client, "post", f"/admin/companies/{company['id']}/api-keys", NEW_KEY, 201)
    assert set(issued) == KEY_FIELDS | {"key"}
    assert KEY_FORMAT.fullmatch(issued["key"]), issued["key"]
    assert issued["prefix"] == issued["key"][:12]
    assert (issued["company_id"], issued["name"], issued["scopes"]) == (company["id"], "ci", ["billing:read"])
    assert (issued["rate_limit_per_minute"], issued["expires_at"], issued["revoked_at"]) == (60, None, None)

    response = await client.get("/billing", headers=_bearer(issued["key"]))
    assert (await _json(response, 200))["balance_cents"] == 100
    assert response.headers["X-RateLimit-Limit"] == "60"
    assert await _code(await client.get("/agents", headers=_bearer(issued["key"]))) == (
        401,
        "INSUFFICIENT_SCOPE",
    )

    [row] = await _key_rows(pool)
    assert row["key_sha256"] == hashlib.sha256(issued["key"].encode()).digest()
    assert row["prefix"] == issued["prefix"]
    assert issued["key"] not in [value for value in row.values() if isinstance(value, str)]


async def test_a_key_keeps_its_limit_expiry_and_distinct_scopes(client: Client) -> None:
    company = await _company(client)
    body = {
        "name": "limited",
        "scopes": ["agents:read", "billing:read", "agents:read"],
        "rate_limit_per_minute": 5,
        "expires_at": "2099-01-01T00:00:00Z",
    }
    issued = await _admin(client, "post", f"/admin/companies/{company['id']}/api-keys", body, 201)
    assert (issued["scopes"], issued["rate_limit_per_minute"]) == (["agents:read", "billing:read"], 5)
    assert issued["expires_at"].startswith("2099-01-01T00:00:00")
    response = await client.get("/agents", headers=_bearer(issued["key"]))
    assert (response.status, response.headers["X-RateLimit-Limit"]) == (200, "5")
    other = await _admin(client, "post", f"/admin/companies/{company['id']}/api-keys", body, 201)
    assert other["key"] != issued["key"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "k", "scopes": ["billing:manage"]}, "body.scopes.0"),
        ({"name": "k", "scopes": ["billing:read", "admin"]}, "body.scopes.1"),
        ({"name": "k", "scopes": []}, "body.scopes"),
        ({"name": "k"}, "body.scopes"),
        ({"name": "k", "scopes": "billing:read"}, "body.scopes"),
        ({"scopes": ["billing:read"]}, "body.name"),
        ({"name": "k", "scopes": ["billing:read"], "rate_limit_per_minute": 0}, "body.rate_limit_per_minute"),
        ({"name": "k", "scopes": ["billing:read"], "expires_at": "2099-01-01T00:00:00"}, "body.expires_at"),
        ({"name": "k", "scopes": ["billing:read"], "key": "ae_live_" + "A" * 32}, "body.key"),
    ],
)
async def test_invalid_keys_are_refused_and_nothing_is_written(
    client: Client, pool: Pool, body: Json, field: str
) -> None:
    company = await _company(client)
    response = await client.post(
        f"/admin/companies/{company['id']}/api-keys", json=body, headers=ADMIN_HEADERS
    )
    payload = await _json(response, 400)
    assert payload["code"] == "VALIDATION_ERROR"
    assert field in [f["field"] for f in payload["fields"]], payload
    assert await _key_rows(pool) == []


async def test_listing_keys_never_shows_a_key(client: Client, tenant: Tenant) -> None:
    url = f"/admin/companies/{tenant.company_id}/api-keys"
    issued = [await _admin(client, "post", url, {**NEW_KEY, "name": f"k{i}"}, 201) for i in range(2)]
    response = await client.get(url, headers=ADMIN_HEADERS)
    listed = await _json(response, 200)
    assert [k["name"] for k in listed["data"]] == ["tests", "k0", "k1"]
    assert all(set(k) == KEY_FIELDS for k in listed["data"])
    assert listed["data"][1:] == [{f: k[f] for f in KEY_FIELDS} for k in issued]
    text = await response.text()
    assert tenant.key not in text
    assert not any(k["key"] in text for k in issued)


async def test_revoking_a_key_is_immediate_and_idempotent(client: Client, tenant: Tenant) -> None:
    base = f"/admin/companies/{tenant.company_id}/api-keys"
    issued = await _admin(client, "post", base, NEW_KEY, 201)
    first = await _admin(client, "delete", f"{base}/{issued['id']}")
    assert first["revoked_at"] is not None
    assert first == {**{f: issued[f] for f in KEY_FIELDS}, "revoked_at": first["revoked_at"]}
    again = await _admin(client, "delete", f"{base}/{issued['id']}")
    assert again == first
    listed = await _admin(client, "get", base)
    assert [k["revoked_at"] for k in listed["data"]] == [None, first["revoked_at"]]
    assert await _code(await client.get("/billing", headers=_bearer(issued["key"]))) == (401, "INVALID_KEY")
    assert (await client.get("/billing", headers=tenant.headers())).status == 200


async def test_another_companys_key_cannot_be_revoked_through_this_company(
    client: Client, tenant: Tenant, stranger: Tenant
) -> None:
    their_key = await _key_id(client, stranger.company_id)
    for key_id in (their_key, MISSING_ID):
        response = await client.delete(
            f"/admin/companies/{tenant.company_id}/api-keys/{key_id}", headers=ADMIN_HEADERS
        )
        assert await _code(response) == (404, "NOT_FOUND")
    listed = await _admin(client, "get", f"/admin/companies/{stranger.company_id}/api-keys")
    assert [k["revoked_at"] for k in listed["data"]] == [None]
    assert (await client.get("/billing", headers=stranger.headers())).status == 200
