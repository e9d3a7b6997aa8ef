"""A real HTTP agent for tests: an aiohttp server on 127.0.0.1 speaking both endpoint formats,
remembering each session by its id (so a test can prove the session id keeps context), and
failing in every way a user's agent can (5xx, slow, garbage, redirects, busy).

It remembers the caller's name ("my name is Dana") per session and says it when asked ("my
name?"), reports a `start_refund` tool call on "refund", and hangs up on "bye". It reads only
the caller's last message, so anything it remembers comes from its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from service.runtime.serving import serving

NAME = re.compile(r"my name is (\w+)", re.IGNORECASE)


@dataclass(frozen=True)
class Said:
    text: str
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    end: bool = False


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class AgentServer:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    memory: dict[str, dict[str, str]] = field(default_factory=dict)
    busy_left: int = 0  # how many more calls of /busy answer 503
    slow_s: float = 3.0

    def paths(self) -> list[str]:
        return [r.path for r in self.received]

    def reply_to(self, session: str, messages: list[dict[str, Any]]) -> Said:
        last = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        remembered = self.memory.setdefault(session, {})
        name = NAME.search(last)
        if name:
            remembered["name"] = name.group(1)
            return Said(f"Nice to meet you, {name.group(1)}.")
        if "refund" in last.lower():
            return Said("I have started your refund.", [("start_refund", {"order": "A-1"})])
        if "my name" in last.lower():
            return Said(f"Your name is {remembered.get('name', 'a mystery to me')}.")
        if "bye" in last.lower():
            return Said("Goodbye!", end=True)
        return Said("How can I help?")

    async def _record(self, request: web.Request) -> Any:
        body = await request.json()
        self.received.append(Received(request.path, dict(request.headers), body))
        return body

    async def simple(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        said = self.reply_to(body.get("session_id") or body["user"], body["messages"])
        answer: dict[str, Any] = {"reply": said.text, "end": said.end}
        if said.calls:
            answer["tool_calls"] = [{"name": name, "arguments": args} for name, args in said.calls]
        if request.query.get("usage"):
            answer["usage"] = {"input_tokens": 40, "output_tokens": 10}
        return web.json_response(answer)

    async def openai(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        said = self.reply_to(body["user"], body["messages"])
        calls = [
            {
                "id": f"call_{name}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for name, args in [*said.calls, *([("end_call", {})] if said.end else [])]
        ]
        message: dict[str, Any] = {"role": "assistant", "content": said.text}
        if calls:
            message["tool_calls"] = calls
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "acme-agent-1",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
            }
        )

    async def fail(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"error": "database exploded"}, status=500)

    async def slow(self, request: web.Request) -> web.Response:
        await self._record(request)
        await asyncio.sleep(self.slow_s)
        return web.json_response({"reply": "too late"})

    async def garbage(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(text="<html>oops, an error page</html>", content_type="text/html")

    async def moved(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPFound(f"{self.url}/simple")

    async def busy(self, request: web.Request) -> web.Response:
        if self.busy_left > 0:
            await self._record(request)
            self.busy_left -= 1
            return web.json_response({"error": "busy"}, status=503, headers={"Retry-After": "0"})
        return await self.simple(request)

    async def limited(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "0"})


def agent_app(server: AgentServer) -> web.Application:
    app = web.Application()
    for name in ("simple", "openai", "fail", "slow", "garbage", "moved", "busy", "limited"):
        app.router.add_post(f"/{name}", getattr(server, name))
    return app


@contextlib.asynccontextmanager
async def agent_server(port: int = 0) -> AsyncIterator[AgentServer]:
    """The agent, served on 127.0.0.1 until the block ends."""
    server = AgentServer()
    async with serving(agent_app(server), "127.0.0.1", port, shutdown_timeout_s=1.0) as url:
        server.url = url
        yield server
