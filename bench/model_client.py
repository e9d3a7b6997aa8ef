"""The executor's CPU per model call (issue 16): `bench.model_server` as its own process, then
`--calls` chat completions, `--concurrency` in flight, through `OpenAICompatibleProvider.complete()`
with a ten-message conversation and two tools, on uvloop as the service runs.

    .venv/bin/python -m bench.model_client [--calls 2000] [--concurrency 50] [--latency 0.02]

It prints this process's CPU milliseconds per call (process_time delta / calls, the server's CPU
not included), calls/s (wall clock: meaningful only on a quiet machine) and the calls the server
counted. A warm-up of `--concurrency` calls runs first and is not measured. Not a test: nothing
here asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request

import uvloop

from bench.stack import wait_ready
from consumers.llm.openai_compat import OpenAICompatibleProvider
from consumers.llm.providers import ChatMessage, CompletionRequest, ToolSpec
from service.core.settings import ProviderConfig
from service.domain.messages import END_CALL
from service.local.pgserver import free_port

LOOKUP = ToolSpec(
    "lookup_order",
    "Find an order by its number and tell its status, items and delivery date.",
    {
        "type": "object",
        "properties": {"order": {"type": "integer", "description": "The order number."}},
        "required": ["order"],
    },
)
SYSTEM = (
    "You are the support agent of an online shop. Answer briefly and politely, look orders up with "
    "the lookup_order tool before saying anything about them, and end the call once the caller is done."
)


def conversation() -> list[ChatMessage]:
    """A system prompt and nine turns, as the agent sees them in the middle of a run."""
    messages = [ChatMessage(role="system", content=SYSTEM)]
    for turn in range(9):
        text = f"Turn {turn}: " + ("Where is my order 4711, it was due on Monday? " * 3)
        messages.append(ChatMessage(role="user" if turn % 2 == 0 else "assistant", content=text))
    return messages


async def measure(base_url: str, calls: int, concurrency: int) -> tuple[float, float]:
    """CPU seconds and wall seconds of `calls` completions, after an unmeasured warm-up."""
    provider = OpenAICompatibleProvider(ProviderConfig(base_url=base_url, timeout_s=60), "sk-bench")
    request = CompletionRequest(model="bench:agent", messages=conversation(), tools=[LOOKUP, END_CALL])
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await provider.complete(request, "agent")

    try:
        await asyncio.gather(*(one() for _ in range(concurrency)))
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(calls)))
        return time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await provider.close()


def server_calls(url: str) -> int:
    with urllib.request.urlopen(f"{url}/stats", timeout=5) as response:  # noqa: S310 — ours
        counted: int = json.loads(response.read())["calls"]
        return counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.02, help="the model server's seconds per answer")
    args = parser.parse_args()
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "bench.model_server",
        "--port",
        str(port),
        "--latency",
        str(args.latency),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/healthz")
        cpu_s, wall_s = uvloop.run(measure(f"{url}/v1", args.calls, args.concurrency))
        counted = server_calls(url)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"calls: {args.calls} measured ({counted} counted by the server, warm-up included)")
    print(f"concurrency: {args.concurrency}, model latency: {args.latency * 1000:.0f} ms")
    print(f"client CPU per call: {cpu_s * 1000 / args.calls:.3f} ms ({cpu_s:.2f} s in all)")
    print(f"calls/s (wall clock): {args.calls / wall_s:.0f}")


if __name__ == "__main__":
    main()
