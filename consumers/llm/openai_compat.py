"""OpenAI-compatible chat completions (OpenAI, Azure, vLLM, Ollama, llama.cpp, LiteLLM, …):
`POST {base_url}/chat/completions` over one pooled aiohttp session per provider.

A failed call is tried again as the official SDK does (`retry_policy`: 408/409/429/5xx,
timeouts and broken connections, exponential backoff honouring Retry-After), `max_retries`
times, each try given `timeout_s`; then it raises ProviderError with a code that says how.
The session keeps its connections alive, so a busy executor reuses them call after call.
"""

from __future__ import annotations

import asyncio
import logging
import random
import urllib.request
from collections.abc import Mapping

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt
from yarl import URL

from consumers.llm.chat_wire import excerpt, read_completion, request_body
from consumers.llm.providers import Completion, CompletionRequest
from consumers.llm.retry_policy import backoff_s, retry_after_s, should_retry
from service.core.clock import SYSTEM_CLOCK, Clock
from service.core.errors import ProviderCode, ProviderError, StatusFailure
from service.core.settings import ProviderConfig, Settings

NO_KEY = "not-needed"  # local servers take no key; OpenAI-compatible servers expect the header
MAX_CONNECTIONS = 1000  # as the SDK: hundreds of conversations call one provider at once
USER_AGENT = "agent-eval"

# A line per HTTP request, as httpx wrote it for the SDK, at debug only: a standard-library
# logger (rendered with the run's context like every library's) whose disabled check is cheap.
_requests_log = logging.getLogger(__name__)


class OpenAICompatibleProvider:
    def __init__(self, config: ProviderConfig, api_key: str | None, clock: Clock = SYSTEM_CLOCK) -> None:
        self._config = config
        self._clock = clock
        self._url = completions_url(config.base_url)
        self._headers = {
            "Authorization": f"Bearer {api_key or NO_KEY}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **config.headers,
        }
        self._session: aiohttp.ClientSession | None = None

    async def complete(self, request: CompletionRequest, model: str) -> Completion:
        body = request_body(request, model, self._config.model_settings(model))
        started = self._clock.monotonic()
        try:
            raw = await self._tries(body)
        except StatusFailure as exc:
            raise _status_error(model, exc) from exc
        except TimeoutError as exc:
            tries = self._config.max_retries + 1
            message = f"{model}: no answer within {self._config.timeout_s} s, {tries} tries"
            raise ProviderError("PROVIDER_TIMEOUT", message) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError("PROVIDER_UNAVAILABLE", f"{model}: cannot connect: {exc}") from exc
        return read_completion(raw, model, int((self._clock.monotonic() - started) * 1000))

    async def _tries(self, body: bytes) -> bytes:
        """The first try on its own (almost every call: tenacity's loop around each one cost ~7 %
        of the executor's CPU), then tenacity for the retries, if the first failure is worth one."""
        try:
            return await self._post(body)
        except (StatusFailure, TimeoutError, aiohttp.ClientError) as exc:
            if self._config.max_retries == 0 or not _retryable(exc):
                raise
            first = exc
        await asyncio.sleep(_pause(first, retries_taken=0))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._config.max_retries),
            wait=_wait,
            retry=_worth_retrying,
            reraise=True,
        )
        raw: bytes = await retrying(self._post, body)
        return raw

    async def _post(self, body: bytes) -> bytes:
        """One try: the body of a 2xx answer, or StatusFailure."""
        async with self._client().post(self._url, data=body) as response:
            raw = await response.read()
            if _requests_log.isEnabledFor(logging.DEBUG):
                _log_request(response)
            if 200 <= response.status < 300:
                return raw
            headers = response.headers
            wait = retry_after_s(headers.get("retry-after-ms"), headers.get("retry-after"), self._clock.now())
            retryable = should_retry(response.status, wait, headers.get("x-should-retry"))
            raise StatusFailure(response.status, raw, wait, retryable)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use, inside the event loop that uses it
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_s),
                proxy=env_proxy(self._url),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def completions_url(base_url: str) -> URL:
    """`{base_url}/chat/completions`, keeping any query the base URL carries (Azure's api-version)."""
    base = URL(base_url)
    return base.with_path(base.path.rstrip("/") + "/chat/completions").with_query(base.query)


def env_proxy(url: URL) -> str | None:
    """The proxy HTTPS_PROXY or HTTP_PROXY names for `url` unless NO_PROXY exempts it, read once
    (aiohttp's `trust_env` would read the environment and ~/.netrc again on every call)."""
    if url.host is None or urllib.request.proxy_bypass(url.host):
        return None
    return urllib.request.getproxies().get(url.scheme)


def _log_request(response: aiohttp.ClientResponse) -> None:
    version = f"HTTP/{response.version.major}.{response.version.minor}" if response.version else "HTTP"
    line = 'HTTP Request: POST %s "%s %d %s"'
    _requests_log.debug(line, response.url, version, response.status, response.reason)


def _retryable(failure: BaseException | None) -> bool:
    if isinstance(failure, StatusFailure):
        return failure.retryable
    return isinstance(failure, TimeoutError | aiohttp.ClientError)


def _pause(failure: BaseException | None, retries_taken: int) -> float:
    retry_after = failure.retry_after if isinstance(failure, StatusFailure) else None
    jitter = random.random()  # noqa: S311 — spreads retries, not a secret
    return backoff_s(retries_taken, retry_after, jitter)


# Tenacity's loop starts at the second try: its attempt N is the call's try N + 1, so N retries
# have been taken when it fails.
def _worth_retrying(state: RetryCallState) -> bool:
    return _retryable(state.outcome.exception() if state.outcome else None)


def _wait(state: RetryCallState) -> float:
    return _pause(state.outcome.exception() if state.outcome else None, state.attempt_number)


def _status_error(model: str, failure: StatusFailure) -> ProviderError:
    code: ProviderCode
    if failure.status == 429:
        code = "PROVIDER_RATE_LIMITED"
    elif failure.status >= 500:
        code = "PROVIDER_UNAVAILABLE"
    else:
        code = "PROVIDER_REJECTED"
    return ProviderError(code, f"{model}: HTTP {failure.status}: {excerpt(failure.raw)}")


def providers_from_settings(settings: Settings) -> Mapping[str, OpenAICompatibleProvider]:
    """One client per configured provider (the `scripted` provider is added by the executor)."""
    return {
        name: OpenAICompatibleProvider(config, settings.provider_api_key(config))
        for name, config in settings.provider_registry().items()
    }
