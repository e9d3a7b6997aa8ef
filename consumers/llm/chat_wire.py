"""The OpenAI chat-completions wire format, without the talking: the JSON body sent for a request
and the Completion read back from an answer (`openai_compat` does the HTTP).

The answer is validated into a few small models that name only the fields read (unknown fields
are ignored), straight from the bytes by pydantic-core; anything that is not JSON or not shaped
like a chat completion is a PROVIDER_BAD_RESPONSE.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pydantic_core
from pydantic import BaseModel, JsonValue, ValidationError

from consumers.llm.providers import ChatMessage, Completion, CompletionRequest, ToolSpec
from service.core.errors import ProviderError
from service.core.settings import ModelSettings
from service.domain.transcript import ToolCallRecord

EXCERPT_CHARS = 300


class _Function(BaseModel):
    name: str
    arguments: str | dict[str, JsonValue] | None = None


class _ToolCall(BaseModel):
    id: str = ""
    type: str = "function"
    function: _Function | None = None


class _Message(BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(BaseModel):
    message: _Message


class _Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _ChatCompletion(BaseModel):
    choices: list[_Choice]
    usage: _Usage | None = None
    model: str | None = None


def request_body(request: CompletionRequest, model: str, settings: ModelSettings) -> bytes:
    """The JSON body of `POST {base_url}/chat/completions` for `request` on `model`."""
    body: dict[str, JsonValue] = {"model": model, "messages": [_message(m) for m in request.messages]}
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
    if request.temperature is not None:
        body["temperature"] = request.temperature
    max_tokens = request.max_tokens or settings.max_tokens
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if request.json_schema is not None and settings.structured_output == "json_schema":
        schema: dict[str, JsonValue] = {
            "name": "answer",
            "schema": _plain(request.json_schema),
            "strict": True,
        }
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif request.json_schema is not None and settings.structured_output == "json_object":
        body["response_format"] = {"type": "json_object"}
    return pydantic_core.to_json(body, fallback=_json_fallback)


def _message(message: ChatMessage) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {
                    "name": c.name,
                    "arguments": pydantic_core.to_json(c.arguments, fallback=_json_fallback).decode(),
                },
            }
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _tool(tool: ToolSpec) -> dict[str, JsonValue]:
    function: dict[str, JsonValue] = {
        "name": tool.name,
        "description": tool.description,
        "parameters": _plain(tool.parameters),
    }
    return {"type": "function", "function": function}


def _plain(value: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    return value if isinstance(value, dict) else dict(value)


def _json_fallback(value: object) -> JsonValue:
    """A mapping or sequence nested in a schema that is not a dict or list (read-only views)."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def read_completion(raw: bytes, model: str, latency_ms: int) -> Completion:
    """The Completion in a 2xx answer's body, or ProviderError PROVIDER_BAD_RESPONSE."""
    try:
        answer = _ChatCompletion.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise bad_response(model, f"the response is not JSON: {excerpt(raw)}") from None
        where = ".".join(str(part) for part in first["loc"]) or "the response"
        problem = f"{where}: {first['msg']}"
        raise bad_response(
            model, f"the response is not a chat completion ({problem}): {excerpt(raw)}"
        ) from None
    if not answer.choices:
        raise bad_response(model, "the response has no choices")
    message = answer.choices[0].message
    calls = tuple(
        _tool_call(c.id, c.function) for c in message.tool_calls or [] if c.type == "function" and c.function
    )
    usage = answer.usage or _Usage()
    return Completion(
        text=message.content,
        tool_calls=calls,
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        latency_ms=latency_ms,
        model=answer.model or model,
    )


def _tool_call(call_id: str, function: _Function) -> ToolCallRecord:
    """A call as the model made it; arguments that are not a JSON object are kept under `_raw`."""
    raw = function.arguments or "{}"
    if isinstance(raw, dict):
        return ToolCallRecord(id=call_id, name=function.name, arguments=raw)
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        parsed = None
    arguments: dict[str, JsonValue] = parsed if isinstance(parsed, dict) else {"_raw": raw}
    return ToolCallRecord(id=call_id, name=function.name, arguments=arguments)


def bad_response(model: str, message: str) -> ProviderError:
    return ProviderError("PROVIDER_BAD_RESPONSE", f"{model}: {message}")


def excerpt(raw: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """The start of a body as one line of at most `limit` characters."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= limit else text[: limit - 3] + "..."
