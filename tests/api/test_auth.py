"""Who may call what: API keys (missing, unknown, malformed, revoked, expired, wrong scope), the
public endpoints, tenancy between companies, and per-key rate limits shared by every gateway."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from aiohttp import ClientResponse
from multidict import CIMultiDictProxy
from pytest_aiohttp.plugin import AiohttpClient

from service.accounts import api_keys
from service.core.settings import Settings
from service.db.postgres import Pool
from service.gateway.app import create_app
from tests.support.api import (
    ADMIN_HEADERS,
    Client,
    Json,
    Tenant,
    World,
    agent_body,
    created,
    insufficient_scope,
    key_for,
    make_world,
    persona_body,
    suite_body,
)
from tests.support.waiting import eventually

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")
UNKNOWN_KEY = "ae_live_" + "A" * 32
MISSING_ID = "01a20000-0000-7000-8000-000000000000"


@dataclass(frozen=True)
class Seen:
    """One response as a test needs it after the fact, with when the request was sent and answered."""

    status: int
    headers: CIMultiDictProxy[str]
    body: Json
    sent_at: float
    received_at: float


async def _send(client: Client, method: str, path: str, headers: dict[str, str], json: Any = None) -> Seen:
    sent_at = time.time()
    response = await client.request(method, path, headers=headers, json=json)
    body: Json = await response.json() if response.content_type == "application/json" else {}
    return Seen(response.status, response.headers, body, sent_at, time.time())


def _limits(seen: Seen) -> tuple[int, int, int]:
    """(limit, remaining, reset) from the rate-limit headers."""
    limit, remaining, reset = (int(seen.headers[name]) for name in RATE_HEADERS)
    return limit, remaining, reset


async def _in_one_window(burst: Callable[[], Awaitable[list[Seen]]]) -> list[Seen]:
    """Run `burst` (which uses a fresh key each time) until all its responses fall in one window.

    A 60-second window boundary can fall between two requests; then the count restarts and the
    expectations no longer hold, so the burst is simply repeated with a new key.
    """
    for _ in range(3):
        seen = await burst()
        if len({s.headers.get("X-RateLimit-Reset") for s in seen}) == 1:
            return seen
    raise AssertionError("three bursts in a row straddled a rate-limit window boundary")


async def _code(response: ClientResponse) -> tuple[int, str]:
    body: Json = await response.json()
    return response.status, body.get("code", "")


async def _admin_key(client: Client, company_id: str, **body: Any) -> Json:
    """A key issued through the admin API (the body includes the key, shown this once)."""
    response = await client.post(
        f"/admin/companies/{company_id}/api-keys",
        json={"name": "issued", "scopes": ["billing:read"], **body},
        headers=ADMIN_HEADERS,
    )
    issued: Json = await response.json()
    assert response.status == 201, issued
    return issued


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- Authentication ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": UNKNOWN_KEY},
        {"X-API-Key": UNKNOWN_KEY},
    ],
)
async def test_a_request_without_a_bearer_key_is_missing_key(client: Client, headers: dict[str, str]) -> None:
    response = await client.get("/billing", headers=headers)
    assert await _code(response) == (401, "MISSING_KEY")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert not any(name in response.headers for name in RATE_HEADERS)


async def test_a_well_formed_but_unknown_key_is_invalid(client: Client) -> None:
    response = await client.get("/billing", headers=_bearer(UNKNOWN_KEY))
    assert await _code(response) == (401, "INVALID_KEY")
    assert not any(name in response.headers for name in RATE_HEADERS)


@pytest.mark.parametrize(
    "key",
    [
        "nonsense",
        "ae_live_short",
        "ae_live_" + "A" * 31,
        "ae_live_" + "A" * 33,
        "ae_test_" + "A" * 32,
        "ae_live_" + "A" * 31 + "-",
        "AE_LIVE_" + "A" * 32,
    ],
)
async def test_a_malformed_key_is_invalid(client: Client, key: str) -> None:
    assert await _code(await client.get("/billing", headers=_bearer(key))) == (401, "INVALID_KEY")


async def test_a_valid_key_with_any_case_of_bearer_is_accepted(client: Client, tenant: Tenant) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = await client.get("/billing", headers={"Authorization": f"{scheme} {tenant.key}"})
        assert response.status == 200, scheme


async def test_a_key_with_one_character_changed_is_invalid(client: Client, tenant: Tenant) -> None:
    altered = tenant.key[:-1] + ("B" if tenant.key[-1] != "B" else "C")
    response = await client.get("/billing", headers=_bearer(altered))
    assert await _code(response) == (401, "INVALID_KEY")


async def test_a_revoked_key_is_refused_at_once_by_the_process_that_revoked_it(
    client: Client, tenant: Tenant
) -> None:
    issued = await _admin_key(client, tenant.company_id)
    assert (await client.get("/billing", headers=_bearer(issued["key"]))).status == 200  # now cached
    revoke = await client.delete(
        f"/admin/companies/{tenant.company_id}/api-keys/{issued['id']}", headers=ADMIN_HEADERS
    )
    assert revoke.status == 200
    assert await _code(await client.get("/billing", headers=_bearer(issued["key"]))) == (401, "INVALID_KEY")
    assert (await client.get("/billing", headers=tenant.headers())).status == 200  # other keys still work


async def test_another_process_refuses_a_revoked_key_within_5_s(
    client: Client, aiohttp_client: AiohttpClient, api_settings: Settings, tenant: Tenant
) -> None:
    other = await aiohttp_client(create_app(api_settings))  # its own pool and key cache
    issued = await _admin_key(client, tenant.company_id, rate_limit_per_minute=1_000_000)
    assert (await other.get("/billing", headers=_bearer(issued["key"]))).status == 200  # cached there
    revoke = await client.delete(
        f"/admin/companies/{tenant.company_id}/api-keys/{issued['id']}", headers=ADMIN_HEADERS
    )
    assert revoke.status == 200
    revoked_at = time.monotonic()  # the revocation committed before this moment
    accepted_after_revocation: list[float] = []  # seconds after `revoked_at` each acceptance was asked

    async def code_on_the_other_app() -> str:
        sent = time.monotonic() - revoked_at
        response = await other.get("/billing", headers=_bearer(issued["key"]))
        if response.status == 200:
            accepted_after_revocation.append(sent)
            return "accepted"
        return (await _code(response))[1]

    code = await eventually(
        code_on_the_other_app,
        until=lambda c: c != "accepted",
        timeout_s=6.0,  # the bound itself is checked on the send times below
        interval_s=0.05,
        what="the other app to notice the revocation",
    )
    assert code == "INVALID_KEY"
    assert all(sent < 5.0 for sent in accepted_after_revocation), accepted_after_revocation
    assert await _code(await other.get("/billing", headers=_bearer(issued["key"]))) == (401, "INVALID_KEY")


async def test_a_key_created_already_expired_is_expired(client: Client, tenant: Tenant) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    issued = await _admin_key(client, tenant.company_id, expires_at=past)
    response = await client.get("/billing", headers=_bearer(issued["key"]))
    assert await _code(response) == (401, "EXPIRED_KEY")
    assert not any(name in response.headers for name in RATE_HEADERS)


async def test_a_key_issued_with_a_past_expiry_is_expired(client: Client, pool: Pool, tenant: Tenant) -> None:
    issued = await api_keys.issue_api_key(
        pool,
        UUID(tenant.company_id),
        name="old",
        scopes=["billing:read"],
        expires_at=datetime.now(UTC) - timedelta(days=1),
    )
    assert await _code(await client.get("/billing", headers=_bearer(issued.key))) == (401, "EXPIRED_KEY")


async def test_a_cached_key_still_expires_on_time(client: Client, tenant: Tenant) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=1.5)
    issued = await _admin_key(
        client, tenant.company_id, expires_at=expires.isoformat(), rate_limit_per_minute=1_000_000
    )
    assert (await client.get("/billing", headers=_bearer(issued["key"]))).status == 200

    async def code() -> str:
        response = await client.get("/billing", headers=_bearer(issued["key"]))
        return "accepted" if response.status == 200 else (await _code(response))[1]

    assert (
        await eventually(code, until=lambda c: c != "accepted", timeout_s=3.0, interval_s=0.05)
        == "EXPIRED_KEY"
    )
    assert datetime.now(UTC) >= expires


async def test_revocation_wins_over_expiry(client: Client, tenant: Tenant) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    issued = await _admin_key(client, tenant.company_id, expires_at=past)
    revoke = await client.delete(
        f"/admin/companies/{tenant.company_id}/api-keys/{issued['id']}", headers=ADMIN_HEADERS
    )
    assert revoke.status == 200
    assert await _code(await client.get("/billing", headers=_bearer(issued["key"]))) == (401, "INVALID_KEY")


@pytest.mark.parametrize(
    ("path", "scope", "granted"),
    [
        ("/billing", "billing:read", ["agents:read", "agent_eval:read"]),
        ("/billing/consumption", "billing:read", ["agents:read"]),
        ("/agents", "agents:read", ["agent_eval:read", "billing:read"]),
        ("/agent-eval/personas", "agent_eval:read", ["agents:read"]),
        ("/agent-eval/suites", "agent_eval:read", ["agent_eval:create"]),
    ],
)
async def test_a_key_without_the_endpoints_scope_is_insufficient_scope(
    client: Client, pool: Pool, tenant: Tenant, path: str, scope: str, granted: list[str]
) -> None:
    narrow = await key_for(pool, tenant, granted)
    await insufficient_scope(await client.get(path, headers=narrow.headers()), scope)
    allowed = await key_for(pool, tenant, [scope])
    assert (await client.get(path, headers=allowed.headers())).status == 200


@pytest.mark.parametrize("path", PUBLIC_PATHS)
async def test_public_endpoints_need_no_key_and_are_not_rate_limited(
    client: Client, pool: Pool, tenant: Tenant, path: str
) -> None:
    for headers in ({}, _bearer("garbage"), _bearer(UNKNOWN_KEY)):
        response = await client.get(path, headers=headers)
        assert response.status == 200, (path, headers)
        assert not any(name in response.headers for name in RATE_HEADERS)
    once = await key_for(pool, tenant, ["billing:read"], rate_limit=1)
    for _ in range(3):
        response = await client.get(path, headers=once.headers())
        assert response.status == 200
        assert not any(name in response.headers for name in RATE_HEADERS)
    keyed = await _send(client, "GET", "/billing", once.headers())
    assert (keyed.status, _limits(keyed)[:2]) == (200, (1, 0))  # the public requests did not count


# --- Tenancy ----------------------------------------------------------------------------------------


async def _resource(client: Client, owner: Tenant, kind: str) -> tuple[str, Json]:
    """The collection path and one new resource of `kind` owned by `owner`."""
    if kind == "agents":
        return "/agents", await created(client, owner, "/agents", agent_body())
    if kind == "personas":
        return "/agent-eval/personas", await created(client, owner, "/agent-eval/personas", persona_body())
    if kind == "suites":
        return "/agent-eval/suites", await created(client, owner, "/agent-eval/suites", suite_body())
    world = await make_world(client, owner)
    return "/agent-eval/cases", await created(client, owner, "/agent-eval/cases", world.body())


@pytest.mark.parametrize("kind", ["agents", "personas", "cases", "suites"])
async def test_a_company_never_sees_or_touches_another_companys_resources(
    client: Client, tenant: Tenant, stranger: Tenant, kind: str
) -> None:
    base, theirs = await _resource(client, stranger, kind)
    _, ours = await _resource(client, tenant, kind)
    url = f"{base}/{theirs['id']}"
    before: Json = await (await client.get(url, headers=stranger.headers())).json()

    listed: Json = await (await client.get(base, headers=tenant.headers())).json()
    assert [item["id"] for item in listed["data"]] == [ours["id"]]
    assert listed["pagination"]["total"] == 1
    for method, body in (("get", None), ("patch", {"name": "Hijacked"}), ("delete", None)):
        response = await client.request(method, url, json=body, headers=tenant.headers())
        assert await _code(response) == (404, "NOT_FOUND"), method

    after = await client.get(url, headers=stranger.headers())
    assert after.status == 200
    assert await after.json() == before
    theirs_listed: Json = await (await client.get(base, headers=stranger.headers())).json()
    assert [item["id"] for item in theirs_listed["data"]] == [theirs["id"]]


async def test_a_case_cannot_use_another_companys_agent_or_persona(
    client: Client, tenant: Tenant, stranger: Tenant
) -> None:
    theirs = await make_world(client, stranger)
    ours = await make_world(client, tenant)
    for mixed in (World(theirs.agent, ours.persona), World(ours.agent, theirs.persona)):
        response = await client.post("/agent-eval/cases", json=mixed.body(), headers=tenant.headers())
        assert await _code(response) == (404, "NOT_FOUND")
    listed: Json = await (await client.get("/agent-eval/cases", headers=tenant.headers())).json()
    assert listed["data"] == []


async def test_billing_shows_only_the_callers_own_balance_and_movements(
    client: Client, tenant: Tenant, stranger: Tenant
) -> None:
    for amount in (5_000, -1_234):
        response = await client.post(
            f"/admin/companies/{stranger.company_id}/credits",
            json={"amount_cents": amount, "reason": "test"},
            headers=ADMIN_HEADERS,
        )
        assert response.status == 201
    ours: Json = await (await client.get("/billing", headers=tenant.headers())).json()
    theirs: Json = await (await client.get("/billing", headers=stranger.headers())).json()
    assert (ours["balance_cents"], theirs["balance_cents"]) == (100_000, 103_766)
    consumption = await client.get("/billing/consumption?include_topups=true", headers=tenant.headers())
    rows: Json = await consumption.json()
    assert [(r["product"], r["total_amount_cents"], r["count"]) for r in rows["data"]] == [
        ("topup", 100_000, 1)
    ]


# --- Rate limits ------------------------------------------------------------------------------------


async def test_a_key_counts_down_to_zero_then_gets_429_with_retry_after(
    client: Client, pool: Pool, tenant: Tenant
) -> None:
    async def burst() -> list[Seen]:
        key = await key_for(pool, tenant, ["billing:read"], rate_limit=3)
        return [await _send(client, "GET", "/billing", key.headers()) for _ in range(5)]

    seen = await _in_one_window(burst)
    reset = _limits(seen[0])[2]
    assert [s.status for s in seen] == [200, 200, 200, 429, 429]
    assert [_limits(s) for s in seen] == [
        (3, 2, reset),
        (3, 1, reset),
        (3, 0, reset),
        (3, 0, reset),
        (3, 0, reset),
    ]
    assert reset % 60 == 0
    assert reset - 60 <= seen[0].received_at
    assert seen[-1].sent_at < reset  # the window's end, within 60 s of every request
    refused = seen[3]
    assert refused.body["code"] == "RATE_LIMIT"
    retry_after = int(refused.headers["Retry-After"])
    assert retry_after >= 1
    assert reset - refused.received_at - 1 <= retry_after <= max(1, reset - refused.sent_at + 1)
    assert "Retry-After" not in seen[2].headers


async def test_error_responses_carry_the_headers_and_count(
    client: Client, pool: Pool, tenant: Tenant
) -> None:
    async def burst() -> list[Seen]:
        key = await key_for(pool, tenant, ["agents:read"], rate_limit=3)
        return [
            await _send(client, "GET", f"/agents/{MISSING_ID}", key.headers()),
            await _send(client, "GET", "/agents/not-a-uuid", key.headers()),
            await _send(client, "GET", "/billing", key.headers()),
            await _send(client, "GET", "/agents", key.headers()),
        ]

    seen = await _in_one_window(burst)
    assert [(s.status, s.body["code"]) for s in seen] == [
        (404, "NOT_FOUND"),
        (400, "VALIDATION_ERROR"),
        (401, "INSUFFICIENT_SCOPE"),
        (429, "RATE_LIMIT"),
    ]
    assert [_limits(s)[:2] for s in seen] == [(3, 2), (3, 1), (3, 0), (3, 0)]


async def test_a_refused_post_writes_nothing(client: Client, pool: Pool, tenant: Tenant) -> None:
    created_count = 0

    async def burst() -> list[Seen]:
        nonlocal created_count
        key = await key_for(pool, tenant, ["agents:create"], rate_limit=1)
        seen = [await _send(client, "POST", "/agents", key.headers(), agent_body()) for _ in range(2)]
        created_count += sum(s.status == 201 for s in seen)
        return seen

    seen = await _in_one_window(burst)
    assert [s.status for s in seen] == [201, 429]
    listed: Json = await (await client.get("/agents", headers=tenant.headers())).json()
    assert listed["pagination"]["total"] == created_count


async def test_the_count_is_shared_by_every_gateway_on_the_database(
    client: Client, aiohttp_client: AiohttpClient, api_settings: Settings, pool: Pool, tenant: Tenant
) -> None:
    other = await aiohttp_client(create_app(api_settings))

    async def burst() -> list[Seen]:
        key = await key_for(pool, tenant, ["billing:read"], rate_limit=3)
        return [await _send(app, "GET", "/billing", key.headers()) for app in (client, other, client, other)]

    seen = await _in_one_window(burst)
    assert [s.status for s in seen] == [200, 200, 200, 429]
    assert [_limits(s)[1] for s in seen] == [2, 1, 0, 0]


async def test_each_key_has_its_own_count(client: Client, pool: Pool, tenant: Tenant) -> None:
    async def burst() -> list[Seen]:
        first = await key_for(pool, tenant, ["billing:read"], rate_limit=1)
        second = await key_for(pool, tenant, ["billing:read"], rate_limit=2)
        return [
            await _send(client, "GET", "/billing", first.headers()),
            await _send(client, "GET", "/billing", first.headers()),
            await _send(client, "GET", "/billing", second.headers()),
        ]

    seen = await _in_one_window(burst)
    assert [(s.status, _limits(s)[:2]) for s in seen] == [(200, (1, 0)), (429, (1, 0)), (200, (2, 1))]


async def test_the_admin_api_is_never_rate_limited(client: Client, tenant: Tenant) -> None:
    url = f"/admin/companies/{tenant.company_id}"
    for _ in range(70):  # more than any default per-minute limit
        response = await client.get(url, headers=ADMIN_HEADERS)
        assert response.status == 200
        assert not any(name in response.headers for name in RATE_HEADERS)
