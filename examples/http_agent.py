"""A small agent of your own, served over HTTP, for trying `"type": "http"` agents (and for the
benchmark): both request formats agent-eval speaks, and a memory per session.

    python3 examples/http_agent.py --port 9000

`POST /simple` takes `{"session_id", "messages": [{"role", "content"}]}` and answers
`{"reply", "tool_calls"?, "end"?}`; `POST /v1/chat/completions` takes an OpenAI chat-completions
request (the session is the `user` field or the `X-Session-Id` header) and answers one, with usage.
What it says: a caller who gives a name ("my name is Ada") is remembered for the session and
called by it later; an order number ("order A-1") is looked up with a `lookup_order` tool call it
reports; "bye" ends the call; anything else gets a short answer.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass, field

from aiohttp import web

NAME = re.compile(r"\bmy name is (\w+)", re.IGNORECASE)
ORDER = re.compile(r"\border ([A-Z]-\d+)", re.IGNORECASE)
ToolCall = dict[str, object]


@dataclass
class Reply:
    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    end: bool = False


@dataclass
class Memory:
    names: dict[str, str] = field(default_factory=dict)

    def answer(self, session: str, said: str) -> Reply:
        """What the agent says to the caller's last message in `session`."""
        name = NAME.search(said)
        if name:
            self.names[session] = name.group(1)
            return Reply(f"Nice to meet you, {name.group(1)}.")
        order = ORDER.search(said)
        if order:
            call: ToolCall = {"name": "lookup_order", "arguments": {"order": order.group(1).upper()}}
            return Reply(f"I have looked up order {order.group(1).upper()}.", [call])
        if "bye" in said.lower():
            known = self.names.get(session)
            return Reply(f"Goodbye{', ' + known if known else ''}!", end=True)
        return Reply("Here is a short answer to your question.")


def last_user_message(messages: object) -> str:
    if not isinstance(messages, list):
        return ""
    said = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return str(said[-1] or "") if said else ""


async def simple(request: web.Request) -> web.Response:
    body = await request.json()
    reply = request.app[MEMORY].answer(str(body.get("session_id")), last_user_message(body.get("messages")))
    answer: dict[str, object] = {"reply": reply.text, "end": reply.end}
    if reply.tool_calls:
        answer["tool_calls"] = reply.tool_calls
    return web.json_response(answer)


async def chat_completions(request: web.Request) -> web.Response:
    body = await request.json()
    session = str(body.get("user") or request.headers.get("X-Session-Id", ""))
    messages = body.get("messages")
    reply = request.app[MEMORY].answer(session, last_user_message(messages))
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
        }
        for i, c in enumerate(reply.tool_calls)
    ]
    if reply.end:
        calls.append(
            {"id": "call_end", "type": "function", "function": {"name": "end_call", "arguments": "{}"}}
        )
    message: dict[str, object] = {"role": "assistant", "content": reply.text}
    if calls:
        message["tool_calls"] = calls
    prompt = sum(len(str(m.get("content") or "").split()) for m in messages if isinstance(m, dict))
    return web.json_response(
        {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "example-agent",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": len(reply.text.split())},
        }
    )


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


MEMORY = web.AppKey("memory", Memory)


def make_app() -> web.Application:
    app = web.Application()
    app[MEMORY] = Memory()
    app.router.add_post("/simple", simple)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="An example agent served over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port, print=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
