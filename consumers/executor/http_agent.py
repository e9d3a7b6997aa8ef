"""Calling the user's own agent over HTTP (an agent of `"type": "http"`): one POST per agent turn
with the conversation so far (`service.domain.http_agents` decides what is sent and read).

Calls go through the SSRF guard, which AGENT_EVAL_AGENT_ALLOWED_NETWORKS opens for agent calls
only, and are checked again on every address a name resolves to. Redirects are never followed.
A refused connection is tried again with backoff (~7.5 s), a busy agent (429/503) up to three
times honouring Retry-After; every other failure fails the run at once with a ProviderError
whose code says how and whose message shows the status and the start of the body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID

import aiohttp
from pydantic import JsonValue

from consumers.llm.providers import Completion
from schemas.agents import Agent
from schemas.endpoints import SECRET_MASK, AgentEndpoint
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.errors import OutboundRefused, ProviderError, SettingsError
from service.core.logging import get_logger
from service.core.outbound import check_target, guarded_session, refusal
from service.core.sealing import SecretBox
from service.core.settings import Settings
from service.domain.endpoints import referenced_secrets, resolved_headers
from service.domain.http_agents import (
    BUSY_STATUSES,
    BUSY_TRIES,
    CONNECT_WAITS_S,
    DEFAULT_MODEL,
    SESSION_HEADER,
    bad_response,
    busy_wait_s,
    read_reply,
    refused_failure,
    request_body,
    status_failure,
    timeout_failure,
    unreachable_failure,
)
from service.domain.transcript import TranscriptTurn

log = get_logger("consumers.executor.http_agent")

MAX_RESPONSE_BYTES = 1_048_576
MAX_TIMEOUT_S = 300.0  # the session's ceiling; each call sets the endpoint's own timeout


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of the agent, read whole."""

    status: int
    raw: bytes
    location: str | None
    retry_after: str | None


class HttpAgentCaller:
    """One HTTP client for every external agent an executor talks to."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock = SYSTEM_CLOCK,
        connect_waits_s: Sequence[float] = CONNECT_WAITS_S,
    ) -> None:
        self._settings = settings
        self._allow_private = settings.webhook_allow_private
        self._networks = settings.agent_networks()
        self._clock = clock
        self._connect_waits = tuple(connect_waits_s)
        self._session: aiohttp.ClientSession | None = None

    async def complete(self, agent: Agent, run_id: UUID, transcript: Sequence[TranscriptTurn]) -> Completion:
        """The agent's reply to the conversation so far (`run_id` is the session id)."""
        endpoint = agent.endpoint
        if endpoint is None:
            raise ProviderError("AGENT_HTTP_REFUSED", "the agent has no endpoint to call")
        try:
            check_target(endpoint.url, allow_private=self._allow_private, allowed=self._networks)
        except OutboundRefused as exc:
            raise refused_failure(str(exc)) from exc
        headers = {**resolved_headers(endpoint.headers, self._opened(endpoint)), SESSION_HEADER: str(run_id)}
        body = request_body(endpoint, agent.system_prompt, str(run_id), transcript)
        started = self._clock.monotonic()
        answer = await self._answer(endpoint, headers, body)
        latency_ms = int((self._clock.monotonic() - started) * 1000)
        reply = read_reply(endpoint.format, answer.raw, len(transcript) + 1)
        return Completion(
            text=reply.text,
            tool_calls=reply.tool_calls,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            latency_ms=latency_ms,
            model=reply.model or DEFAULT_MODEL,
        )

    def _opened(self, endpoint: AgentEndpoint) -> dict[str, str]:
        """The plain values of the secrets the headers use."""
        used = {name for value in endpoint.headers.values() for name in referenced_secrets(value)}
        sealed = {name: value for name, value in endpoint.secrets.items() if name in used}
        if not sealed:
            return {}
        if SECRET_MASK in sealed.values():
            raise ProviderError("AGENT_HTTP_REFUSED", "the run's snapshot holds no stored value of a secret")
        try:
            box = SecretBox(self._settings.require_webhook_keys())
            return {name: box.open(value) for name, value in sealed.items()}
        except SettingsError as exc:
            raise ProviderError("AGENT_HTTP_REFUSED", f"the agent's secrets cannot be opened: {exc}") from exc

    async def _answer(self, endpoint: AgentEndpoint, headers: dict[str, str], body: JsonValue) -> Answer:
        """A 2xx answer, a busy agent asked again; ProviderError for any other status."""
        tries = 0
        while True:
            answer = await self._post(endpoint, headers, body)
            tries += 1
            if 200 <= answer.status < 300:
                return answer
            if answer.status not in BUSY_STATUSES:
                raise status_failure(answer.status, answer.raw, answer.location)
            wait_s = busy_wait_s(tries, answer.retry_after, self._clock.now())
            if wait_s is None:
                note = f" {tries} times" if tries >= BUSY_TRIES else f" (Retry-After: {answer.retry_after})"
                raise status_failure(answer.status, answer.raw, note=note)
            log.info("agent_busy", status=answer.status, tries=tries, wait_s=wait_s)
            await asyncio.sleep(wait_s)

    async def _post(self, endpoint: AgentEndpoint, headers: dict[str, str], body: JsonValue) -> Answer:
        """One answer, the call tried again while the connection is refused."""
        for tries, wait_s in enumerate((*self._connect_waits, None), start=1):
            try:
                return await self._post_once(endpoint, headers, body)
            except aiohttp.ClientConnectorError as exc:
                refused = refusal(exc)
                if refused:
                    raise refused_failure(refused) from exc
                if wait_s is None or isinstance(exc, aiohttp.ClientSSLError):
                    raise unreachable_failure(_origin(endpoint.url), tries, str(exc.os_error)) from exc
                log.info("agent_unreachable", tries=tries, wait_s=wait_s, error=str(exc.os_error))
                await asyncio.sleep(wait_s)
        raise AssertionError("the last try raises")  # pragma: no cover

    async def _post_once(self, endpoint: AgentEndpoint, headers: dict[str, str], body: JsonValue) -> Answer:
        timeout = aiohttp.ClientTimeout(total=endpoint.timeout_secs)
        try:
            async with self._client().post(
                endpoint.url, json=body, headers=headers, allow_redirects=False, timeout=timeout
            ) as response:
                raw = await response.content.read(MAX_RESPONSE_BYTES + 1)
                answer = Answer(
                    response.status,
                    raw,
                    response.headers.get("Location"),
                    response.headers.get("Retry-After"),
                )
        except TimeoutError as exc:
            raise timeout_failure(endpoint.timeout_secs) from exc
        except aiohttp.ClientConnectorError:
            raise
        except aiohttp.ClientError as exc:
            raise bad_response(f"the connection broke before the agent's whole answer: {exc!r}") from exc
        if len(raw) > MAX_RESPONSE_BYTES:
            raise bad_response(f"the agent's answer is larger than {MAX_RESPONSE_BYTES} bytes")
        return answer

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = guarded_session(
                allow_private=self._allow_private,
                timeout_s=MAX_TIMEOUT_S,
                limit=self._settings.executor_concurrency,
                allowed=self._networks,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _origin(url: str) -> str:
    """Where a call went, without its path and query (which may carry tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
