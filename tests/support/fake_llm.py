"""A real HTTP server speaking the OpenAI chat-completions protocol, with scripted replies.

The only thing tests replace is the language model; everything that talks to it talks HTTP to
this server exactly as it would to a real provider (through our aiohttp client, with its retries).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from service.runtime.serving import serving


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a completion, an HTTP error, a body that is not JSON, or a slow one."""

    text: str | None = None
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()  # (name, arguments)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: str | None = None
    delay_s: float = 0.0
    input_tokens: int = 12
    output_tokens: int = 7


def verdict(passed: bool, reason: str = "because") -> Reply:
    return Reply(text=json.dumps({"verdict": "pass" if passed else "fail", "reason": reason}))


Responder = Callable[[dict[str, Any]], Reply]


class FakeLLM:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.responder: Responder | None = None
        self.requests: list[dict[str, Any]] = []
        self.base_url = ""
        self._ids = itertools.count(1)

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def handle(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        self.requests.append(body)
        reply = self._next(body)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)  # the model's own latency, as a real one would take
        if reply.raw_body is not None:
            return web.Response(text=reply.raw_body, status=reply.status, content_type="application/json")
        if reply.status != 200:
            error = {"error": {"message": f"scripted {reply.status}", "type": "server_error"}}
            return web.json_response(error, status=reply.status, headers=reply.headers)
        return web.json_response(self._completion(body, reply), headers=reply.headers)

    def _next(self, body: dict[str, Any]) -> Reply:
        if self.replies:
            return self.replies.popleft()
        if self.responder is not None:
            return self.responder(body)
        return Reply(status=500, raw_body='{"error": {"message": "no scripted reply left"}}')

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        tool_calls = [
            {
                "id": f"call_{next(self._ids)}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for name, arguments in reply.tool_calls
        ]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": 1_790_000_000,
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}
            ],
            "usage": {
                "prompt_tokens": reply.input_tokens,
                "completion_tokens": reply.output_tokens,
                "total_tokens": reply.input_tokens + reply.output_tokens,
            },
        }


@asynccontextmanager
async def chat_completions_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve `handler` as `POST /v1/chat/completions` on a free local port; yields the base URL."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    async with serving(app, "127.0.0.1", 0) as url:
        yield f"{url}/v1"


@asynccontextmanager
async def fake_llm() -> AsyncIterator[FakeLLM]:
    llm = FakeLLM()
    async with chat_completions_server(llm.handle) as base_url:
        llm.base_url = base_url
        yield llm
