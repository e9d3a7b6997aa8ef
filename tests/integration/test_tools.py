"""Answering tool calls per `tool_policy` against a real local HTTP tool server: what the tool
receives, what the agent sees, and every way a real call can fail (refused, slow, too big,
erroring). Mocks are free and shaped by the output schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiohttp import web

from consumers.executor.tools import ToolCaller, fires_for_real
from schemas.agents import Tool
from service.domain.transcript import ToolCallRecord
from service.runtime.serving import serving

RUN_ID = UUID("01a201a3-0000-7000-8000-000000000001")


@dataclass
class ToolServer:
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    body: Any = field(default_factory=lambda: {"booked": True})
    delay_s: float = 0.0
    raw: bytes | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(await request.json())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.raw is not None:
            return web.Response(body=self.raw, status=self.status)
        return web.json_response(self.body, status=self.status)

    async def redirect(self, _: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{self.url}/tool")


@pytest.fixture
async def server() -> AsyncIterator[ToolServer]:
    tool_server = ToolServer()
    app = web.Application()
    app.router.add_post("/tool", tool_server.handle)
    app.router.add_post("/moved", tool_server.redirect)
    async with serving(app, "127.0.0.1", 0) as url:
        tool_server.url = url
        yield tool_server


@pytest.fixture
async def caller() -> AsyncIterator[ToolCaller]:
    tools = ToolCaller(allow_private=True, timeout_s=2.0, max_response_bytes=1024)
    yield tools
    await tools.close()


def tool(name: str = "book", url: str | None = None, **fields: Any) -> Tool:
    return Tool.model_validate({"name": name, "description": "d", "url": url, **fields}, strict=False)


def call(name: str = "book", **arguments: Any) -> ToolCallRecord:
    return ToolCallRecord(f"call-{uuid4().hex[:6]}", name, dict(arguments))


async def test_a_real_call_posts_the_tool_its_arguments_and_the_run_id(
    server: ToolServer, caller: ToolCaller
) -> None:
    answer = await caller.answer(call(day="monday"), [tool(url=f"{server.url}/tool")], "real", [], RUN_ID)
    assert server.received == [{"tool": "book", "arguments": {"day": "monday"}, "run_id": str(RUN_ID)}]
    assert answer["mocked"] is False
    assert answer["result"] == {"booked": True}
    assert answer["status"] == 200


async def test_mock_policy_never_calls_and_answers_from_the_output_schema(
    server: ToolServer, caller: ToolCaller
) -> None:
    schema = {"type": "object", "properties": {"slot": {"type": "string", "format": "date-time"}}}
    answer = await caller.answer(
        call(), [tool(url=f"{server.url}/tool", output_schema=schema)], "mock", [], RUN_ID
    )
    assert server.received == []
    assert answer == {
        "tool_call_id": answer["tool_call_id"],
        "name": "book",
        "mocked": True,
        "result": {"slot": "2026-01-01T00:00:00Z"},
    }


async def test_allowlist_fires_only_the_listed_tools_for_real(server: ToolServer, caller: ToolCaller) -> None:
    tools = [tool("book", f"{server.url}/tool"), tool("cancel", f"{server.url}/tool")]
    booked = await caller.answer(call("book"), tools, "allowlist", ["book"], RUN_ID)
    cancelled = await caller.answer(call("cancel"), tools, "allowlist", ["book"], RUN_ID)
    assert [r["tool"] for r in server.received] == ["book"]
    assert (booked["mocked"], cancelled["mocked"]) == (False, True)


def test_a_tool_without_a_url_is_always_mocked() -> None:
    assert not fires_for_real(tool(url=None), "real", [])
    assert fires_for_real(tool(url="https://tools.example.com/x"), "real", [])
    assert not fires_for_real(tool(url="https://tools.example.com/x"), "allowlist", ["other"])


async def test_an_unknown_tool_is_answered_with_an_error_the_agent_sees(caller: ToolCaller) -> None:
    answer = await caller.answer(call("teleport"), [tool()], "mock", [], RUN_ID)
    assert answer["error"] == "the agent has no tool named 'teleport'"
    assert answer["mocked"] is False


async def test_an_error_status_is_an_error_result_with_the_body(
    server: ToolServer, caller: ToolCaller
) -> None:
    server.status, server.body = 503, {"error": "down"}
    answer = await caller.answer(call(), [tool(url=f"{server.url}/tool")], "real", [], RUN_ID)
    assert answer["error"] == "HTTP 503"
    assert answer["body"] == {"error": "down"}


async def test_a_slow_tool_times_out(server: ToolServer) -> None:
    server.delay_s = 2.0
    quick = ToolCaller(allow_private=True, timeout_s=0.3, max_response_bytes=1024)
    try:
        answer = await quick.answer(call(), [tool(url=f"{server.url}/tool")], "real", [], RUN_ID)
    finally:
        await quick.close()
    assert answer["error"] == "timed out after 0.3 s"


async def test_a_response_over_the_size_cap_is_refused(server: ToolServer, caller: ToolCaller) -> None:
    server.raw = b"x" * 5000
    answer = await caller.answer(call(), [tool(url=f"{server.url}/tool")], "real", [], RUN_ID)
    assert answer["error"] == "response larger than 1024 bytes"


async def test_redirects_are_not_followed(server: ToolServer, caller: ToolCaller) -> None:
    answer = await caller.answer(call(), [tool(url=f"{server.url}/moved")], "real", [], RUN_ID)
    assert answer["error"] == "HTTP 302"
    assert server.received == []


async def test_plain_text_answers_are_passed_on_as_text(server: ToolServer, caller: ToolCaller) -> None:
    server.raw = b"booked for monday"
    answer = await caller.answer(call(), [tool(url=f"{server.url}/tool")], "real", [], RUN_ID)
    assert answer["result"] == "booked for monday"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:1/tool", "refused: http scheme: only https:// URLs are called"),
        ("https://127.0.0.1:1/tool", "refused: 127.0.0.1 is a loopback address"),
        ("https://169.254.169.254/latest/meta-data", "refused: 169.254.169.254 is a link-local address"),
        ("https://10.1.2.3/tool", "refused: 10.1.2.3 is a private address"),
        ("https://[::ffff:127.0.0.1]/tool", "refused: 127.0.0.1 is a loopback address"),
    ],
)
async def test_the_ssrf_guard_refuses_private_targets(url: str, reason: str) -> None:
    guarded = ToolCaller(allow_private=False, timeout_s=2.0, max_response_bytes=1024)
    try:
        answer = await guarded.answer(call(), [tool(url=url)], "real", [], RUN_ID)
    finally:
        await guarded.close()
    assert answer["error"] == reason


async def test_the_ssrf_guard_checks_what_a_name_resolves_to(server: ToolServer) -> None:
    guarded = ToolCaller(allow_private=False, timeout_s=2.0, max_response_bytes=1024)
    port = server.url.rsplit(":", 1)[1]
    try:
        answer = await guarded.answer(
            call(), [tool(url=f"https://localhost:{port}/tool")], "real", [], RUN_ID
        )
    finally:
        await guarded.close()
    error = str(answer["error"])
    assert error.startswith("refused: localhost is not allowed:")
    assert error.endswith("is a loopback address")
    assert server.received == []
