"""The CLI's client rides out a busy or restarting server: a real HTTP server answers 429 or 503
first, and the client waits `Retry-After` and asks again when that is safe, or reports the error
when it is not (a POST without an idempotency key), or when the retry budget is spent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import uuid4

import pytest
from aiohttp import web
from pytest_aiohttp.plugin import AiohttpServer

from schemas.suite_runs import SuiteRunTrigger
from service.client.api import Api
from service.core.errors import RemoteError

SUITE_ID = uuid4()
SUITE = {
    "id": str(SUITE_ID),
    "name": "Checkout",
    "description": None,
    "agent_id": None,
    "parallelism": 4,
    "company_id": str(uuid4()),
    "created_at": "2026-12-02T10:00:00Z",
    "updated_at": "2026-12-02T10:00:00Z",
}


@dataclass
class Scripted:
    """Answers each path's requests from a queue of (status, headers); then 200 with `body`."""

    failures: list[tuple[int, dict[str, str]]]
    body: Mapping[str, object]
    seen: list[web.Request] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request)
        if self.failures:
            status, headers = self.failures.pop(0)
            error = {"error": "busy", "code": "RATE_LIMIT" if status == 429 else "UNAVAILABLE"}
            return web.json_response(error, status=status, headers=headers)
        return web.json_response(dict(self.body), status=202 if request.method == "POST" else 200)


async def serve(aiohttp_server: AiohttpServer, scripted: Scripted, method: str, path: str) -> str:
    app = web.Application()
    app.router.add_route(method, path, scripted.handle)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def call_with(
    aiohttp_server: AiohttpServer,
    scripted: Scripted,
    *,
    method: str,
    path: str,
    budget_s: float = 30,
) -> tuple[Api, list[str]]:
    notices: list[str] = []
    base = await serve(aiohttp_server, scripted, method, path)
    return Api(base, "ae_live_x", retry_budget_s=budget_s, notice=notices.append), notices


async def test_a_429_is_waited_out_for_its_retry_after_and_the_read_succeeds(
    aiohttp_server: AiohttpServer,
) -> None:
    scripted = Scripted([(429, {"Retry-After": "1"}), (429, {"Retry-After": "1"})], SUITE)
    api, notices = await call_with(
        aiohttp_server, scripted, method="GET", path=f"/agent-eval/suites/{SUITE_ID}"
    )
    try:
        suite = await api.suite(SUITE_ID)
    finally:
        await api.close()
    assert suite.name == "Checkout"
    assert len(scripted.seen) == 3
    assert notices == ["429 RATE_LIMIT: busy; retrying in 1 s"] * 2


async def test_a_suite_run_trigger_is_repeated_after_a_503_under_one_idempotency_key(
    aiohttp_server: AiohttpServer,
) -> None:
    started = {"suite_run_id": str(uuid4()), "run_ids": [str(uuid4())]}
    scripted = Scripted([(503, {"Retry-After": "1"})], started)
    api, _ = await call_with(
        aiohttp_server, scripted, method="POST", path=f"/agent-eval/suites/{SUITE_ID}/run"
    )
    try:
        answer = await api.run_suite(SUITE_ID, SuiteRunTrigger())
    finally:
        await api.close()
    assert str(answer.suite_run_id) == started["suite_run_id"]
    keys = [request.headers.get("Idempotency-Key") for request in scripted.seen]
    assert len(keys) == 2
    assert keys[0] is not None
    assert keys[0] == keys[1]  # the server replays the first start instead of starting twice


async def test_a_post_without_an_idempotency_key_is_not_repeated_after_a_503(
    aiohttp_server: AiohttpServer,
) -> None:
    scripted = Scripted([(503, {"Retry-After": "1"})], {"id": str(uuid4())})
    api, notices = await call_with(aiohttp_server, scripted, method="POST", path="/agent-eval/cases")
    try:
        with pytest.raises(RemoteError) as raised:
            await api.create("/agent-eval/cases", {"name": "x"})
    finally:
        await api.close()
    assert (raised.value.status, raised.value.code) == (503, "UNAVAILABLE")
    assert len(scripted.seen) == 1
    assert notices == []


async def test_the_retry_budget_ends_the_waiting_with_the_servers_error(
    aiohttp_server: AiohttpServer,
) -> None:
    scripted = Scripted([(429, {"Retry-After": "30"})], SUITE)
    api, _ = await call_with(
        aiohttp_server, scripted, method="GET", path=f"/agent-eval/suites/{SUITE_ID}", budget_s=5
    )
    try:
        with pytest.raises(RemoteError) as raised:
            await api.suite(SUITE_ID)
    finally:
        await api.close()
    assert (raised.value.status, raised.value.code) == (429, "RATE_LIMIT")
    assert len(scripted.seen) == 1


async def test_a_refused_connection_is_a_server_error_naming_the_address() -> None:
    api = Api("http://127.0.0.1:9", "ae_live_x", retry_budget_s=1)
    try:
        with pytest.raises(RemoteError, match=r"cannot reach http://127\.0\.0\.1:9"):
            await api.suite(SUITE_ID)
    finally:
        await api.close()
