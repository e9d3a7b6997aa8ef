"""Talking to an agent of `"type": "http"`, without the talking: the request sent for a turn, the
reply read back, and the readable message of every way it can fail (the executor's
`consumers.executor.http_agent` does the I/O).

The agent is sent the conversation so far, the persona as `user` and itself as `assistant`
(text only: its tool calls are its own business, and a call without its result would be an
invalid OpenAI conversation), after its `system_prompt` as a system message when it has one. The
run id is the session id. Tool calls it reports are recorded (so `must_call_tool` can judge
them) and never executed; `end: true`, or a call of `end_call`, hangs up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, JsonValue, NonNegativeInt, StringConstraints, ValidationError

from schemas.endpoints import EndpointFields, EndpointFormat
from service.core.errors import ProviderError
from service.domain.messages import END_CALL
from service.domain.transcript import ToolCallRecord, TranscriptTurn

SESSION_HEADER = "X-Session-Id"
DEFAULT_MODEL = "http"  # what a turn's model says when the agent names none (priced as the agent role)
EXCERPT_CHARS = 300
CONNECT_WAITS_S = (0.5, 1.0, 2.0, 4.0)  # a refused connection is tried 5 times over ~7.5 s
BUSY_STATUSES = frozenset({429, 503})
BUSY_TRIES = 3
BUSY_WAITS_S = (1.0, 2.0)  # between tries, when the agent gives no Retry-After
MAX_RETRY_AFTER_S = 10.0  # a longer Retry-After is not waited for: the run fails at once
NETWORKS_HINT = "an operator can allow private agents with AGENT_EVAL_AGENT_ALLOWED_NETWORKS"


@dataclass(frozen=True)
class AgentReply:
    """What the agent said in one turn, and the usage it reported (0 when it reported none)."""

    text: str | None
    tool_calls: tuple[ToolCallRecord, ...]
    input_tokens: int
    output_tokens: int
    model: str | None


def conversation(system_prompt: str, transcript: Sequence[TranscriptTurn]) -> list[JsonValue]:
    """The messages sent: the system prompt when not empty, then every persona and agent text."""
    messages: list[JsonValue] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for turn in transcript:
        if turn.role in ("persona", "agent") and turn.text:
            messages.append({"role": "user" if turn.role == "persona" else "assistant", "content": turn.text})
    return messages


def request_body(
    endpoint: EndpointFields, system_prompt: str, session_id: str, transcript: Sequence[TranscriptTurn]
) -> dict[str, JsonValue]:
    """The JSON body of one call in the endpoint's format."""
    messages: JsonValue = conversation(system_prompt, transcript)
    if endpoint.format == "simple":
        return {"session_id": session_id, "messages": messages}
    body: dict[str, JsonValue] = {"messages": messages, "user": session_id}
    if endpoint.model is not None:
        body = {"model": endpoint.model, **body}
    return body


# --- replies ---------------------------------------------------------------------------------

CallName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _ChatFunction(BaseModel):
    name: CallName
    arguments: str | dict[str, JsonValue] = "{}"


class _ChatCall(BaseModel):
    id: str | None = None
    function: _ChatFunction


class _ChatMessage(BaseModel):
    content: str | None = None
    tool_calls: list[_ChatCall] | None = None


class _ChatChoice(BaseModel):
    message: _ChatMessage


class _ChatUsage(BaseModel):
    prompt_tokens: NonNegativeInt = 0
    completion_tokens: NonNegativeInt = 0


class _ChatCompletion(BaseModel):
    choices: list[_ChatChoice] = Field(min_length=1)
    usage: _ChatUsage | None = None
    model: str | None = None


class _SimpleCall(BaseModel):
    name: CallName
    arguments: dict[str, JsonValue] | None = None
    id: str | None = None


class _SimpleUsage(BaseModel):
    input_tokens: NonNegativeInt = 0
    output_tokens: NonNegativeInt = 0


class _SimpleReply(BaseModel):
    reply: str | None = None
    tool_calls: list[_SimpleCall] | None = None  # null, like absent, is none
    end: bool | None = None
    usage: _SimpleUsage | None = None
    model: str | None = None


SIMPLE_KEYS = frozenset({"reply", "tool_calls", "end"})
SHAPES = {"openai_chat": "an OpenAI chat completion", "simple": 'a {"reply", …} object'}


def read_reply(format_: EndpointFormat, raw: bytes, position: int) -> AgentReply:
    """The agent's answer to the call made at transcript `position` (which names tool calls that
    come without an id), or ProviderError AGENT_BAD_RESPONSE quoting what came back."""
    try:
        document: Any = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad_response(f"the agent's answer is not JSON: {excerpt(raw)}") from None
    if format_ == "simple" and isinstance(document, dict) and not SIMPLE_KEYS & set(document):
        raise bad_response(f'the agent\'s answer has no "reply", "tool_calls" or "end": {excerpt(raw)}')
    try:
        if format_ == "simple":
            return _simple_reply(_SimpleReply.model_validate(document), position)
        return _chat_reply(_ChatCompletion.model_validate(document), position, raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the answer"
        problem = f"{SHAPES[format_]} ({where}: {first['msg']})"
        raise bad_response(f"the agent's answer is not {problem}: {excerpt(raw)}") from None


def _simple_reply(reply: _SimpleReply, position: int) -> AgentReply:
    calls = [
        ToolCallRecord(call.id or f"call-{position}-{index}", call.name, dict(call.arguments or {}))
        for index, call in enumerate(reply.tool_calls or [])
    ]
    if reply.end and all(call.name != END_CALL.name for call in calls):
        calls.append(ToolCallRecord(f"call-{position}-{len(calls)}", END_CALL.name))
    usage = reply.usage or _SimpleUsage()
    return AgentReply(reply.reply or None, tuple(calls), usage.input_tokens, usage.output_tokens, reply.model)


def _chat_reply(completion: _ChatCompletion, position: int, raw: bytes) -> AgentReply:
    message = completion.choices[0].message
    calls = tuple(
        ToolCallRecord(
            call.id or f"call-{position}-{index}", call.function.name, _arguments(call.function, raw)
        )
        for index, call in enumerate(message.tool_calls or [])
    )
    usage = completion.usage or _ChatUsage()
    return AgentReply(
        message.content or None, calls, usage.prompt_tokens, usage.completion_tokens, completion.model
    )


def _arguments(function: _ChatFunction, raw: bytes) -> dict[str, JsonValue]:
    """A call's `arguments`: a JSON object, usually encoded as a string (OpenAI's way)."""
    arguments: Any = function.arguments
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError):
            arguments = None
    if not isinstance(arguments, dict):
        raise bad_response(
            f"the agent's call of {function.name} has arguments that are not a JSON object: {excerpt(raw)}"
        )
    return arguments


# --- failures --------------------------------------------------------------------------------


def excerpt(raw: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """The start of a body as one line of at most `limit` characters (… marks a cut)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return "(empty body)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bad_response(message: str) -> ProviderError:
    return ProviderError("AGENT_BAD_RESPONSE", message)


def status_failure(status: int, raw: bytes, location: str | None = None, note: str = "") -> ProviderError:
    """The run's error for a non-2xx answer: the status and a body excerpt, or where a redirect
    pointed (redirects are never followed)."""
    if 300 <= status < 400:
        where = location or "no Location"
        message = (
            f"the agent answered HTTP {status}, a redirect to {where}: redirects are not followed, "
            "so point the endpoint at the final URL"
        )
    else:
        message = f"the agent answered HTTP {status}{note}: {excerpt(raw)}"
    return ProviderError("AGENT_HTTP_STATUS", message)


def timeout_failure(timeout_secs: int) -> ProviderError:
    return ProviderError(
        "AGENT_HTTP_TIMEOUT", f"the agent did not answer within {timeout_secs} s (endpoint.timeout_secs)"
    )


def unreachable_failure(target: str, tries: int, reason: str) -> ProviderError:
    attempts = "once" if tries == 1 else f"after {tries} tries"
    return ProviderError(
        "AGENT_HTTP_UNREACHABLE", f"cannot connect to the agent at {target} {attempts}: {reason}"
    )


def refused_failure(reason: str) -> ProviderError:
    return ProviderError("AGENT_HTTP_REFUSED", f"refused: {reason} ({NETWORKS_HINT})")


# --- retries ---------------------------------------------------------------------------------


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """A Retry-After header in seconds from `now` (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def busy_wait_s(tries: int, retry_after: str | None, now: datetime) -> float | None:
    """How long to wait before calling a busy agent (429/503) again after `tries` calls, or None
    to give up: at most BUSY_TRIES calls, honouring a Retry-After of up to MAX_RETRY_AFTER_S."""
    if tries >= BUSY_TRIES:
        return None
    asked = retry_after_s(retry_after, now)
    if asked is None:
        return BUSY_WAITS_S[min(tries, len(BUSY_WAITS_S)) - 1]
    return asked if asked <= MAX_RETRY_AFTER_S else None
