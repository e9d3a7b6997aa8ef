"""The HTTP API as a client command sees it (`agent-eval test`): typed calls, errors as
`RemoteError` with the server's code, blocking waits that never poll faster than `Retry-After`,
and a suite run followed on its SSE stream (resumed with `Last-Event-ID` if the connection
drops).

A pipeline step should not fail because the server was briefly busy or restarting: a 429 is
retried after its `Retry-After` (the request was refused, not processed), and a 502/503/504 or
a refused connection is retried when the request is safe to repeat (a GET, a cancel, or a POST
with an `Idempotency-Key`), all within `retry_budget_s` (5 minutes by default)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TypeVar
from uuid import UUID, uuid4

import httpx
from httpx_sse import aconnect_sse
from pydantic import BaseModel, JsonValue

from schemas.runs import EvaluationView, Run, RunTrigger, TurnList
from schemas.suite_runs import Comparison, SuiteRunStarted, SuiteRunTrigger, SuiteRunView
from schemas.suites import Suite
from service.core.clock import SYSTEM_CLOCK
from service.core.errors import RemoteError

M = TypeVar("M", bound=BaseModel)
WAIT_S = 55  # per blocking request: below common proxy timeouts
RECONNECT_S = 1.0
MAX_RECONNECTS = 30
RETRY_BUDGET_S = 300.0
MAX_RETRY_WAIT_S = 60.0
BUSY = 429
UNAVAILABLE = frozenset({502, 503, 504})
CONNECT_RETRIES = 3  # httpx retries a refused or timed-out connect itself (nothing was sent)


class Api:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = WAIT_S + 15,
        retry_budget_s: float = RETRY_BUDGET_S,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "agent-eval-cli"},
            timeout=timeout_s,
            transport=httpx.AsyncHTTPTransport(retries=CONNECT_RETRIES),
        )
        self._retry_budget_s = retry_budget_s
        self._notice = notice

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: JsonValue = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        repeatable: bool = False,
    ) -> httpx.Response:
        """One request; a busy or unavailable server is waited out within the retry budget."""
        repeatable = repeatable or method == "GET" or "Idempotency-Key" in (headers or {})
        deadline = SYSTEM_CLOCK.monotonic() + self._retry_budget_s
        while True:
            try:
                response = await self._http.request(method, path, json=body, params=params, headers=headers)
            except httpx.HTTPError as exc:
                raise RemoteError(f"cannot reach {self._http.base_url}: {exc}") from exc
            if response.status_code < 400:
                return response
            pause = retry_pause(response, repeatable=repeatable)
            if pause is None or SYSTEM_CLOCK.monotonic() + pause > deadline:
                raise _error(response)
            if self._notice is not None:
                self._notice(f"{_error(response)}; retrying in {pause:g} s")
            await asyncio.sleep(pause)

    async def _model(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        body: JsonValue = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> M:
        response = await self._call(method, path, body=body, params=params, headers=headers)
        return model.model_validate_json(response.content)

    async def create(self, path: str, body: Mapping[str, JsonValue]) -> UUID:
        """POST a resource; its id."""
        created = json.loads((await self._call("POST", path, body=dict(body))).content)
        return UUID(created["id"])

    async def suite(self, suite_id: UUID) -> Suite:
        return await self._model(Suite, "GET", f"/agent-eval/suites/{suite_id}")

    async def run_suite(
        self, suite_id: UUID, trigger: SuiteRunTrigger, key: str | None = None
    ) -> SuiteRunStarted:
        """Start a suite run; under an idempotency key of its own (or `key`), so a retry after a
        lost answer starts nothing twice."""
        headers = {"Idempotency-Key": key or _fresh_key()}
        body = trigger.model_dump(mode="json", exclude_unset=True)
        return await self._model(
            SuiteRunStarted, "POST", f"/agent-eval/suites/{suite_id}/run", body=body, headers=headers
        )

    async def suite_run(self, suite_id: UUID, suite_run_id: UUID) -> SuiteRunView:
        return await self._model(SuiteRunView, "GET", f"/agent-eval/suites/{suite_id}/runs/{suite_run_id}")

    async def cancel_suite_run(self, suite_id: UUID, suite_run_id: UUID) -> None:
        path = f"/agent-eval/suites/{suite_id}/runs/{suite_run_id}/cancel"
        await self._call("POST", path, repeatable=True)  # cancelling twice is cancelling once

    async def compare(self, suite_id: UUID, suite_run_id: UUID, baseline: str, alpha: float) -> Comparison:
        path = f"/agent-eval/suites/{suite_id}/runs/{suite_run_id}/compare"
        return await self._model(Comparison, "GET", path, params={"baseline": baseline, "alpha": str(alpha)})

    async def evaluation(self, run_id: UUID) -> EvaluationView:
        return await self._model(EvaluationView, "GET", f"/agent-eval/runs/{run_id}/evaluation")

    async def turns(self, run_id: UUID) -> TurnList:
        return await self._model(TurnList, "GET", f"/agent-eval/runs/{run_id}/turns")

    async def run_case(self, case_id: UUID, trigger: RunTrigger) -> Run:
        """Trigger a case run and wait until it is done (blocking requests, then polls that
        follow `Retry-After`)."""
        body = trigger.model_dump(mode="json", exclude_unset=True)
        headers = {"Prefer": f"wait={WAIT_S}", "Idempotency-Key": _fresh_key()}
        response = await self._call("POST", f"/agent-eval/cases/{case_id}/run", body=body, headers=headers)
        run = Run.model_validate_json(response.content)
        while response.status_code == 202:
            await asyncio.sleep(_retry_after(response))
            response = await self._call(
                "GET", f"/agent-eval/runs/{run.id}", headers={"Prefer": f"wait={WAIT_S}"}
            )
            run = Run.model_validate_json(response.content)
        return run

    async def follow_suite_run(self, suite_id: UUID, suite_run_id: UUID) -> AsyncIterator[tuple[str, str]]:
        """(event, data) for each run's end and finally `suite_run.done`, live; a dropped stream is
        resumed where it stopped."""
        path = f"/agent-eval/suites/{suite_id}/runs/{suite_run_id}/events"
        last: str | None = None
        for _ in range(MAX_RECONNECTS):
            headers = {"Last-Event-ID": last} if last else {}
            try:
                async with aconnect_sse(self._http, "GET", path, headers=headers, timeout=None) as source:
                    if source.response.status_code >= 400:
                        await source.response.aread()
                        pause = retry_pause(source.response, repeatable=True)
                        if pause is None:
                            raise _error(source.response)
                        await asyncio.sleep(pause)
                        continue
                    async for event in source.aiter_sse():
                        last = event.id or last
                        yield event.event, event.data
                        if event.event == "suite_run.done":
                            return
            except (httpx.TransportError, httpx.StreamError):
                await asyncio.sleep(RECONNECT_S)
        raise RemoteError(f"lost the event stream of suite run {suite_run_id} {MAX_RECONNECTS} times")


def _fresh_key() -> str:
    return f"agent-eval-cli-{uuid4()}"


def retry_pause(response: httpx.Response, *, repeatable: bool) -> float | None:
    """Seconds to wait before sending the request again, or None when it must not be retried."""
    if response.status_code == BUSY or (repeatable and response.status_code in UNAVAILABLE):
        return min(MAX_RETRY_WAIT_S, _retry_after(response))
    return None


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(1.0, float(response.headers.get("Retry-After", "2")))
    except ValueError:
        return 2.0


def _error(response: httpx.Response) -> RemoteError:
    try:
        body = json.loads(response.content)
    except ValueError:
        body = {}
    message = body.get("error") if isinstance(body, dict) else None
    code = body.get("code") if isinstance(body, dict) else None
    detail = f"{response.status_code} {code or ''}: {message or response.reason_phrase}".replace("  ", " ")
    return RemoteError(detail, status=response.status_code, code=str(code or "HTTP_ERROR"))
