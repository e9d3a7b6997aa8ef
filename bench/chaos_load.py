"""The chaos suite's load: logical runs triggered through the HTTP API at a steady rate, each
under an `Idempotency-Key` of its own and retried with that key on connection errors, timeouts,
409, 429 and 5xx (honouring `Retry-After`), as `agent-eval test` does; then read back once.
Every answer is recorded with when it was sent and received."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

RETRY_BUDGET_S = 60.0  # a logical run still unacknowledged after this long is given up
REQUEST_TIMEOUT_S = 15.0
RETRYABLE = frozenset({409, 429, 500, 502, 503, 504})
CONNECTION_ERROR = "connection error"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange: seconds since the load started, and the status (or what went wrong)."""

    request: str  # "trigger" or "read"
    sent_s: float
    answered_s: float
    status: str


@dataclass
class Load:
    answers: list[Answer] = field(default_factory=list)
    acknowledged: dict[int, str] = field(default_factory=dict)  # logical run -> run id
    conflicting: dict[int, set[str]] = field(default_factory=dict)  # one key, several run ids
    refused: dict[int, str] = field(default_factory=dict)  # a final answer that was no run
    gave_up: list[int] = field(default_factory=list)


def retry_pause_s(attempt: int, retry_after: str | None) -> float:
    """`Retry-After` when the server gave one, else doubling from 0.2 s up to 2 s."""
    if retry_after is not None and retry_after.isdigit():
        return float(retry_after)
    return min(2.0, 0.2 * 2.0 ** (attempt - 1))


class Driver:
    """Triggers `runs` logical runs of one case, `rate` per second, and records what happens."""

    def __init__(self, base: str, key: str, case_id: str, clock: Callable[[], float]) -> None:
        self._base, self._case_id, self._clock = base, case_id, clock
        self._headers = {"Authorization": f"Bearer {key}", "Prefer": "wait=0"}
        self._session_tag = uuid.uuid4().hex[:8]
        self.load = Load()

    async def run(self, runs: int, rate: float) -> Load:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(headers=self._headers, timeout=timeout, connector=connector) as s:
            tasks = []
            started = time.monotonic()
            for n in range(runs):
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
                tasks.append(asyncio.create_task(self._logical_run(s, n)))
            await asyncio.gather(*tasks)
        return self.load

    async def _logical_run(self, session: aiohttp.ClientSession, n: int) -> None:
        url = f"{self._base}/agent-eval/cases/{self._case_id}/run"
        headers = {"Idempotency-Key": f"chaos-{self._session_tag}-{n}"}
        status, body = await self._until_final(session, "trigger", method="POST", url=url, headers=headers)
        run_id = str(body.get("id", "")) if body is not None and status in ("200", "202") else ""
        if not run_id:
            self._give_up(n, status, body)
            return
        self._acknowledge(n, run_id)
        read = f"{self._base}/agent-eval/runs/{run_id}"
        status, body = await self._until_final(session, "read", method="GET", url=read, headers={})
        if status not in ("200", "202", "404"):  # 404: the run is gone, which the checks report
            self.load.refused[n] = f"read answered {status}: {body}"

    def _give_up(self, n: int, status: str, body: dict[str, object] | None) -> None:
        if status.isdigit() and int(status) not in RETRYABLE:
            self.load.refused[n] = f"trigger answered {status}: {body}"
        else:
            self.load.gave_up.append(n)

    def _acknowledge(self, n: int, run_id: str) -> None:
        known = self.load.acknowledged.setdefault(n, run_id)
        if known != run_id:
            self.load.conflicting.setdefault(n, {known}).add(run_id)

    async def _until_final(
        self, session: aiohttp.ClientSession, request: str, *, method: str, url: str, headers: dict[str, str]
    ) -> tuple[str, dict[str, object] | None]:
        """The first final answer (any status not worth retrying), or the last one when the retry
        budget ran out: (status, JSON body)."""
        first = self._clock()
        attempt = 0
        while True:
            attempt += 1
            sent = self._clock()
            status, retry_after, body = await exchange(session, method, url, headers)
            self.load.answers.append(Answer(request, sent, self._clock(), status))
            final = status.isdigit() and int(status) not in RETRYABLE
            if final or self._clock() - first >= RETRY_BUDGET_S:
                return status, body
            await asyncio.sleep(retry_pause_s(attempt, retry_after))


async def exchange(
    session: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str]
) -> tuple[str, str | None, dict[str, object] | None]:
    """(status or what went wrong, Retry-After, the JSON body if there was one)."""
    try:
        async with session.request(method, url, headers=headers, json={} if method == "POST" else None) as r:
            try:
                body = await r.json(content_type=None)
            except ValueError:  # not JSON: the status says enough
                body = None
            return str(r.status), r.headers.get("Retry-After"), body if isinstance(body, dict) else None
    except TimeoutError:
        return TIMEOUT, None, None
    except aiohttp.ClientError:
        return CONNECTION_ERROR, None, None
