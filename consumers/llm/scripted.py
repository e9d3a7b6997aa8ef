"""The `scripted` model provider: the deterministic model of `service.domain.scripted` behind
the provider interface, with an optional simulated latency (benchmarks)."""

from __future__ import annotations

import asyncio

from consumers.llm.providers import Completion, CompletionRequest
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.errors import ProviderError
from service.domain.scripted import agent_reply, persona_reply


class ScriptedProvider:
    def __init__(self, latency_s: float = 0.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self._latency_s = latency_s
        self._clock = clock

    async def complete(self, request: CompletionRequest, model: str) -> Completion:
        started = self._clock.monotonic()
        if request.script is not None:
            reply = persona_reply(request.script, request.messages)
        elif request.rules is not None:
            reply = agent_reply(request.rules, request.messages)
        else:
            raise ProviderError(
                "PROVIDER_REJECTED", "the scripted model needs a persona script or agent rules"
            )
        if self._latency_s and (reply.text or reply.tool_calls):
            await asyncio.sleep(self._latency_s)
        return Completion(
            text=reply.text,
            tool_calls=reply.tool_calls,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            latency_ms=int((self._clock.monotonic() - started) * 1000),
            model="scripted",
        )

    async def close(self) -> None:
        return None
