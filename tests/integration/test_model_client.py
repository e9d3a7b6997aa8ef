"""The OpenAI-compatible provider's HTTP behaviour against a real local server speaking the
protocol: connections kept alive and reused, the SDK's retry rules (Retry-After in seconds,
exponential backoff, the two-minute cap, `x-should-retry`, timeouts and dropped connections
tried again), Azure-style base URLs, and answers that are JSON but not a chat completion.

The status-to-code mapping, the key and headers sent, tool calls and `_raw` arguments, a
timeout, a body that is not JSON and a refused connection are in test_llm_provider.py."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest
from aiohttp import web
from pydantic import JsonValue

from consumers.llm.openai_compat import OpenAICompatibleProvider
from consumers.llm.providers import ChatMessage, CompletionRequest, ToolSpec
from service.core.errors import ProviderCode, ProviderError
from service.core.settings import ProviderConfig
from service.runtime.serving import serving

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QUESTION = CompletionRequest(model="fake:gpt-test", messages=[ChatMessage(role="user", content="Hello?")])


def completion(model: str = "gpt-test", message: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_790_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message or {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


async def answer_ok(_: web.Request) -> web.Response:
    return web.json_response(completion())


def status(code: int, headers: dict[str, str] | None = None) -> Handler:
    async def handle(_: web.Request) -> web.Response:
        return web.json_response({"error": {"message": f"scripted {code}"}}, status=code, headers=headers)

    return handle


def slow(delay_s: float) -> Handler:
    async def handle(_: web.Request) -> web.Response:
        await asyncio.sleep(delay_s)
        return web.json_response(completion())

    return handle


def body(document: object) -> Handler:
    async def handle(_: web.Request) -> web.Response:
        return web.json_response(document)

    return handle


async def hang_up(request: web.Request) -> web.Response:
    """Drop the connection without answering, as a crashing proxy would."""
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0.2)
    return web.Response()


@dataclass
class Seen:
    at: float
    peer: int  # the client's port: one per connection
    path: str
    query: str
    headers: dict[str, str]
    json: dict[str, Any]


@dataclass
class ModelServer:
    """Answers each call with the next scripted handler, then with `otherwise`; records every call."""

    script: deque[Handler] = field(default_factory=deque)
    otherwise: Handler = answer_ok
    seen: list[Seen] = field(default_factory=list)
    base_url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername")[1] if request.transport else 0
        sent = await request.json()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(Seen(time.monotonic(), peer, request.path, request.query_string, headers, sent))
        handler = self.script.popleft() if self.script else self.otherwise
        return await handler(request)

    def gaps(self) -> list[float]:
        return [b.at - a.at for a, b in zip(self.seen, self.seen[1:], strict=False)]


@asynccontextmanager
async def model_server(
    *script: Handler, otherwise: Handler = answer_ok, path: str = "/v1/chat/completions"
) -> AsyncIterator[ModelServer]:
    server = ModelServer(deque(script), otherwise)
    app = web.Application()
    app.router.add_post(path, server.handle)
    async with serving(app, "127.0.0.1", 0) as url:
        server.base_url = f"{url}{path.removesuffix('/chat/completions')}"
        yield server


@asynccontextmanager
async def provider(base_url: str, **config: Any) -> AsyncIterator[OpenAICompatibleProvider]:
    client = OpenAICompatibleProvider(ProviderConfig(base_url=base_url, **config), "sk-test")
    try:
        yield client
    finally:
        await client.close()


async def failure(client: OpenAICompatibleProvider, request: CompletionRequest = QUESTION) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await client.complete(request, "gpt-test")
    return caught.value


# --- connections --------------------------------------------------------------------------------


async def test_sequential_calls_share_one_kept_alive_connection() -> None:
    async with model_server() as server, provider(server.base_url) as client:
        for _ in range(30):
            await client.complete(QUESTION, "gpt-test")

    assert len(server.seen) == 30
    assert len({s.peer for s in server.seen}) == 1


async def test_concurrent_calls_reuse_their_connections_round_after_round() -> None:
    async with model_server(otherwise=slow(0.02)) as server, provider(server.base_url) as client:
        for _ in range(5):
            await asyncio.gather(*(client.complete(QUESTION, "gpt-test") for _ in range(20)))

    assert len(server.seen) == 100
    assert len({s.peer for s in server.seen}) <= 20


async def test_a_dropped_connection_is_tried_again_on_a_new_one() -> None:
    async with model_server(hang_up) as server, provider(server.base_url, max_retries=1) as client:
        answer = await client.complete(QUESTION, "gpt-test")

    assert answer.text == "ok"
    assert len(server.seen) == 2


async def test_a_connection_that_keeps_dropping_is_unavailable() -> None:
    async with model_server(hang_up, hang_up) as server, provider(server.base_url, max_retries=1) as client:
        error = await failure(client)

    assert error.code == "PROVIDER_UNAVAILABLE"
    assert len(server.seen) == 2


# --- retries ------------------------------------------------------------------------------------


async def test_retry_after_in_seconds_is_waited_for_then_the_call_succeeds() -> None:
    busy = status(429, {"Retry-After": "0.3"})
    async with model_server(busy) as server, provider(server.base_url, max_retries=2) as client:
        answer = await client.complete(QUESTION, "gpt-test")

    assert answer.text == "ok"
    [gap] = server.gaps()
    assert gap >= 0.3


async def test_without_retry_after_the_first_retry_waits_about_half_a_second() -> None:
    async with model_server(status(500)) as server, provider(server.base_url, max_retries=1) as client:
        answer = await client.complete(QUESTION, "gpt-test")

    assert answer.text == "ok"
    [gap] = server.gaps()
    assert 0.37 <= gap < 2.0  # 0.5 s less up to 25 % jitter


async def test_retries_double_their_wait_and_stop_after_max_retries() -> None:
    failing = [status(500)] * 3
    async with model_server(*failing) as server, provider(server.base_url, max_retries=2) as client:
        error = await failure(client)

    assert error.code == "PROVIDER_UNAVAILABLE"
    assert len(server.seen) == 3  # the first try and two retries, no more
    first, second = server.gaps()
    assert 0.37 <= first < 0.6  # 0.5 s less up to 25 % jitter
    assert 0.75 <= second < 1.2  # then 1 s


@pytest.mark.parametrize("code", [408, 409, 502])
async def test_request_timeout_conflict_and_bad_gateway_are_retried(code: int) -> None:
    retry_soon = {"retry-after-ms": "10"}
    async with model_server(status(code, retry_soon)) as server, provider(server.base_url) as client:
        answer = await client.complete(QUESTION, "gpt-test")

    assert answer.text == "ok"
    assert len(server.seen) == 2


async def test_a_retry_after_over_two_minutes_is_not_waited_for() -> None:
    busy = status(429, {"Retry-After": "600"})
    async with model_server(busy) as server, provider(server.base_url, max_retries=3) as client:
        error = await failure(client)

    assert error.code == "PROVIDER_RATE_LIMITED"
    assert len(server.seen) == 1


@pytest.mark.parametrize(
    ("code", "header", "calls", "expected"),
    [
        pytest.param(500, "false", 1, "PROVIDER_UNAVAILABLE", id="server-says-do-not-retry-a-500"),
        pytest.param(400, "true", 3, "PROVIDER_REJECTED", id="server-says-retry-a-400"),
    ],
)
async def test_the_server_can_say_whether_to_retry(
    code: int, header: str, calls: int, expected: ProviderCode
) -> None:
    answer = status(code, {"x-should-retry": header, "retry-after-ms": "10"})
    async with model_server(otherwise=answer) as server, provider(server.base_url, max_retries=2) as client:
        error = await failure(client)

    assert error.code == expected
    assert len(server.seen) == calls
    assert f"HTTP {code}" in str(error)
    assert f"scripted {code}" in str(error)


async def test_a_slow_answer_is_tried_again_within_the_retries() -> None:
    async with (
        model_server(slow(1.0)) as server,
        provider(server.base_url, timeout_s=0.2, max_retries=1) as client,
    ):
        answer = await client.complete(QUESTION, "gpt-test")

    assert answer.text == "ok"
    assert len(server.seen) == 2


async def test_latency_counts_the_whole_call_with_its_retries() -> None:
    busy = status(503, {"retry-after-ms": "150"})
    async with model_server(busy) as server, provider(server.base_url) as client:
        answer = await client.complete(QUESTION, "gpt-test")

    assert answer.latency_ms >= 150


# --- addresses and headers ----------------------------------------------------------------------


async def test_an_azure_style_base_url_keeps_its_path_and_query() -> None:
    async with model_server(path="/openai/deployments/gpt/chat/completions") as server:
        base_url = f"{server.base_url}?api-version=2024-10-21"
        async with provider(base_url, headers={"api-key": "azure-key"}) as client:
            await client.complete(QUESTION, "gpt-test")

    [seen] = server.seen
    assert seen.path == "/openai/deployments/gpt/chat/completions"
    assert seen.query == "api-version=2024-10-21"
    assert seen.headers["api-key"] == "azure-key"
    assert seen.headers["content-type"] == "application/json"


async def test_a_base_url_with_a_trailing_slash_is_joined_once() -> None:
    async with model_server() as server, provider(f"{server.base_url}/") as client:
        await client.complete(QUESTION, "gpt-test")

    assert server.seen[0].path == "/v1/chat/completions"


async def test_a_configured_authorization_header_wins_over_the_key() -> None:
    async with (
        model_server() as server,
        provider(server.base_url, headers={"Authorization": "Bearer from-config"}) as client,
    ):
        await client.complete(QUESTION, "gpt-test")

    assert server.seen[0].headers["authorization"] == "Bearer from-config"


async def test_read_only_schemas_and_tool_parameters_are_sent_as_json() -> None:
    parameters: dict[str, JsonValue] = {"type": "object", "required": ["order"]}
    tool = ToolSpec("lookup_order", "Find an order.", MappingProxyType(parameters))
    request = CompletionRequest(
        model="fake:gpt-test",
        messages=QUESTION.messages,
        tools=[tool],
        json_schema=MappingProxyType({"type": "object"}),
    )
    async with model_server() as server, provider(server.base_url) as client:
        await client.complete(request, "gpt-test")

    sent = server.seen[0].json
    assert sent["tools"][0]["function"]["parameters"] == parameters
    assert sent["response_format"]["json_schema"]["schema"] == {"type": "object"}


# --- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"id": "x", "object": "chat.completion"}, id="no-choices-field"),
        pytest.param({**completion(), "choices": []}, id="empty-choices"),
        pytest.param({**completion(), "choices": [{"message": "hi"}]}, id="message-not-an-object"),
        pytest.param([1, 2, 3], id="a-list"),
    ],
)
async def test_json_that_is_not_a_chat_completion_is_a_bad_response(document: object) -> None:
    async with model_server(body(document)) as server, provider(server.base_url) as client:
        error = await failure(client)

    assert error.code == "PROVIDER_BAD_RESPONSE"
    assert len(server.seen) == 1


async def test_missing_usage_and_model_count_zero_tokens_on_the_requested_model() -> None:
    bare = {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    async with model_server(body(bare)) as server, provider(server.base_url) as client:
        answer = await client.complete(QUESTION, "gpt-test")

    assert (answer.text, answer.input_tokens, answer.output_tokens, answer.model) == ("hi", 0, 0, "gpt-test")


async def test_tool_arguments_sent_as_an_object_are_taken_as_they_are() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": {"order": 7}}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    async with model_server(body(completion(message=message))) as server, provider(server.base_url) as client:
        answer = await client.complete(QUESTION, "gpt-test")

    [made] = answer.tool_calls
    assert (made.id, made.name, made.arguments) == ("call_1", "lookup", {"order": 7})


async def test_a_cancelled_call_stops_at_once_and_is_not_tried_again() -> None:
    async with (
        model_server(otherwise=slow(1.5)) as server,
        provider(server.base_url, max_retries=3) as client,
    ):
        call = asyncio.create_task(client.complete(QUESTION, "gpt-test"))
        await asyncio.sleep(0.2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(call, timeout=1.0)

    assert len(server.seen) == 1
