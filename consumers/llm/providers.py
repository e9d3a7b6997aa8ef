"""The model-provider interface (DESIGN.md §6): one call in, one completion out, usage counted.

Models are named `<provider>:<model>`; `Providers` routes a request to the provider by name.
A provider retries transient failures itself (429 honouring Retry-After, 5xx, timeouts) and
raises ProviderError, with a machine code, only once it gives up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import JsonValue

from schemas.agents import ScriptedRule
from service.core.errors import ProviderError
from service.domain.messages import ChatMessage, ToolSpec
from service.domain.transcript import ToolCallRecord


@dataclass(frozen=True)
class CompletionRequest:
    model: str  # "<provider>:<model>"
    messages: Sequence[ChatMessage]
    tools: Sequence[ToolSpec] = ()
    temperature: float | None = None
    json_schema: Mapping[str, JsonValue] | None = None  # ask for JSON matching this schema
    max_tokens: int | None = None
    script: Sequence[str] | None = None  # the `scripted` persona's lines
    rules: Sequence[ScriptedRule] | None = None  # the `scripted` agent's rules


@dataclass(frozen=True)
class Completion:
    text: str | None
    tool_calls: tuple[ToolCallRecord, ...]
    input_tokens: int
    output_tokens: int
    latency_ms: int
    model: str


class ModelProvider(Protocol):
    async def complete(self, request: CompletionRequest, model: str) -> Completion:
        """Run `request` on `model` (the name without the provider prefix)."""
        ...

    async def close(self) -> None: ...


def split_model(model: str) -> tuple[str, str]:
    """`openai:gpt-4o` → ("openai", "gpt-4o"); `scripted` → ("scripted", "scripted")."""
    provider, _, name = model.partition(":")
    return provider, name or provider


__all__ = ["ChatMessage", "Completion", "CompletionRequest", "Providers", "ToolSpec"]


class Providers:
    """Every configured provider by name; routes each request by its model's prefix."""

    def __init__(self, providers: Mapping[str, ModelProvider]) -> None:
        self._providers = dict(providers)

    async def complete(self, request: CompletionRequest) -> Completion:
        provider_name, model = split_model(request.model)
        provider = self._providers.get(provider_name)
        if provider is None:
            raise ProviderError("PROVIDER_REJECTED", f"no provider named {provider_name!r} is configured")
        return await provider.complete(request, model)

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
