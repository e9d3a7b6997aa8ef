"""`/webhooks` endpoints: create (a secret shown once, stored sealed), validation, the SSRF
checks at registration, list, get, PATCH, enable/disable, delete, another company's id, bad ids,
missing scopes, and 503 without sealing keys."""

from __future__ import annotations

import base64
import uuid

import pytest
from aiohttp import ClientResponse

from service.core.sealing import SecretBox
from service.db.postgres import Pool
from tests.support.api import (
    EVAL_SCOPES,
    Client,
    Json,
    Tenant,
    created,
    first_row,
    gone,
    insufficient_scope,
    key_for,
    listed,
    not_found,
    refused_field,
    refused_query,
    refused_without_scope,
    row_count,
    soft_deleted,
)
from tests.support.live import TEST_WEBHOOK_KEY

WEBHOOKS = "/webhooks"
READ, MANAGE = "webhooks:read", "webhooks:manage"
HOOK = "http://127.0.0.1:9/hooks"  # loopback over http: allowed by `client` (nothing is sent here)
PUBLIC = "https://93.184.215.14/hooks"  # a public IP literal: allowed by `strict_client`, no DNS
URL = "url"  # the URL checks' refusals, matched by the field's last segment (see the naming test)
DEFAULT_TYPES = ["agent_eval.run.done", "agent_eval.suite_run.done"]
# Every route under /webhooks/{id}, with a valid body where one is needed.
ROUTES: list[tuple[str, str, Json | None]] = [
    ("get", "/webhooks/{id}", None),
    ("patch", "/webhooks/{id}", {"description": "Mine"}),
    ("delete", "/webhooks/{id}", None),
    ("post", "/webhooks/{id}/enable", None),
    ("post", "/webhooks/{id}/disable", None),
    ("post", "/webhooks/{id}/rotate-secret", None),
    ("post", "/webhooks/{id}/test", None),
    ("get", "/webhooks/{id}/deliveries", None),
    ("post", "/webhooks/{id}/recover", {"since": "2020-01-01T00:00:00Z"}),
    ("get", "/webhooks/{id}/deliveries/{delivery_id}", None),
    ("post", "/webhooks/{id}/deliveries/{delivery_id}/resend", None),
]
SCOPED: list[tuple[str, str, Json | None, str]] = [
    ("post", WEBHOOKS, {"url": HOOK}, MANAGE),
    ("get", WEBHOOKS, None, READ),
    *[(method, path, body, READ if method == "get" else MANAGE) for method, path, body in ROUTES],
]


async def _endpoint(client: Client, tenant: Tenant, url: str = HOOK, **fields: object) -> Json:
    return await created(client, tenant, WEBHOOKS, {"url": url, **fields})


async def _get(client: Client, tenant: Tenant, endpoint_id: str) -> ClientResponse:
    return await client.get(f"{WEBHOOKS}/{endpoint_id}", headers=tenant.headers())


async def _ping(client: Client, tenant: Tenant, endpoint_id: str) -> Json:
    """A test send queued (nothing sends it: no notifier runs in these tests)."""
    response = await client.post(f"{WEBHOOKS}/{endpoint_id}/test", headers=tenant.headers())
    delivery: Json = await response.json()
    assert response.status == 202, delivery
    return delivery


async def _refused_url(response: ClientResponse) -> str:
    """Assert a 400 VALIDATION_ERROR whose one field is the URL; return why."""
    body: Json = await response.json()
    assert (response.status, body.get("code")) == (400, "VALIDATION_ERROR"), body
    (field,) = body["fields"]
    assert field["field"].rsplit(".", 1)[-1] == URL, body
    message: str = field["message"]
    return message


def _shown(endpoint: Json) -> Json:
    """The endpoint as reads show it: everything but the secret."""
    return {key: value for key, value in endpoint.items() if key != "secret"}


async def test_create_answers_a_fresh_secret_and_the_default_event_types(
    client: Client, tenant: Tenant
) -> None:
    endpoint = await _endpoint(client, tenant)
    prefix, _, encoded = endpoint["secret"].partition("_")
    assert prefix == "whsec"
    assert len(base64.b64decode(encoded, validate=True)) >= 24
    assert endpoint["event_types"] == DEFAULT_TYPES
    assert (endpoint["company_id"], endpoint["url"], endpoint["enabled"]) == (tenant.company_id, HOOK, True)
    assert (endpoint["description"], endpoint["disabled_at"], endpoint["failing_since"]) == (None, None, None)
    assert endpoint["secret"] != (await _endpoint(client, tenant))["secret"]


async def test_the_secret_is_never_shown_again(client: Client, tenant: Tenant) -> None:
    endpoint = await _endpoint(client, tenant, description="Ops")
    response = await _get(client, tenant, endpoint["id"])
    assert response.status == 200
    assert await response.json() == _shown(endpoint)
    page = await client.get(WEBHOOKS, headers=tenant.headers())
    assert (await page.json())["data"] == [_shown(endpoint)]
    for text in (await response.text(), await page.text()):
        assert endpoint["secret"].removeprefix("whsec_") not in text


async def test_the_secret_is_stored_only_sealed(client: Client, tenant: Tenant, database_url: str) -> None:
    secret = (await _endpoint(client, tenant))["secret"]
    row = await first_row(
        database_url, "SELECT secret, secret_sealed, row_to_json(w)::text AS whole FROM webhook_endpoints w"
    )
    assert row is not None
    assert row["secret"] is None
    assert secret.removeprefix("whsec_") not in row["whole"]
    assert SecretBox([TEST_WEBHOOK_KEY]).open(row["secret_sealed"]) == secret


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": HOOK, "event_types": ["agent_eval.run.exploded"]}, "body.event_types.0"),
        ({"url": HOOK, "event_types": ["agent_eval.run.requested"]}, "body.event_types.0"),
        ({"url": HOOK, "event_types": []}, "body.event_types"),
        ({"url": HOOK, "event_types": "agent_eval.run.done"}, "body.event_types"),
        ({"url": HOOK, "frobnicate": True}, "body.frobnicate"),
        ({"url": HOOK, "enabled": "yes"}, "body.enabled"),
        ({}, "body.url"),
        ({"url": ""}, "body.url"),
    ],
)
async def test_invalid_endpoints_are_refused_naming_the_field_and_nothing_is_written(
    client: Client, tenant: Tenant, database_url: str, body: Json, field: str
) -> None:
    response = await client.post(WEBHOOKS, json=body, headers=tenant.headers())
    await refused_field(response, field)
    assert await row_count(database_url, "webhook_endpoints") == 0


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "ftp://127.0.0.1/hooks",
        "http://",
        "file:///etc/passwd",
        "http://[::1/hooks",  # an unclosed IPv6 literal
        "https://[93.184.215.14]/",  # an IPv4 address in brackets
        "http://127.0.0.1:99999/hooks",  # no such port
        "http://127.0.0.1:http/hooks",
        "https://127.0.0.1\\@93.184.215.14/",  # a backslash in the authority: the client refuses it
    ],
)
async def test_urls_that_cannot_be_called_are_refused_and_nothing_is_written(
    client: Client, tenant: Tenant, database_url: str, url: str
) -> None:
    response = await client.post(WEBHOOKS, json={"url": url}, headers=tenant.headers())
    await _refused_url(response)
    assert await row_count(database_url, "webhook_endpoints") == 0


async def test_a_refused_url_is_named_by_its_path_like_every_other_body_field(
    client: Client, tenant: Tenant
) -> None:
    response = await client.post(WEBHOOKS, json={"url": "ftp://127.0.0.1/"}, headers=tenant.headers())
    await refused_field(response, "body.url")
    endpoint = await _endpoint(client, tenant)
    patch = {"url": "ftp://127.0.0.1/"}
    response = await client.patch(f"{WEBHOOKS}/{endpoint['id']}", json=patch, headers=tenant.headers())
    await refused_field(response, "body.url")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/hooks", "only https"),
        ("https://127.0.0.1/", "loopback"),
        ("https://10.0.0.5/", "private"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://100.64.0.1/", "not globally routable"),
        ("https://[::1]/", "loopback"),
        ("https://[::ffff:127.0.0.1]/", "127.0.0.1 is a loopback"),
        ("https://[2002:7f00:1::1]/", "127.0.0.1 is a loopback"),  # 6to4
        ("https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "10.0.0.1 is a private"),  # Teredo
        ("https://localhost/", "loopback"),
        ("https://127.1/", "loopback"),  # a shorthand IPv4 the resolver reads as 127.0.0.1
    ],
)
async def test_urls_reaching_non_public_addresses_are_refused(
    strict_client: Client, tenant: Tenant, database_url: str, url: str, reason: str
) -> None:
    response = await strict_client.post(WEBHOOKS, json={"url": url}, headers=tenant.headers())
    assert reason in await _refused_url(response)
    assert await row_count(database_url, "webhook_endpoints") == 0


async def test_a_public_https_url_is_accepted_and_a_patch_is_checked_again(
    strict_client: Client, tenant: Tenant
) -> None:
    endpoint = await _endpoint(strict_client, tenant, PUBLIC)
    url = f"{WEBHOOKS}/{endpoint['id']}"
    for refused in ("https://10.0.0.5/", "http://93.184.215.14/", "ftp://93.184.215.14/"):
        response = await strict_client.patch(url, json={"url": refused}, headers=tenant.headers())
        await _refused_url(response)
    assert await (await _get(strict_client, tenant, endpoint["id"])).json() == _shown(endpoint)


async def test_loopback_over_http_is_accepted_when_private_targets_are_allowed(
    client: Client, tenant: Tenant
) -> None:
    endpoint = await _endpoint(client, tenant, "http://127.0.0.1:8123/hooks")
    assert endpoint["url"] == "http://127.0.0.1:8123/hooks"


async def test_list_is_newest_first_paginated_and_only_the_companys(
    client: Client, tenant: Tenant, stranger: Tenant
) -> None:
    made = [_shown(await _endpoint(client, tenant, description=f"e{i}")) for i in range(4)]
    await _endpoint(client, stranger)
    page = await listed(client, tenant, f"{WEBHOOKS}?limit=2&offset=1")
    assert [e["description"] for e in page["data"]] == ["e2", "e1"]
    assert page["pagination"] == {"total": 4, "limit": 2, "offset": 1, "has_more": True}
    page = await listed(client, tenant, WEBHOOKS)
    assert page["data"] == made[::-1]
    assert page["pagination"] == {"total": 4, "limit": 20, "offset": 0, "has_more": False}


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "enabled=true"])
async def test_bad_list_queries_are_refused(client: Client, tenant: Tenant, query: str) -> None:
    await refused_query(client, tenant, f"{WEBHOOKS}?{query}")


async def test_patch_changes_only_what_is_sent(client: Client, tenant: Tenant) -> None:
    endpoint = _shown(await _endpoint(client, tenant, description="Old"))
    url = f"{WEBHOOKS}/{endpoint['id']}"
    change = {"url": "http://127.0.0.1:9/v2", "event_types": ["agent_eval.run.turn"], "enabled": False}
    response = await client.patch(url, json=change, headers=tenant.headers())
    updated = await response.json()
    assert response.status == 200, updated
    assert {k: updated[k] for k in change} == change
    assert (updated["description"], updated["created_at"]) == ("Old", endpoint["created_at"])
    assert updated["updated_at"] > endpoint["updated_at"]
    assert await (await _get(client, tenant, endpoint["id"])).json() == updated
    response = await client.patch(url, json={"description": None}, headers=tenant.headers())
    assert (await response.json())["description"] is None


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"url": None}, "body.url"),
        ({"event_types": None}, "body.event_types"),
        ({"enabled": None}, "body.enabled"),
        ({"event_types": []}, "body.event_types"),
        ({"event_types": ["agent_eval.nope"]}, "body.event_types.0"),
        ({"secret": "whsec_AAAA"}, "body.secret"),
    ],
)
async def test_invalid_patches_are_refused_and_change_nothing(
    client: Client, tenant: Tenant, patch: Json, field: str
) -> None:
    endpoint = _shown(await _endpoint(client, tenant))
    response = await client.patch(f"{WEBHOOKS}/{endpoint['id']}", json=patch, headers=tenant.headers())
    await refused_field(response, field)
    assert await (await _get(client, tenant, endpoint["id"])).json() == endpoint


async def test_disable_says_so_and_enable_forgets_it(client: Client, tenant: Tenant) -> None:
    endpoint = await _endpoint(client, tenant)
    response = await client.post(f"{WEBHOOKS}/{endpoint['id']}/disable", headers=tenant.headers())
    disabled = await response.json()
    assert response.status == 200, disabled
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "disabled by the user")
    assert disabled["disabled_at"] is not None
    assert await (await _get(client, tenant, endpoint["id"])).json() == disabled
    response = await client.post(f"{WEBHOOKS}/{endpoint['id']}/enable", headers=tenant.headers())
    enabled = await response.json()
    assert response.status == 200, enabled
    assert (enabled["enabled"], enabled["disabled_at"], enabled["disabled_reason"]) == (True, None, None)


async def test_delete_is_soft_final_and_stops_pending_deliveries(
    client: Client, tenant: Tenant, database_url: str
) -> None:
    endpoint = await _endpoint(client, tenant)
    await _ping(client, tenant, endpoint["id"])
    response = await client.delete(f"{WEBHOOKS}/{endpoint['id']}", headers=tenant.headers())
    assert response.status == 204
    await gone(client, tenant, f"{WEBHOOKS}/{endpoint['id']}")
    for method, path, body in ROUTES[3:9]:
        url = path.format(id=endpoint["id"])
        await not_found(await client.request(method, url, json=body, headers=tenant.headers()))
    await soft_deleted(database_url, "webhook_endpoints", endpoint["id"])
    assert (await listed(client, tenant, WEBHOOKS))["pagination"]["total"] == 0
    row = await first_row(database_url, "SELECT status, last_error FROM webhook_deliveries")
    assert row is not None
    assert (row["status"], row["last_error"]) == ("failed", "the endpoint was deleted")


async def _answer(client: Client, tenant: Tenant, method: str, url: str, body: Json | None) -> Json:
    """The 404 `method url` answers, asserted."""
    return await not_found(await client.request(method, url, json=body, headers=tenant.headers()))


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_another_companys_endpoint_looks_missing_on_every_route(
    client: Client, tenant: Tenant, stranger: Tenant, method: str, path: str, body: Json | None
) -> None:
    theirs = _shown(await _endpoint(client, stranger))
    their_delivery = await _ping(client, stranger, theirs["id"])
    ids = {"id": theirs["id"], "delivery_id": their_delivery["id"]}
    missing = {"id": str(uuid.uuid4()), "delivery_id": str(uuid.uuid4())}
    foreign_answer = await _answer(client, tenant, method, path.format(**ids), body)
    missing_answer = await _answer(client, tenant, method, path.format(**missing), body)
    for key, their_id in ids.items():
        missing_answer["error"] = missing_answer["error"].replace(missing[key], their_id)
    assert foreign_answer == missing_answer
    assert await (await _get(client, stranger, theirs["id"])).json() == theirs
    response = await client.get(
        f"{WEBHOOKS}/{theirs['id']}/deliveries/{their_delivery['id']}", headers=stranger.headers()
    )
    assert (await response.json())["status"] == "pending"


@pytest.mark.parametrize(("method", "path", "body"), ROUTES[-2:])
async def test_another_companys_delivery_is_missing_under_my_endpoint(
    client: Client, tenant: Tenant, stranger: Tenant, method: str, path: str, body: Json | None
) -> None:
    mine = await _endpoint(client, tenant)
    theirs = await _endpoint(client, stranger)
    their_delivery = await _ping(client, stranger, theirs["id"])
    await _answer(client, tenant, method, path.format(id=mine["id"], delivery_id=their_delivery["id"]), body)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_a_bad_id_in_the_path_is_a_400(
    client: Client, tenant: Tenant, method: str, path: str, body: Json | None
) -> None:
    endpoint = await _endpoint(client, tenant)
    bad_endpoint = path.format(id="not-a-uuid", delivery_id=uuid.uuid4())
    response = await client.request(method, bad_endpoint, json=body, headers=tenant.headers())
    await refused_field(response, "path.id")
    if "{delivery_id}" in path:
        bad_delivery = path.format(id=endpoint["id"], delivery_id="42")
        response = await client.request(method, bad_delivery, json=body, headers=tenant.headers())
        await refused_field(response, "path.delivery_id")


@pytest.mark.parametrize(("method", "path", "body", "scope"), SCOPED)
async def test_each_route_needs_its_scope(
    client: Client,
    tenant: Tenant,
    pool: Pool,
    database_url: str,
    method: str,
    path: str,
    body: Json | None,
    scope: str,
) -> None:
    endpoint = _shown(await _endpoint(client, tenant))
    delivery = await _ping(client, tenant, endpoint["id"])
    url = path.format(id=endpoint["id"], delivery_id=delivery["id"])
    await refused_without_scope(client, pool, tenant, method, url, body or {}, scope, (READ, MANAGE))
    assert await (await _get(client, tenant, endpoint["id"])).json() == endpoint
    assert await row_count(database_url, "webhook_endpoints") == 1
    assert await row_count(database_url, "webhook_deliveries") == 1


async def test_a_read_key_reads_and_a_key_without_webhook_scopes_cannot_list(
    client: Client, tenant: Tenant, pool: Pool
) -> None:
    endpoint = _shown(await _endpoint(client, tenant))
    reader = await key_for(pool, tenant, [READ])
    assert (await listed(client, reader, WEBHOOKS))["data"] == [endpoint]
    assert await (await _get(client, reader, endpoint["id"])).json() == endpoint
    outsider = await key_for(pool, tenant, EVAL_SCOPES)
    await insufficient_scope(await client.get(WEBHOOKS, headers=outsider.headers()), READ)


async def test_without_sealing_keys_create_and_rotate_are_not_configured(
    client: Client, keyless_client: Client, tenant: Tenant, database_url: str
) -> None:
    endpoint = _shown(await _endpoint(client, tenant))
    before = await first_row(database_url, "SELECT secret_sealed FROM webhook_endpoints")
    answers = [
        await keyless_client.post(WEBHOOKS, json={"url": HOOK}, headers=tenant.headers()),
        await keyless_client.post(f"{WEBHOOKS}/{endpoint['id']}/rotate-secret", headers=tenant.headers()),
    ]
    for response in answers:
        body = await response.json()
        assert (response.status, body["code"]) == (503, "NOT_CONFIGURED"), body
        assert "AGENT_EVAL_WEBHOOK_SECRET_KEYS" in body["error"]
    assert await row_count(database_url, "webhook_endpoints") == 1
    assert await first_row(database_url, "SELECT secret_sealed FROM webhook_endpoints") == before
    assert await (await _get(keyless_client, tenant, endpoint["id"])).json() == endpoint
