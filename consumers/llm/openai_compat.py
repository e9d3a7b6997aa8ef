"""OpenAI-compatible chat completions (OpenAI, Azure, vLLM, Ollama, llama.cpp, LiteLLM, …) via
the official `openai` SDK, which retries 408/409/429/5xx and timeouts with exponential backoff
and honours `Retry-After`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion
from openai.types.chat import ChatCompletionMessageFunctionToolCall as FunctionToolCall
from pydantic import JsonValue

from consumers.llm.providers import ChatMessage, Completion, CompletionRequest, ToolSpec
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.errors import ProviderCode, ProviderError
from service.core.settings import ModelSettings, ProviderConfig, Settings
from service.domain.transcript import ToolCallRecord

NO_KEY = "not-needed"  # local servers take no key; the SDK insists on one


class OpenAICompatibleProvider:
    def __init__(self, config: ProviderConfig, api_key: str | None, clock: Clock = SYSTEM_CLOCK) -> None:
        self._config = config
        self._clock = clock
        self._client = AsyncOpenAI(
            base_url=config.base_url,
            api_key=api_key or NO_KEY,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
            default_headers=config.headers or None,
        )

    async def complete(self, request: CompletionRequest, model: str) -> Completion:
        settings = self._config.model_settings(model)
        started = self._clock.monotonic()
        try:
            response = await self._client.chat.completions.create(**_arguments(request, model, settings))
        except openai.APITimeoutError as exc:
            raise ProviderError("PROVIDER_TIMEOUT", f"{model}: timed out after retries") from exc
        except openai.RateLimitError as exc:
            raise ProviderError(
                "PROVIDER_RATE_LIMITED", f"{model}: still rate limited after retries"
            ) from exc
        except openai.APIStatusError as exc:
            code: ProviderCode = "PROVIDER_UNAVAILABLE" if exc.status_code >= 500 else "PROVIDER_REJECTED"
            raise ProviderError(code, f"{model}: HTTP {exc.status_code}: {_short(exc.message)}") from exc
        except openai.APIConnectionError as exc:
            raise ProviderError("PROVIDER_UNAVAILABLE", f"{model}: cannot connect: {exc}") from exc
        except (openai.APIError, ValueError) as exc:  # ValueError: a body that is not JSON
            raise ProviderError("PROVIDER_BAD_RESPONSE", f"{model}: {_short(str(exc))}") from exc
        return _completion(response, model, int((self._clock.monotonic() - started) * 1000))

    async def close(self) -> None:
        await self._client.close()


def _arguments(request: CompletionRequest, model: str, settings: ModelSettings) -> dict[str, Any]:
    arguments: dict[str, Any] = {"model": model, "messages": [_message(m) for m in request.messages]}
    if request.tools:
        arguments["tools"] = [_tool(t) for t in request.tools]
    if request.temperature is not None:
        arguments["temperature"] = request.temperature
    max_tokens = request.max_tokens or settings.max_tokens
    if max_tokens is not None:
        arguments["max_tokens"] = max_tokens
    if request.json_schema is not None and settings.structured_output == "json_schema":
        schema = {"name": "answer", "schema": dict(request.json_schema), "strict": True}
        arguments["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif request.json_schema is not None and settings.structured_output == "json_object":
        arguments["response_format"] = {"type": "json_object"}
    return arguments


def _message(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _tool(tool: ToolSpec) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description, "parameters": dict(tool.parameters)}
    return {"type": "function", "function": function}


def _completion(response: ChatCompletion, model: str, latency_ms: int) -> Completion:
    if not response.choices:
        raise ProviderError("PROVIDER_BAD_RESPONSE", f"{model}: the response has no choices")
    message = response.choices[0].message
    calls = tuple(_tool_call(c) for c in (message.tool_calls or []) if isinstance(c, FunctionToolCall))
    usage = response.usage
    return Completion(
        text=message.content,
        tool_calls=calls,
        input_tokens=int(usage.prompt_tokens or 0) if usage else 0,
        output_tokens=int(usage.completion_tokens or 0) if usage else 0,
        latency_ms=latency_ms,
        model=str(response.model or model),
    )


def _tool_call(call: FunctionToolCall) -> ToolCallRecord:
    """A call as the model made it; arguments that are not a JSON object are kept under `_raw`."""
    raw = call.function.arguments or "{}"
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = None
    arguments: dict[str, JsonValue] = parsed if isinstance(parsed, dict) else {"_raw": raw}
    return ToolCallRecord(id=str(call.id), name=str(call.function.name), arguments=arguments)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def providers_from_settings(settings: Settings) -> Mapping[str, OpenAICompatibleProvider]:
    """One client per configured provider (the `scripted` provider is added by the executor)."""
    return {
        name: OpenAICompatibleProvider(config, settings.provider_api_key(config))
        for name, config in settings.provider_registry().items()
    }
