"""The OpenAI-compatible provider against a real local HTTP server: what it sends, what a caller
gets back, and how failures surface as ProviderError codes after the SDK's own retries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pydantic import JsonValue, SecretStr

from consumers.llm.openai_compat import OpenAICompatibleProvider, providers_from_settings
from consumers.llm.providers import ChatMessage, Completion, CompletionRequest, Providers, ToolSpec
from service.core.errors import ProviderCode, ProviderError
from service.core.settings import ModelSettings, ProviderConfig, Settings
from service.domain.transcript import ToolCallRecord
from service.local.pgserver import free_port
from tests.support.fake_llm import FakeLLM, Reply, chat_completions_server

FAST_RETRY = {"retry-after-ms": "10"}  # the SDK honours it instead of its ~0.5-1 s backoff
SCHEMA: dict[str, JsonValue] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
LOOKUP = ToolSpec(
    name="lookup_order",
    description="Find an order by its number.",
    parameters={"type": "object", "properties": {"order": {"type": "integer"}}, "required": ["order"]},
)


@asynccontextmanager
async def fake_providers(
    base_url: str,
    *,
    api_key: str | None = "sk-test",
    timeout_s: float = 5.0,
    max_retries: int = 0,
    models: Mapping[str, ModelSettings] | None = None,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[Providers]:
    config = ProviderConfig(
        base_url=base_url,
        timeout_s=timeout_s,
        max_retries=max_retries,
        models=dict(models or {}),
        headers=dict(headers or {}),
    )
    providers = Providers({"fake": OpenAICompatibleProvider(config, api_key)})
    try:
        yield providers
    finally:
        await providers.close()


def ask(model: str = "fake:gpt-test", **fields: Any) -> CompletionRequest:
    return CompletionRequest(model=model, messages=[ChatMessage(role="user", content="Hello?")], **fields)


async def provider_error(providers: Providers, request: CompletionRequest) -> ProviderCode:
    with pytest.raises(ProviderError) as caught:
        await providers.complete(request)
    return caught.value.code


def completion_body(model: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_790_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


@dataclass
class HeaderRecorder:
    """A minimal chat-completions endpoint that records the headers of every request (the fake
    records bodies only)."""

    headers: list[dict[str, str]] = field(default_factory=list)
    base_url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        body = await request.json()
        return web.json_response(completion_body(body["model"], {"role": "assistant", "content": "ok"}))


@asynccontextmanager
async def header_recorder() -> AsyncIterator[HeaderRecorder]:
    recorder = HeaderRecorder()
    async with chat_completions_server(recorder.handle) as base_url:
        recorder.base_url = base_url
        yield recorder


# --- a plain completion -------------------------------------------------------------------------


async def test_completion_returns_text_usage_model_and_latency(llm: FakeLLM) -> None:
    llm.script(Reply(text="Hi there.", input_tokens=31, output_tokens=4, delay_s=0.05))
    async with fake_providers(llm.base_url) as providers:
        completion = await providers.complete(ask())

    assert completion == Completion(
        text="Hi there.",
        tool_calls=(),
        input_tokens=31,
        output_tokens=4,
        latency_ms=completion.latency_ms,
        model="gpt-test",
    )
    assert completion.latency_ms >= 50  # the server took 50 ms to answer


async def test_request_carries_messages_temperature_and_max_tokens(llm: FakeLLM) -> None:
    llm.script(Reply(text="ok"))
    messages = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Hi")]
    request = CompletionRequest(model="fake:gpt-test", messages=messages, temperature=0.3, max_tokens=64)
    async with fake_providers(llm.base_url) as providers:
        await providers.complete(request)

    [sent] = llm.requests
    assert sent["model"] == "gpt-test"
    assert [(m["role"], m["content"]) for m in sent["messages"]] == [("system", "Be brief."), ("user", "Hi")]
    assert sent["temperature"] == 0.3
    assert sent["max_tokens"] == 64
    assert "tools" not in sent
    assert "response_format" not in sent


async def test_max_tokens_comes_from_model_settings_when_the_request_has_none(llm: FakeLLM) -> None:
    llm.script(Reply(text="ok"), Reply(text="ok"))
    models = {"gpt-test": ModelSettings(max_tokens=500)}
    async with fake_providers(llm.base_url, models=models) as providers:
        await providers.complete(ask())
        await providers.complete(ask(model="fake:other-model"))

    capped, uncapped = llm.requests
    assert capped["max_tokens"] == 500
    assert "max_tokens" not in uncapped
    assert "temperature" not in uncapped


async def test_request_max_tokens_wins_over_model_settings(llm: FakeLLM) -> None:
    llm.script(Reply(text="ok"))
    models = {"gpt-test": ModelSettings(max_tokens=500)}
    async with fake_providers(llm.base_url, models=models) as providers:
        await providers.complete(ask(max_tokens=20))

    assert llm.requests[0]["max_tokens"] == 20


async def test_api_key_is_sent_as_bearer_token_with_configured_headers() -> None:
    async with (
        header_recorder() as server,
        fake_providers(server.base_url, api_key="sk-secret-1", headers={"X-Tenant": "acme"}) as providers,
    ):
        completion = await providers.complete(ask())

    assert completion.text == "ok"
    [headers] = server.headers
    assert headers["authorization"] == "Bearer sk-secret-1"
    assert headers["x-tenant"] == "acme"


async def test_provider_without_a_key_sends_a_placeholder_key() -> None:
    async with header_recorder() as server, fake_providers(server.base_url, api_key=None) as providers:
        await providers.complete(ask())

    assert server.headers[0]["authorization"] == "Bearer not-needed"


# --- tool calling -------------------------------------------------------------------------------


async def test_tools_are_sent_as_functions(llm: FakeLLM) -> None:
    llm.script(Reply(text="ok"))
    async with fake_providers(llm.base_url) as providers:
        await providers.complete(ask(tools=[LOOKUP]))

    assert llm.requests[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Find an order by its number.",
                "parameters": {
                    "type": "object",
                    "properties": {"order": {"type": "integer"}},
                    "required": ["order"],
                },
            },
        }
    ]


async def test_tool_calls_in_the_reply_come_back_with_parsed_arguments(llm: FakeLLM) -> None:
    llm.script(Reply(tool_calls=(("lookup_order", {"order": 42}), ("end_call", {}))))
    async with fake_providers(llm.base_url) as providers:
        completion = await providers.complete(ask(tools=[LOOKUP]))

    assert completion.text is None
    assert [(c.name, c.arguments) for c in completion.tool_calls] == [
        ("lookup_order", {"order": 42}),
        ("end_call", {}),
    ]
    assert all(c.id.startswith("call_") for c in completion.tool_calls)
    assert len({c.id for c in completion.tool_calls}) == 2


async def test_tool_arguments_that_are_not_a_json_object_are_kept_raw(llm: FakeLLM) -> None:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "lookup_order", "arguments": "[1, 2]"}},
        {"id": "call_b", "type": "function", "function": {"name": "lookup_order", "arguments": "oops{"}},
    ]
    body = completion_body("gpt-test", {"role": "assistant", "content": None, "tool_calls": calls})
    llm.script(Reply(raw_body=json.dumps(body)))
    async with fake_providers(llm.base_url) as providers:
        completion = await providers.complete(ask(tools=[LOOKUP]))

    assert completion.tool_calls == (
        ToolCallRecord(id="call_a", name="lookup_order", arguments={"_raw": "[1, 2]"}),
        ToolCallRecord(id="call_b", name="lookup_order", arguments={"_raw": "oops{"}),
    )


async def test_tool_call_history_is_sent_in_the_openai_shape(llm: FakeLLM) -> None:
    llm.script(Reply(text="Your order ships tomorrow."))
    call = ToolCallRecord(id="call_7", name="lookup_order", arguments={"order": 42})
    messages = [
        ChatMessage(role="user", content="Where is order 42?"),
        ChatMessage(role="assistant", tool_calls=(call,)),
        ChatMessage(role="tool", content='{"status": "shipping"}', tool_call_id="call_7"),
    ]
    async with fake_providers(llm.base_url) as providers:
        await providers.complete(CompletionRequest(model="fake:gpt-test", messages=messages, tools=[LOOKUP]))

    _, assistant, tool = llm.requests[0]["messages"]
    assert assistant["role"] == "assistant"
    assert assistant.get("content") is None
    [sent_call] = assistant["tool_calls"]
    assert sent_call["id"] == "call_7"
    assert sent_call["type"] == "function"
    assert sent_call["function"]["name"] == "lookup_order"
    assert json.loads(sent_call["function"]["arguments"]) == {"order": 42}
    assert tool == {"role": "tool", "content": '{"status": "shipping"}', "tool_call_id": "call_7"}


# --- structured output --------------------------------------------------------------------------


async def test_json_schema_is_requested_as_strict_response_format(llm: FakeLLM) -> None:
    llm.script(Reply(text='{"answer": "yes"}'))
    async with fake_providers(llm.base_url) as providers:
        completion = await providers.complete(ask(json_schema=SCHEMA))

    assert completion.text == '{"answer": "yes"}'
    response_format = llm.requests[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"] == SCHEMA
    assert response_format["json_schema"]["strict"] is True
    assert isinstance(response_format["json_schema"]["name"], str)
    assert response_format["json_schema"]["name"]


async def test_json_object_models_are_asked_for_any_json_object(llm: FakeLLM) -> None:
    llm.script(Reply(text="{}"))
    models = {"gpt-test": ModelSettings(structured_output="json_object")}
    async with fake_providers(llm.base_url, models=models) as providers:
        await providers.complete(ask(json_schema=SCHEMA))

    assert llm.requests[0]["response_format"] == {"type": "json_object"}


async def test_models_without_structured_output_get_no_response_format(llm: FakeLLM) -> None:
    llm.script(Reply(text="{}"))
    models = {"gpt-test": ModelSettings(structured_output="none")}
    async with fake_providers(llm.base_url, models=models) as providers:
        await providers.complete(ask(json_schema=SCHEMA))

    assert "response_format" not in llm.requests[0]


# --- retries and failures -----------------------------------------------------------------------


async def test_rate_limit_with_retry_after_is_retried_then_succeeds(llm: FakeLLM) -> None:
    llm.script(Reply(status=429, headers=FAST_RETRY), Reply(text="finally"))
    async with fake_providers(llm.base_url, max_retries=1) as providers:
        completion = await providers.complete(ask())

    assert completion.text == "finally"
    assert len(llm.requests) == 2


async def test_server_errors_are_retried_up_to_max_retries(llm: FakeLLM) -> None:
    llm.script(Reply(status=500, headers=FAST_RETRY), Reply(status=503, headers=FAST_RETRY), Reply(text="up"))
    async with fake_providers(llm.base_url, max_retries=2) as providers:
        completion = await providers.complete(ask())

    assert completion.text == "up"
    assert len(llm.requests) == 3


@pytest.mark.parametrize(
    ("status", "expected", "calls"),
    [
        pytest.param(500, "PROVIDER_UNAVAILABLE", 3, id="server-keeps-failing-is-unavailable-after-retries"),
        pytest.param(429, "PROVIDER_RATE_LIMITED", 3, id="rate-limit-that-persists-is-rate-limited"),
        pytest.param(400, "PROVIDER_REJECTED", 1, id="bad-request-is-rejected-without-retrying"),
        pytest.param(401, "PROVIDER_REJECTED", 1, id="unauthorized-is-rejected-without-retrying"),
    ],
)
async def test_an_error_status_that_persists_surfaces_as_its_code(
    llm: FakeLLM, status: int, expected: ProviderCode, calls: int
) -> None:
    llm.responder = lambda _: Reply(status=status, headers=FAST_RETRY)
    async with fake_providers(llm.base_url, max_retries=2) as providers:
        code = await provider_error(providers, ask())

    assert code == expected
    assert len(llm.requests) == calls


async def test_reply_slower_than_the_timeout_is_a_timeout(llm: FakeLLM) -> None:
    llm.script(Reply(text="too late", delay_s=1.0))
    async with fake_providers(llm.base_url, timeout_s=0.2, max_retries=0) as providers:
        code = await provider_error(providers, ask())

    assert code == "PROVIDER_TIMEOUT"
    assert len(llm.requests) == 1


async def test_body_that_is_not_json_is_a_bad_response(llm: FakeLLM) -> None:
    llm.script(Reply(raw_body="<html>gateway says hi</html>"))
    async with fake_providers(llm.base_url) as providers:
        code = await provider_error(providers, ask())

    assert code == "PROVIDER_BAD_RESPONSE"


async def test_server_that_is_not_listening_is_unavailable() -> None:
    async with fake_providers(f"http://127.0.0.1:{free_port()}/v1", max_retries=0) as providers:
        code = await provider_error(providers, ask())

    assert code == "PROVIDER_UNAVAILABLE"


async def test_unknown_provider_is_rejected_without_a_call(llm: FakeLLM) -> None:
    async with fake_providers(llm.base_url) as providers:
        code = await provider_error(providers, ask(model="elsewhere:gpt-test"))

    assert code == "PROVIDER_REJECTED"
    assert llm.requests == []


# --- configuration ------------------------------------------------------------------------------


async def test_providers_from_settings_builds_openai_and_every_registered_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCAL_LLM_KEY", "sk-local")
    async with header_recorder() as openai_server, header_recorder() as local_server:
        settings = Settings(
            openai_base_url=openai_server.base_url,
            openai_api_key=SecretStr("sk-openai"),
            providers={"local": ProviderConfig(base_url=local_server.base_url, api_key_env="LOCAL_LLM_KEY")},
        )
        built = providers_from_settings(settings)
        assert set(built) == {"openai", "local"}
        providers = Providers(built)
        try:
            await providers.complete(ask(model="openai:gpt-4o-mini"))
            await providers.complete(ask(model="local:llama"))
        finally:
            await providers.close()

    assert [h["authorization"] for h in openai_server.headers] == ["Bearer sk-openai"]
    assert [h["authorization"] for h in local_server.headers] == ["Bearer sk-local"]


def test_provider_api_key_reads_the_variable_the_config_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_LLM_KEY", "sk-local")
    monkeypatch.delenv("MISSING_LLM_KEY", raising=False)
    settings = Settings(openai_api_key=SecretStr("sk-openai"))

    assert settings.provider_api_key(ProviderConfig(base_url="http://x", api_key_env="LOCAL_LLM_KEY")) == (
        "sk-local"
    )
    assert (
        settings.provider_api_key(ProviderConfig(base_url="http://x", api_key_env="MISSING_LLM_KEY")) is None
    )
    assert settings.provider_api_key(ProviderConfig(base_url="http://x")) is None
    assert settings.provider_api_key(settings.provider_registry()["openai"]) == "sk-openai"
