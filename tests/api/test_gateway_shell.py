"""The gateway shell through a real HTTP client: health, routing errors, the error middleware,
body and query parsing, the body size limit and request ids. Extra routes are test-only."""

from __future__ import annotations

import gzip
import json
import re
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiohttp import ClientResponse, web, web_request
from aiohttp.test_utils import TestClient
from aiohttp.web_exceptions import NotAppKeyWarning
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field
from pytest_aiohttp.plugin import AiohttpClient

from service.core.errors import (
    BillingError,
    DatabaseUnavailable,
    FieldError,
    MissingKey,
    NotFound,
    RateLimited,
    ServiceError,
    Unavailable,
    ValidationFailed,
)
from service.core.settings import Settings
from service.db.migrate import apply_migrations
from service.db.postgres import Pool, create_pool
from service.gateway.app import create_app
from service.gateway.handlers.parsing import parse_body, parse_query
from tests.conftest import with_database

Client = TestClient[web.Request, web.Application]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FRESH_ID = re.compile(r"^[0-9a-f]{32}$")
SMALL_LIMIT = 2048


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)


class EchoBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0, le=1000)
    inner: Inner
    note: str = ""


class Page(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)


VALID_BODY: dict[str, object] = {"count": 3, "inner": {"name": "alpha"}, "note": "hi"}


@dataclass
class Calls:
    """How far a test handler got: `entered` on entry, `completed` once the body was read."""

    entered: int = 0
    completed: int = 0


async def echo_body(request: web.Request) -> web.Response:
    body = await parse_body(request, EchoBody)
    return web.json_response(body.model_dump())


async def echo_query(request: web.Request) -> web.Response:
    return web.json_response(parse_query(request, Page).model_dump())


def raising(exc: BaseException) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        raise exc

    return handler


def counting(calls: Calls) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        calls.entered += 1
        raw = await request.read()
        calls.completed += 1
        return web.json_response({"bytes": len(raw)})

    return handler


class Gateway(Protocol):
    async def __call__(self, *routes: web.RouteDef, max_body_bytes: int | None = None) -> Client: ...


@pytest.fixture
def gateway(aiohttp_client: AiohttpClient, settings: Settings, pool: Pool) -> Gateway:
    """A client for the real app on this test's database, plus any test-only routes."""

    async def build(*routes: web.RouteDef, max_body_bytes: int | None = None) -> Client:
        app_settings = settings
        if max_body_bytes is not None:
            app_settings = settings.model_copy(update={"max_body_bytes": max_body_bytes})
        app = create_app(app_settings, pool=pool)
        app.router.add_routes(routes)
        return await aiohttp_client(app)

    return build


async def error_body(response: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """The JSON error body, after checking the shape every error response shares."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["code"] == code
    return body


def field_names(body: dict[str, Any]) -> list[str]:
    return [str(field["field"]) for field in body["fields"]]


def requests_counted(exposition: str, method: str, route: str, status: str) -> float:
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "agent_eval_http_requests_total" and sample.labels == {
                "method": method,
                "route": route,
                "status": status,
            }:
                return sample.value
    return 0.0


# Health and metrics.


async def test_healthz_answers_ok(gateway: Gateway) -> None:
    client = await gateway()
    response = await client.get("/healthz")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert (await response.json())["status"] == "ok"


async def test_readyz_is_ok_when_the_database_answers(gateway: Gateway) -> None:
    client = await gateway()
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_metrics_expose_prometheus_text_that_counts_requests(gateway: Gateway) -> None:
    client = await gateway()
    before = await (await client.get("/metrics")).text()
    for _ in range(2):
        assert (await client.get("/healthz")).status == 200
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    after = await response.text()
    assert "agent_eval_http_requests_total" in after
    counted = requests_counted(after, "GET", "/healthz", "200") - requests_counted(
        before, "GET", "/healthz", "200"
    )
    assert counted == 2


async def test_unmatched_paths_do_not_become_metric_labels(gateway: Gateway) -> None:
    client = await gateway()
    assert (await client.get("/no-such-path-5f3a9c")).status == 404
    assert "no-such-path-5f3a9c" not in await (await client.get("/metrics")).text()


async def test_readyz_is_unavailable_when_the_pool_is_closed(
    aiohttp_client: AiohttpClient, settings: Settings, database_url: str
) -> None:
    closed = await create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    client = await aiohttp_client(create_app(settings, pool=closed))
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {"status": "unavailable", "checks": {"database": "failing"}}


async def test_readyz_turns_unavailable_when_its_database_is_dropped(
    aiohttp_client: AiohttpClient, settings: Settings, server_url: str, database_url: str
) -> None:
    doomed = await create_pool(database_url, min_size=1, max_size=1)
    try:
        client = await aiohttp_client(create_app(settings, pool=doomed))
        assert (await client.get("/readyz")).status == 200
        admin = await asyncpg.connect(with_database(server_url, "postgres"))
        try:
            name = urlsplit(database_url).path.lstrip("/")
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        response = await client.get("/readyz")
        assert response.status == 503
        body = await response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["database"] in {"failing", "timeout"}
    finally:
        await doomed.close()


async def test_readyz_is_unavailable_until_the_database_is_migrated(
    aiohttp_client: AiohttpClient, settings: Settings, empty_database_url: str
) -> None:
    pool = await create_pool(empty_database_url, min_size=1, max_size=1)
    try:
        client = await aiohttp_client(create_app(settings, pool=pool))
        response = await client.get("/readyz")
        assert (response.status, (await response.json())["checks"]) == (503, {"database": "failing"})
        async with pool.acquire() as conn:
            await apply_migrations(conn)
        assert (await client.get("/readyz")).status == 200
    finally:
        await pool.close()


# Routing errors and the error middleware.


async def test_an_unknown_path_is_a_json_404(gateway: Gateway) -> None:
    client = await gateway()
    await error_body(await client.get("/nope"), 404, "NOT_FOUND")


async def test_a_wrong_method_is_a_405_naming_the_allowed_ones(gateway: Gateway) -> None:
    client = await gateway()
    response = await client.post("/healthz", json={})
    await error_body(response, 405, "METHOD_NOT_ALLOWED")
    allowed = {method.strip() for method in response.headers["Allow"].split(",")}
    assert "GET" in allowed
    assert "POST" not in allowed


async def test_an_unhandled_error_never_leaks_a_traceback(gateway: Gateway) -> None:
    client = await gateway(web.get("/test/boom", raising(RuntimeError("secret-detail-xyz"))))
    response = await client.get("/test/boom")
    assert response.status == 500
    assert response.content_type == "application/json"
    text = await response.text()
    assert json.loads(text) == {"error": "Internal server error", "code": "INTERNAL"}
    assert "Traceback" not in text
    assert "secret-detail-xyz" not in text
    assert "secret-detail-xyz" not in str(dict(response.headers))


@pytest.mark.parametrize(
    ("exc", "status", "code", "headers"),
    [
        pytest.param(NotFound("No such run"), 404, "NOT_FOUND", {}, id="not-found"),
        pytest.param(
            RateLimited(retry_after_s=7), 429, "RATE_LIMIT", {"Retry-After": "7"}, id="rate-limited"
        ),
        pytest.param(BillingError(), 402, "BILLING_ERROR", {}, id="billing"),
        pytest.param(Unavailable(), 503, "UNAVAILABLE", {"Retry-After": "1"}, id="unavailable"),
        pytest.param(
            MissingKey(),
            401,
            "MISSING_KEY",
            {"WWW-Authenticate": 'Bearer realm="agent-eval"'},
            id="missing-key",
        ),
    ],
)
async def test_service_errors_map_to_their_status_code_and_headers(
    gateway: Gateway, exc: ServiceError, status: int, code: str, headers: dict[str, str]
) -> None:
    client = await gateway(web.get("/test/raise", raising(exc)))
    response = await client.get("/test/raise")
    body = await error_body(response, status, code)
    assert body["error"] == exc.message
    for name, value in headers.items():
        assert response.headers.get(name) == value


async def test_validation_failed_lists_its_fields(gateway: Gateway) -> None:
    exc = ValidationFailed("Bad input", [FieldError("body.count", "must be positive", "greater_than")])
    client = await gateway(web.get("/test/raise", raising(exc)))
    body = await error_body(await client.get("/test/raise"), 400, "VALIDATION_ERROR")
    assert body == {
        "error": "Bad input",
        "code": "VALIDATION_ERROR",
        "fields": [{"field": "body.count", "message": "must be positive", "type": "greater_than"}],
    }


async def test_a_lost_database_is_a_503_without_its_details(gateway: Gateway) -> None:
    exc = DatabaseUnavailable("ConnectionResetError: db-host-secret:5432")
    client = await gateway(web.get("/test/raise", raising(exc)))
    response = await client.get("/test/raise")
    await error_body(response, 503, "UNAVAILABLE")
    assert response.headers.get("Retry-After") == "1"
    assert "db-host-secret" not in await response.text()


async def test_a_stray_pydantic_error_is_a_400_naming_the_field(gateway: Gateway) -> None:
    async def handler(_: web.Request) -> web.StreamResponse:
        EchoBody.model_validate({"count": "many", "inner": {"name": "x"}})
        return web.json_response({})

    client = await gateway(web.get("/test/stray", handler))
    body = await error_body(await client.get("/test/stray"), 400, "VALIDATION_ERROR")
    assert field_names(body) == ["body.count"]


# Body and query parsing.


@pytest.fixture
async def echo_client(gateway: Gateway) -> Client:
    return await gateway(web.post("/test/echo", echo_body), web.get("/test/page", echo_query))


async def test_a_valid_body_is_parsed_and_echoed(echo_client: Client) -> None:
    response = await echo_client.post("/test/echo", json=VALID_BODY)
    assert response.status == 200
    assert await response.json() == VALID_BODY


async def test_malformed_json_is_a_400_on_the_body(echo_client: Client) -> None:
    response = await echo_client.post(
        "/test/echo", data=b'{"count": 1,', headers={"Content-Type": "application/json"}
    )
    body = await error_body(response, 400, "VALIDATION_ERROR")
    assert field_names(body) == ["body"]
    assert body["fields"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({**VALID_BODY, "count": "abc"}, "body.count", id="string-for-int"),
        pytest.param({**VALID_BODY, "count": [1]}, "body.count", id="list-for-int"),
        pytest.param({**VALID_BODY, "inner": {"name": 5}}, "body.inner.name", id="nested-wrong-type"),
        pytest.param({**VALID_BODY, "inner": "alpha"}, "body.inner", id="string-for-object"),
        pytest.param({"count": 1}, "body.inner", id="missing-required"),
    ],
)
async def test_a_wrongly_typed_field_is_named_by_its_path(
    echo_client: Client, payload: dict[str, object], field: str
) -> None:
    body = await error_body(await echo_client.post("/test/echo", json=payload), 400, "VALIDATION_ERROR")
    assert field_names(body) == [field]


async def test_an_unknown_field_is_refused_by_name(echo_client: Client) -> None:
    payload = {**VALID_BODY, "colour": "red", "inner": {"name": "a", "extra": 1}}
    response = await echo_client.post("/test/echo", json=payload)
    body = await error_body(response, 400, "VALIDATION_ERROR")
    assert sorted(field_names(body)) == ["body.colour", "body.inner.extra"]
    assert {field["type"] for field in body["fields"]} == {"extra_forbidden"}


@pytest.mark.parametrize("count", [-1, 1001, 10**30, -(10**30)])
async def test_an_out_of_bounds_number_is_a_400(echo_client: Client, count: int) -> None:
    response = await echo_client.post("/test/echo", json={**VALID_BODY, "count": count})
    body = await error_body(response, 400, "VALIDATION_ERROR")
    assert field_names(body) == ["body.count"]


async def test_a_json_array_where_an_object_belongs_names_the_body(echo_client: Client) -> None:
    body = await error_body(await echo_client.post("/test/echo", json=[1, 2]), 400, "VALIDATION_ERROR")
    assert field_names(body) == ["body"]


async def test_an_integer_too_long_to_parse_is_a_400_not_a_500(echo_client: Client) -> None:
    raw = b'{"count": ' + b"9" * 5000 + b', "inner": {"name": "a"}}'
    response = await echo_client.post("/test/echo", data=raw, headers={"Content-Type": "application/json"})
    await error_body(response, 400, "VALIDATION_ERROR")


async def test_deeply_nested_json_is_a_400_not_a_500(echo_client: Client) -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    response = await echo_client.post("/test/echo", data=raw, headers={"Content-Type": "application/json"})
    await error_body(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_non_json_body_is_a_415(echo_client: Client, content_type: str) -> None:
    response = await echo_client.post(
        "/test/echo", data=json.dumps(VALID_BODY).encode(), headers={"Content-Type": content_type}
    )
    await error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_a_json_suffix_content_type_is_accepted(echo_client: Client) -> None:
    response = await echo_client.post(
        "/test/echo",
        data=json.dumps(VALID_BODY).encode(),
        headers={"Content-Type": "application/merge-patch+json; charset=utf-8"},
    )
    assert response.status == 200
    assert await response.json() == VALID_BODY


async def test_a_query_string_is_parsed(echo_client: Client) -> None:
    response = await echo_client.get("/test/page", params={"limit": "5"})
    assert response.status == 200
    assert await response.json() == {"limit": 5}


@pytest.mark.parametrize("query", ["limit=abc", "limit=0", "limit=101", "limit=1&limit=2"])
async def test_a_bad_query_parameter_is_named(echo_client: Client, query: str) -> None:
    body = await error_body(await echo_client.get(f"/test/page?{query}"), 400, "VALIDATION_ERROR")
    assert field_names(body) == ["query.limit"]


async def test_an_unknown_query_parameter_is_named(echo_client: Client) -> None:
    body = await error_body(await echo_client.get("/test/page?lmit=5"), 400, "VALIDATION_ERROR")
    assert field_names(body) == ["query.lmit"]


# The body size limit.


async def chunks(total: int, size: int = 512) -> AsyncIterator[bytes]:
    """`total` bytes sent without a Content-Length (chunked transfer encoding)."""
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


async def test_a_declared_oversized_body_is_refused_before_the_handler(gateway: Gateway) -> None:
    calls = Calls()
    client = await gateway(web.post("/test/count", counting(calls)), max_body_bytes=SMALL_LIMIT)
    response = await client.post("/test/count", data=b"x" * (SMALL_LIMIT + 1))
    await error_body(response, 413, "PAYLOAD_TOO_LARGE")
    assert calls == Calls(entered=0, completed=0)


async def test_a_chunked_oversized_body_is_refused_before_the_handler_uses_it(gateway: Gateway) -> None:
    calls = Calls()
    client = await gateway(web.post("/test/count", counting(calls)), max_body_bytes=SMALL_LIMIT)
    response = await client.post("/test/count", data=chunks(SMALL_LIMIT * 2))
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    await error_body(response, 413, "PAYLOAD_TOO_LARGE")
    assert calls.completed == 0


async def test_a_compressed_body_that_inflates_past_the_limit_is_refused(gateway: Gateway) -> None:
    calls = Calls()
    client = await gateway(web.post("/test/count", counting(calls)), max_body_bytes=SMALL_LIMIT)
    packed = gzip.compress(b"x" * (SMALL_LIMIT * 8))
    assert len(packed) < SMALL_LIMIT
    response = await client.post("/test/count", data=packed, headers={"Content-Encoding": "gzip"})
    await error_body(response, 413, "PAYLOAD_TOO_LARGE")
    assert calls.completed == 0


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_of_exactly_the_limit_is_accepted(gateway: Gateway, chunked: bool) -> None:
    calls = Calls()
    client = await gateway(web.post("/test/count", counting(calls)), max_body_bytes=SMALL_LIMIT)
    data = chunks(SMALL_LIMIT) if chunked else b"x" * SMALL_LIMIT
    response = await client.post("/test/count", data=data)
    assert response.status == 200
    assert await response.json() == {"bytes": SMALL_LIMIT}
    assert calls == Calls(entered=1, completed=1)


# Request ids.


async def test_every_response_carries_a_fresh_request_id(gateway: Gateway) -> None:
    client = await gateway(web.get("/test/boom", raising(RuntimeError("boom"))))
    ids = [
        (await client.get(path)).headers.get("X-Request-ID", "")
        for path in ("/healthz", "/nope", "/test/boom")
    ]
    assert all(FRESH_ID.match(request_id) for request_id in ids), ids
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("path", ["/healthz", "/nope"])
async def test_a_sane_incoming_request_id_is_echoed(gateway: Gateway, path: str) -> None:
    client = await gateway()
    response = await client.get(path, headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize(
    "incoming",
    ["a" * 300, "has spaces in it", "semi;colon", 'quote"d', "é-unicode"],
    ids=["too-long", "spaces", "semicolon", "quote", "non-ascii"],
)
async def test_an_insane_incoming_request_id_is_replaced(gateway: Gateway, incoming: str) -> None:
    client = await gateway()
    response = await client.get("/healthz", headers={"X-Request-ID": incoming})
    assert response.status == 200
    assert FRESH_ID.match(response.headers["X-Request-ID"])


# Every error response has the same shape.


class ErrorRequest(NamedTuple):
    method: str
    path: str
    data: bytes | None = None
    content_type: str = "application/json"


ERROR_REQUESTS = [
    pytest.param(ErrorRequest("GET", "/nope"), 404, "NOT_FOUND", id="404"),
    pytest.param(ErrorRequest("DELETE", "/readyz"), 405, "METHOD_NOT_ALLOWED", id="405"),
    pytest.param(ErrorRequest("GET", "/test/boom"), 500, "INTERNAL", id="500"),
    pytest.param(ErrorRequest("GET", "/test/limited"), 429, "RATE_LIMIT", id="429"),
    pytest.param(ErrorRequest("GET", "/test/down"), 503, "UNAVAILABLE", id="503"),
    pytest.param(ErrorRequest("POST", "/test/echo", b"{nope"), 400, "VALIDATION_ERROR", id="400"),
    pytest.param(
        ErrorRequest("POST", "/test/echo", b"hi", "text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE", id="415"
    ),
    pytest.param(
        ErrorRequest("POST", "/test/echo", b"x" * (SMALL_LIMIT + 1)), 413, "PAYLOAD_TOO_LARGE", id="413"
    ),
]


@pytest.mark.parametrize(("sent", "status", "code"), ERROR_REQUESTS)
async def test_every_error_response_is_json_with_error_and_code(
    gateway: Gateway, sent: ErrorRequest, status: int, code: str
) -> None:
    client = await gateway(
        web.get("/test/boom", raising(RuntimeError("boom"))),
        web.get("/test/limited", raising(RateLimited(retry_after_s=3))),
        web.get("/test/down", raising(DatabaseUnavailable("gone"))),
        web.post("/test/echo", echo_body),
        max_body_bytes=SMALL_LIMIT,
    )
    headers = {"Content-Type": sent.content_type} if sent.data is not None else {}
    response = await client.request(sent.method, sent.path, data=sent.data, headers=headers)
    assert response.headers["Content-Type"].startswith("application/json")
    await error_body(response, status, code)
    assert FRESH_ID.match(response.headers["X-Request-ID"])


# aiohttp warns (once per process) about plain-string request keys. Under `filterwarnings = error`
# that warning would fail whichever request came first, so the gateway must use typed keys.


async def test_handling_a_request_raises_no_warning(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiohttp warns only for keys it has not seen in this process: forget them so the test is
    # independent of which test served the first request.
    monkeypatch.setattr(web_request.BaseRequest, "_seen_str_keys", set())
    client = await gateway()
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotAppKeyWarning)
        response = await client.get("/healthz")
    assert response.status == 200
