"""Answering the agent's tool calls per the case's `tool_policy` (DESIGN.md §6).

`mock`: a synthetic success shaped by the tool's output schema (free, deterministic). `real`:
an HTTP POST of `{tool, arguments, run_id}` to the tool's URL, with a timeout, a response size
cap and the SSRF guard. `allowlist`: only the tools named in `tool_allowlist` fire for real, the
others are mocked. A tool without a URL is always mocked. Every answer becomes the body of a
`tool_result` row: `{tool_call_id, name, mocked, result}` or `{…, error}`; a failed real call is
an answer the agent sees (an error result), never a failed run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from uuid import UUID

import aiohttp
from pydantic import JsonValue

from schemas.agents import Tool
from schemas.cases import ToolPolicy
from service.core.errors import OutboundRefused
from service.core.logging import get_logger
from service.core.outbound import check_target, guarded_session, refusal
from service.domain.mocks import mock_result
from service.domain.transcript import ToolCallRecord

log = get_logger("consumers.executor.tools")

ToolAnswer = dict[str, JsonValue]


def fires_for_real(tool: Tool, policy: ToolPolicy, allowlist: Sequence[str]) -> bool:
    """Whether a call of `tool` goes to its URL under `policy` (otherwise it is mocked)."""
    if tool.effective_url() is None or policy == "mock":
        return False
    return policy == "real" or tool.name in allowlist


class ToolCaller:
    """One HTTP client for every real tool call an executor makes."""

    def __init__(self, *, allow_private: bool, timeout_s: float, max_response_bytes: int) -> None:
        self._allow_private = allow_private
        self._timeout_s = timeout_s
        self._max_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    async def answer(
        self,
        call: ToolCallRecord,
        tools: Sequence[Tool],
        policy: ToolPolicy,
        allowlist: Sequence[str],
        run_id: UUID,
        *,
        timeout_s: float | None = None,
    ) -> ToolAnswer:
        """The tool_result body for `call`; `timeout_s` overrides the executor's tool timeout (a
        flow's `tool_call` node sets its own)."""
        head: ToolAnswer = {"tool_call_id": call.id, "name": call.name}
        tool = next((t for t in tools if t.name == call.name), None)
        if tool is None:
            return {**head, "mocked": False, "error": f"the agent has no tool named {call.name!r}"}
        url = tool.effective_url()
        if url is None or not fires_for_real(tool, policy, allowlist):
            return {**head, "mocked": True, "result": mock_result(tool.effective_output_schema())}
        return {**head, "mocked": False, **await self._post(url, call, run_id, timeout_s or self._timeout_s)}

    async def _post(self, url: str, call: ToolCallRecord, run_id: UUID, timeout_s: float) -> ToolAnswer:
        body = {"tool": call.name, "arguments": call.arguments, "run_id": str(run_id)}
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            check_target(url, allow_private=self._allow_private)
            async with self._client().post(
                url, json=body, allow_redirects=False, timeout=timeout
            ) as response:
                raw = await response.content.read(self._max_bytes + 1)
                status = response.status
        except TimeoutError:
            return {"error": f"timed out after {timeout_s:g} s"}
        except (OutboundRefused, aiohttp.ClientError) as exc:
            refused = refusal(exc)
            return {"error": f"refused: {refused}" if refused else f"request failed: {exc}"}
        if len(raw) > self._max_bytes:
            return {"error": f"response larger than {self._max_bytes} bytes", "status": status}
        if not 200 <= status < 300:
            return {"error": f"HTTP {status}", "status": status, "body": _decoded(raw)}
        return {"result": _decoded(raw), "status": status}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = guarded_session(allow_private=self._allow_private, timeout_s=self._timeout_s)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _decoded(raw: bytes) -> JsonValue:
    """JSON when the body is JSON, else its text."""
    text = raw.decode("utf-8", "replace")
    try:
        value: JsonValue = json.loads(text)
    except ValueError:
        return text
    return value
